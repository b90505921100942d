// Finding copies across Sources: exact, same picture with other metadata,
// near copies, and "similar" pictures for a person to review; grouping them
// into clusters that never chain. docs/matching.md explains every rule.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/fingerprint.h"
#include "doppel/geometry.h"
#include "doppel/local_words.h"
#include "doppel/model.h"
#include "doppel/status.h"

namespace doppel {

class Catalogue;

struct MatchOptions {
  int threshold = 31;                     // PDQ bits for a near copy (PDQ's published threshold)
  int min_quality = 50;                   // below, a PDQ agreement alone is only "similar"
  double min_correlation = 0.90;          // the finer check for near copies
  double min_hue_agreement = 0.5;         // colour pictures whose hues disagree are other editions
  double min_aligned_correlation = 0.97;  // crops and small rotations, once aligned: "similar"
  bool dihedral = true;                   // also match rotated and mirrored copies
  int similar_radius = 63;                // visually close pairs kept for review
  double similar_correlation = 0.75;
  int similar_seconds = 120;             // same camera, taken this close in time: "similar"
  GeometryOptions geometry;              // the geometric check of undecided pairs
  double geometry_confirm_below = 0.97;  // near pairs correlating less are checked too
  int min_shared_words = 4;              // local words (doppel/local_words.h) for a candidate
};

// Seconds since the epoch of an ISO 8601 capture time ("YYYY-MM-DDTHH:MM:SS"
// with optional fraction; any offset is ignored: both sides of a comparison
// come from cameras set to local time), or nullopt.
std::optional<double> CaptureTimeSeconds(const std::string& iso);

// The verdict on one pair, from their records (no catalogue needed); nullopt
// when they are unrelated. Used by the matcher and by `doppel explain`.
std::optional<Match> Compare(const MatchInput& a, const MatchInput& b, const MatchOptions& options);

// A full explanation for people: every measurement and the verdict.
struct Explanation {
  std::optional<Match> match;
  std::vector<std::string> lines;  // "PDQ distance 12 bits (threshold 31)" ...
  std::string verdict;             // one sentence
};
// With `geometry` (the check of the two files' local features), the
// explanation and verdict include it wherever the matcher would use it.
Explanation Explain(const MatchInput& a, const MatchInput& b, const MatchOptions& options,
                    const GeometricCheck* geometry = nullptr);

// Whether the matcher verifies a pair with local features: no verdict yet
// but PDQ within similar_radius or at least min_shared_words local words in
// common, a "similar" verdict, or a near verdict whose thumbnails agree less
// than confirm_below (look-alike pages). `doppel match` (which counts shared
// words without the stop words of the collection, docs/matching.md) and
// `doppel explain` both decide with it.
bool WantsGeometry(const std::optional<Match>& verdict, int distance, int shared_words,
                   const MatchOptions& options);

// The verdict once the geometric check (doppel/geometry.h) has looked at a
// pair that the hashes alone did not merge: a copy whose frame lies inside
// the other's (cropped, turned, bordered, captioned, rescanned) becomes a
// near copy; pictures that align but are shifted, or a small detail, become
// similar. Automatic verdicts in `prior` are kept as they are.
std::optional<Match> CompareGeometric(const MatchInput& a, const MatchInput& b,
                                      const std::optional<Match>& prior,
                                      const GeometricCheck& check, const MatchOptions& options);

// Orders files by how fit they are to be a cluster's master candidate:
// source priority, then more pixels, deeper samples, lossless formats,
// larger files, earlier capture, lower id. True if a ranks before b.
bool RanksBefore(const MatchInput& a, const MatchInput& b);

// Groups files linked by automatic matches into clusters with no chaining:
// every member matches the cluster's master directly. Deterministic.
std::vector<Cluster> BuildClusters(const std::vector<MatchInput>& files,
                                   const std::vector<Match>& matches);

struct MatchRunOptions {
  MatchOptions match;
  int jobs = 0;
  bool rematch_all = false;  // forget earlier results and compare everything again
  // Verify pairs the hashes left undecided with local features, reading the
  // files again (docs/matching.md); at most this many candidates per file
  // (the strongest evidence first; 0 = no limit). Candidates left out are
  // counted in MatchSummary::checks_skipped.
  bool geometry = true;
  int geometry_per_file = 32;
  // Candidates from shared local words (doppel/local_words.h) too, not only
  // from the global hashes: crops, turned and overlaid copies, bursts.
  bool local_candidates = true;
  LocalCandidateOptions local;
  std::function<void(const std::string& phase, int64_t done, int64_t total)> progress;
  const std::atomic<bool>* cancel = nullptr;
};

struct MatchSummary {
  int64_t files = 0, new_files = 0;
  int64_t pairs[4] = {0, 0, 0, 0};  // by MatchKind, found in this run
  int64_t geometry_checked = 0;     // pairs verified with local features
  int64_t geometry_unreadable = 0;  // files that could not be read again for it
  int64_t local_candidates = 0;     // pairs sharing local words (before the per-file limit)
  int64_t checks_skipped = 0;       // candidate pairs left unchecked by geometry_per_file
  int64_t clusters = 0, clustered_files = 0;
  double seconds = 0;
};

// Matches files not matched before against everything in the catalogue,
// stores the pairs, and rebuilds the clusters (stable ids).
Result<MatchSummary> MatchCatalogue(Catalogue& catalogue, const MatchRunOptions& options);

}  // namespace doppel
