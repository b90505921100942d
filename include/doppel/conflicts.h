// Resolving metadata conflicts (docs/plan.md, "Conflicts"): a person decides
// which value a master's consolidated metadata carries when its copies
// disagree. Decisions are audit events (type "metadata decision"), never
// overwritten: the latest per (cluster, field) is in force.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "doppel/catalogue.h"
#include "doppel/policy.h"
#include "doppel/status.h"

namespace doppel {

struct MetadataResolution {
  int64_t event_id = 0;
  int64_t cluster_id = 0;
  std::string field;          // "title", "capture_time", "gps", ...
  std::string value;          // the value decided
  int64_t from_file_id = 0;   // the copy it came from; 0 for a value typed in
  std::string author;         // the person
  std::string decided_at;
};

// Records a decision for `field` of `cluster_id`'s stored consolidated
// metadata (made by `doppel plan`): `value`, or (from_file_id != 0) the value
// that copy carries in the conflict. The field must be in conflict, or
// resolved before (a decision can be changed); `author` must not be empty.
// Appends the event, then updates the stored document; if that second write
// fails, plans and exports still apply the decision from the audit trail.
Result<MetadataResolution> ResolveConflict(Catalogue& catalogue, int64_t cluster_id,
                                           const std::string& field, const std::string& value,
                                           int64_t from_file_id, const std::string& author);

// Every decision in force, oldest first.
Result<std::vector<MetadataResolution>> ListResolutions(Catalogue& catalogue);

// Applies the decisions of m's cluster: the field takes the decided value and
// its conflict is no longer open (the audit trail keeps who decided).
void ApplyResolutions(ConsolidatedMetadata& m, const std::vector<MetadataResolution>& decisions);

}  // namespace doppel
