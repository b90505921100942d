#include "doppel/catalogue.h"

#include <pwd.h>
#include <cstdlib>
#include <unistd.h>

#include "catalogue/sqlite_catalogue.h"
#include "doppel_version.h"

namespace doppel {

const char* FileStatusName(FileStatus s) {
  switch (s) {
    case FileStatus::kOk: return "ok";
    case FileStatus::kError: return "error";
    case FileStatus::kMissing: return "missing";
  }
  return "?";
}

std::string SoftwareAgent() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const char* user = getenv("USER");
  std::string who = user && *user ? user : "";
  if (who.empty()) {
    if (const passwd* pw = getpwuid(geteuid())) who = pw->pw_name;
  }
  return "doppel " DOPPEL_VERSION " (" + (who.empty() ? std::string("?") : who) + "@" + host + ")";
}

Result<std::unique_ptr<Catalogue>> OpenCatalogue(const std::string& location,
                                                 const CatalogueOptions& options) {
  if (location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0)
    return Unsupported("catalogue " + location +
                       ": the PostgreSQL backend is not built yet; use a SQLite file path");
  std::string path = location;
  if (path.rfind("sqlite:", 0) == 0) path = path.substr(7);
  if (path.empty()) return InvalidArgument("empty catalogue path (use --db PATH)");
  return OpenSqliteCatalogue(path, options);
}

}  // namespace doppel
