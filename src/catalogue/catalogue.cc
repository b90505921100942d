#include "doppel/catalogue.h"

#include "catalogue/sqlite_catalogue.h"

namespace doppel {

const char* FileStatusName(FileStatus s) {
  switch (s) {
    case FileStatus::kOk: return "ok";
    case FileStatus::kError: return "error";
    case FileStatus::kMissing: return "missing";
  }
  return "?";
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
