// Master policy: which copy of a picture is kept when duplicates are retired,
// and why (docs/policy.md). Pure functions over catalogue records: no I/O but
// reading the policy file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "doppel/fingerprint.h"
#include "doppel/match.h"
#include "doppel/status.h"

namespace doppel {

// 2: the `information` rule, first in the built-in order. Version 1 files
// are read as before (their rules mean what they meant).
inline constexpr int kPolicyVersion = 2;

// The ordered rules of a policy. Each one either prefers one copy or says
// they tie; the first that prefers decides.
enum class PolicyRule {
  kInformation,  // never keep a copy that holds strictly less than another
                 // (dominance over colour, pixels, extent, depth, lossless,
                 // compression: see CompareInformation)
  kSource,       // the department's authority (the policy's list, then
                 // Source.priority)
  kOriginal,     // more pixels, deeper samples, lossless over lossy, less
                 // recompression
  kCaptureDate,  // earlier capture date (a copy with a date over one without)
  kMetadata,     // more metadata fields filled in
  kFileId,       // lowest catalogue file id: always decides, so choices are
                 // deterministic
};
const char* PolicyRuleName(PolicyRule r);  // "information", "source", "original",
                                           // "capture_date", "metadata", "file_id"

struct MasterPolicy {
  std::vector<PolicyRule> rules{PolicyRule::kInformation, PolicyRule::kSource,
                                PolicyRule::kOriginal,    PolicyRule::kCaptureDate,
                                PolicyRule::kMetadata,    PolicyRule::kFileId};
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
  // Other candidates (file ids) whose picture this copy shows only part of:
  // the matcher's geometric check found this frame inside theirs
  // (NoteCrops).
  std::vector<int64_t> cropped_from;
};

// Sets Candidate::cropped_from from the match relation: a pair whose
// transform says "A cropped to ..." (or "B ...") names the inner copy.
void NoteCrops(const std::vector<Match>& matches, std::vector<Candidate>& candidates);

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

// Information dominance (docs/policy.md): a holds at least as much as b on
// every axis and strictly more on one. Axes, from the catalogue's records:
// colour over greyscale (bands and interpretation), more pixels, the whole
// picture over a crop of it (cropped_from), deeper samples, lossless over
// lossy format, and at equal dimensions, format and colour, more bytes per
// pixel (less compression) by more than 5 %. order < 0: a dominates b; > 0:
// b dominates a; 0: equal or incomparable. The reason names the axes from
// the richer copy's side ("it is in colour, the other greyscale").
Verdict CompareInformation(const Candidate& a, const Candidate& b);

// The one function that decides which copies hold the most information: true
// for every candidate that no other candidate dominates. The plan, the CLI,
// the report and the review page all use it.
std::vector<bool> HoldsMostInformation(const std::vector<Candidate>& candidates);

// Empty when candidates[kept] holds the most information; otherwise a warning
// in plain words naming what is lost: "keeps a greyscale copy; the colour
// original apur/x.jpg is retired".
std::string LesserCopyWarning(const std::vector<Candidate>& candidates, size_t kept);

struct MasterChoice {
  size_t index = 0;                  // into the candidates
  std::string reason;                // "kept archives/x.tif: source 'archives' ranks above
                                     // 'apur' in the policy"
  std::vector<std::string> why_not;  // per candidate: why the master beat it (empty for the master)
  std::string warning;               // LesserCopyWarning of the choice (a policy that reorders)
};
// Chooses the master of a non-empty list of candidates. Deterministic. The
// rules filter in order: each keeps the candidates no other remaining one
// beats under it (for `information`: those no other dominates).
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
