// Master policy: which copy of a picture is kept when duplicates are retired,
// and why (docs/policy.md). Pure functions over catalogue records: no I/O but
// reading the policy file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "doppel/fingerprint.h"
#include "doppel/status.h"

namespace doppel {

inline constexpr int kPolicyVersion = 1;

// The ordered rules of a policy. Each one either prefers one copy or says
// they tie; the first that prefers decides.
enum class PolicyRule {
  kSource,       // the department's authority (the policy's list, then
                 // Source.priority)
  kOriginal,     // more pixels, deeper samples, lossless over lossy, less
                 // recompression
  kCaptureDate,  // earlier capture date (a copy with a date over one without)
  kMetadata,     // more metadata fields filled in
  kFileId,       // lowest catalogue file id: always decides, so choices are
                 // deterministic
};
const char* PolicyRuleName(PolicyRule r);  // "source", "original", "capture_date",
                                           // "metadata", "file_id"

struct MasterPolicy {
  std::vector<PolicyRule> rules{PolicyRule::kSource, PolicyRule::kOriginal,
                                PolicyRule::kCaptureDate, PolicyRule::kMetadata,
                                PolicyRule::kFileId};
  // Department names, most authoritative first. Sources not listed rank after
  // the listed ones, among themselves by Source.priority (higher first).
  std::vector<std::string> source_order;
  std::string origin = "built-in defaults";  // the file it came from, for messages
};

// Parses a policy (TOML text, docs/policy.md). `name` is used in messages.
// Unknown keys and rules are errors: a typo must not silently change which
// files are kept. kFileId is appended when missing.
Result<MasterPolicy> ParsePolicy(const std::string& toml_text, const std::string& name);
// Reads and parses a policy file.
Result<MasterPolicy> LoadPolicy(const std::string& path);

// One copy competing to be a cluster's master.
struct Candidate {
  int64_t file_id = 0;
  std::string source;
  int source_priority = 0;
  std::string path;  // relative to the source root, raw bytes
  ImageRecord record;
};

// "archives/x.tif" for messages.
std::string CandidateName(const Candidate& c);

// How two candidates compare under a policy: order < 0 when `a` should be
// kept rather than `b`; `reason` names the deciding rule in plain words from
// a's side ("source 'archives' ranks above 'apur' in the policy").
struct Verdict {
  int order = 0;
  PolicyRule rule = PolicyRule::kFileId;
  std::string reason;
};
Verdict CompareCandidates(const Candidate& a, const Candidate& b, const MasterPolicy& policy);

struct MasterChoice {
  size_t index = 0;                  // into the candidates
  std::string reason;                // "kept archives/x.tif: source 'archives' ranks above
                                     // 'apur' in the policy"
  std::vector<std::string> why_not;  // per candidate: why the master beat it (empty for the master)
};
// Chooses the master of a non-empty list of candidates. Deterministic.
MasterChoice ChooseMaster(const std::vector<Candidate>& candidates, const MasterPolicy& policy);

// --- Consolidated metadata (docs/plan.md) ---

struct MetadataValue {
  std::string value;
  int64_t from_file_id = 0;  // the copy this value came from
};
struct MetadataConflict {
  std::string field;                                    // "capture_time", "gps", "title", ...
  std::vector<std::pair<int64_t, std::string>> values;  // file id -> value, one per distinct value
};
struct HeldBy {
  int64_t file_id = 0;
  std::string source, path;  // path raw bytes
  bool master = false;
};
// Everything the copies of one picture say about it, for the master.
struct ConsolidatedMetadata {
  int64_t cluster_id = 0;
  int64_t master_file_id = 0;
  std::vector<HeldBy> held_by;                  // every department and path that held it
  std::map<std::string, MetadataValue> fields;  // capture_time (earliest), title, artist, ...
  std::vector<std::string> keywords;            // union, first-seen order
  std::map<std::string, std::vector<int64_t>> keyword_from;  // keyword -> copies carrying it
  std::vector<MetadataConflict> conflicts;                   // for a person to resolve
};
// `candidates[master]` is the master; values from it are preferred, then in
// the candidates' order.
ConsolidatedMetadata Consolidate(int64_t cluster_id, const std::vector<Candidate>& candidates,
                                 size_t master);
std::string ConsolidatedToJson(const ConsolidatedMetadata& m);  // one JSON object
Result<ConsolidatedMetadata> ConsolidatedFromJson(const std::string& json);
// A plain XMP sidecar (RDF/XML) with the consolidated values and provenance.
std::string ConsolidatedToXmp(const ConsolidatedMetadata& m);

}  // namespace doppel
