// Releases: immutable, numbered descriptions of the cleaned dataset for
// portals (docs/release.md): a manifest, a redirect list and a change notice.
#pragma once

#include <string>

#include "doppel/catalogue.h"
#include "doppel/status.h"

namespace doppel {

// 2: redirects are single-hop and list every retired path (state.redirects
// records them for the next release); changes.repointed.
inline constexpr int kReleaseVersion = 2;

struct ReleaseFiles {
  std::string version;
  std::string manifest_json;  // manifest.json
  std::string redirects_csv;  // redirects.csv: old_path,new_path for every retired path, to a
                              // live master (one hop)
  std::string changes_md;     // CHANGES.md
  int64_t newly_retired = 0, restored = 0, repointed = 0;
};

// Builds release `version` from the audit trail (which files are retired now)
// and the consolidated metadata, relative to the previous release, and stores
// it (with a `release` event). kAlreadyExists if the version was released.
Result<ReleaseFiles> MakeRelease(Catalogue& catalogue, const std::string& version);

}  // namespace doppel
