#include "doppel/catalogue.h"

#include <pwd.h>
#include <unistd.h>
#include <cstdlib>

#include "catalogue/pg_catalogue.h"
#include "catalogue/sqlite_catalogue.h"
#include "doppel_version.h"

namespace doppel {

const char* FileStatusName(FileStatus s) {
  switch (s) {
    case FileStatus::kOk:
      return "ok";
    case FileStatus::kError:
      return "error";
    case FileStatus::kMissing:
      return "missing";
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
    return OpenPgCatalogue(location, options);
  std::string path = location;
  if (path.rfind("sqlite:", 0) == 0) path = path.substr(7);
  if (path.empty()) return InvalidArgument("empty catalogue path (use --db PATH)");
  return OpenSqliteCatalogue(path, options);
}

ReviewDecisions::ReviewDecisions(std::vector<ReviewDecision> all) : all_(std::move(all)) {
  for (size_t i = 0; i < all_.size(); ++i)
    in_force_[{all_[i].cluster_id, all_[i].file_id.value_or(0)}] = i;  // later ones win
}

const ReviewDecision* ReviewDecisions::ForCluster(int64_t cluster_id) const {
  auto it = in_force_.find({cluster_id, 0});
  return it == in_force_.end() ? nullptr : &all_[it->second];
}

const ReviewDecision* ReviewDecisions::ForMember(int64_t cluster_id, int64_t file_id) const {
  if (file_id == 0) return nullptr;
  auto it = in_force_.find({cluster_id, file_id});
  return it == in_force_.end() ? nullptr : &all_[it->second];
}

ReviewedCluster ReviewDecisions::Apply(const Cluster& c) const {
  ReviewedCluster r;
  r.decision = ForCluster(c.id);
  r.rejected = r.decision && r.decision->decision == "reject";
  r.confirmed =
      r.decision && (r.decision->decision == "confirm" || r.decision->decision == "choose_master");
  r.master = c.master_file_id;
  if (r.decision && r.decision->decision == "choose_master")
    for (const ClusterMember& m : c.members)
      if (m.file_id == r.decision->master_file_id) r.master = m.file_id;
  r.members.push_back(r.master);
  for (const ClusterMember& m : c.members) {
    if (m.file_id == r.master) continue;
    if (const ReviewDecision* d = ForMember(c.id, m.file_id); d && d->decision == "reject") {
      r.left_out.push_back({m.file_id, d});
      continue;
    }
    r.members.push_back(m.file_id);
  }
  return r;
}

}  // namespace doppel
