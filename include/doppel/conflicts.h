// Resolving metadata conflicts (docs/plan.md, "Conflicts"): a person decides
// which value a master's consolidated metadata carries when its copies
// disagree. Decisions are audit events (type "metadata decision", agent
// "person NAME"), never overwritten: the latest one per (cluster, field) is in
// force. The catalogue's consolidated metadata keeps what the copies say, the
// conflicts included; every reader (the plan, `doppel metadata` and its XMP
// sidecars, `doppel metadata --conflicts`, releases, the review page) applies
// the decisions in force through MetadataDecisions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "doppel/catalogue.h"
#include "doppel/model.h"
#include "doppel/policy.h"
#include "doppel/replace.h"
#include "doppel/status.h"

namespace doppel {

// The fields of ConsolidatedMetadata::fields, in the order Consolidate fills
// them: title, artist, copyright, make, model, capture_time, gps.
const std::vector<std::string>& ConsolidatedFieldNames();

// What a copy's metadata says for one of ConsolidatedFieldNames(), as
// Consolidate takes it ("" when the copy says nothing; gps as "lat,lon" with
// six decimals).
std::string MetadataFieldValue(const ImageMetadata& md, std::string_view field);

// Checks a value typed in by a person for `field` and returns it as stored:
// text fields trimmed, non-empty, valid UTF-8 without control characters, at
// most 2000 bytes; capture_time an ISO 8601 date or date-time
// (docs/catalogue.md); gps "LAT,LON" in range, written with six decimals.
// kInvalidArgument naming the field and the rule otherwise.
Result<std::string> CheckMetadataValue(std::string_view field, const std::string& value);

struct MetadataDecision {
  int64_t event_id = 0;
  int64_t cluster_id = 0;
  std::string field;         // one of ConsolidatedFieldNames()
  std::string value;         // the value decided
  int64_t from_file_id = 0;  // the copy it was taken from; 0 for a value typed in
  std::string author;        // the person ("claire", "key 3 (review desk)")
  std::string decided_at;
};

// The metadata decisions in force: the latest per (cluster, field). The one
// rule, used by every reader of consolidated metadata. Holds the decisions.
class MetadataDecisions {
 public:
  MetadataDecisions() = default;
  // `all` oldest first, as LoadMetadataDecisions reads them.
  explicit MetadataDecisions(std::vector<MetadataDecision> all);
  const MetadataDecision* For(int64_t cluster_id, const std::string& field) const;
  // m's cluster's decisions applied: each decided field takes the decided
  // value (from_file_id: the copy, 0 if typed in) and its conflict is no
  // longer listed. A decision stays in force when the copies have since come
  // to agree. Idempotent.
  void Apply(ConsolidatedMetadata& m) const;
  // The decisions in force, oldest first.
  std::vector<const MetadataDecision*> InForce() const;

 private:
  std::vector<MetadataDecision> all_;
  std::map<std::pair<int64_t, std::string>, size_t> in_force_;  // (cluster, field) -> index
};

// The decisions recorded in the audit trail (successful `metadata decision`
// events; an event whose detail cannot be read is skipped).
Result<MetadataDecisions> LoadMetadataDecisions(Catalogue& catalogue);

// The catalogue's consolidated metadata with the decisions in force applied,
// ordered by master file id. The one read path for exports, sidecars and
// releases. A document that cannot be read is an error naming its master.
Result<std::vector<ConsolidatedMetadata>> MetadataInForce(Catalogue& catalogue);

// A conflict nobody has resolved yet.
struct OpenConflict {
  int64_t cluster_id = 0;
  int64_t master_file_id = 0;
  MetadataConflict conflict;
};
// Every open conflict of the stored consolidated metadata, by cluster then in
// Consolidate's field order.
Result<std::vector<OpenConflict>> OpenConflicts(Catalogue& catalogue);

struct MetadataDecisionRequest {
  int64_t cluster_id = 0;
  std::string field;
  // Exactly one of these: a value typed in, or the member whose value to
  // keep (its file id, "SOURCE/PATH" as doppel prints it, or its absolute
  // path).
  std::string value;
  std::string from;
  std::string author;  // who decides; required
};

// Records a person's decision: one `metadata decision` event (object
// "cluster:ID", agent "person AUTHOR", detail {cluster_id, master_file_id,
// field, value, from_file_id}). Validated fully before anything is written:
// the cluster must have consolidated metadata (`doppel plan` made it), the
// field must be one of ConsolidatedFieldNames() and in conflict there or
// decided before (a decision can be changed), the value must pass
// CheckMetadataValue, a `from` file must be one of the copies consolidated
// (ConsolidatedMetadata::held_by) and carry a value of the field. Errors
// (kInvalidArgument, kNotFound for the cluster) say that nothing was
// recorded. The single event is the whole write: nothing else changes.
Result<MetadataDecision> ResolveConflict(Catalogue& catalogue, const MetadataDecisionRequest& req);

// Writes the XMP sidecar of every master of MetadataInForce (WriteXmpSidecar,
// through `env`), so sidecars carry the decisions in force. Goes on after a
// failed sidecar; each outcome is in the audit trail. Running it again
// finishes what a failure or a crash left: a sidecar is the old one or the new
// one, never a part.
struct SidecarOutcome {
  int64_t master_file_id = 0;
  std::string path;  // written (empty on failure)
  Status status;
};
Result<std::vector<SidecarOutcome>> WriteXmpSidecars(Catalogue& catalogue, Env* env = nullptr);

}  // namespace doppel
