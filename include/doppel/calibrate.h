// Calibration: how the matcher's automatic verdicts fare against pairs a
// person labelled "same picture" or "not", at every PDQ threshold, and which
// threshold to recommend (docs/cli.md, `doppel calibrate`).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "doppel/match.h"
#include "doppel/status.h"

namespace doppel {

// One labelled pair of files.
struct LabelledPair {
  std::string a, b;  // as written in the CSV, relative ones joined to its folder
  bool same = false;
};

struct LabelledPairs {
  std::vector<LabelledPair> pairs;
  // Rows after the first whose `same` is not 1/0, true/false or yes/no,
  // skipped: "FILE:LINE: 'same' must be ...; line skipped", in file order.
  // (The first row is the header when it is not a pair.)
  std::vector<std::string> skipped;
};

// Reads rows `path_a,path_b,same` (CSV); rows with fewer than three cells
// are ignored. kNotFound when the file cannot be opened; kInvalidArgument
// when it holds no labelled pair.
Result<LabelledPairs> ReadLabelledPairs(const std::string& csv_path);

// The confusion counts of automatic matches at one PDQ threshold.
struct ThresholdFigures {
  int threshold = 0;
  int64_t tp = 0, fp = 0, fn = 0, tn = 0;
  double precision() const { return tp + fp ? double(tp) / double(tp + fp) : 1.0; }
  double recall() const { return tp + fn ? double(tp) / double(tp + fn) : 1.0; }
  double f1() const;
};

// The precision the recommendation aims for.
inline constexpr double kCalibrationPrecisionGoal = 0.995;

struct Calibration {
  size_t pairs = 0;                    // labelled pairs given
  std::vector<ThresholdFigures> rows;  // thresholds 0..64, in order
  int recommended = 0;                 // a threshold (and index into rows)
  bool meets_precision_goal = false;   // else `recommended` is the best F1
  // Files that could not be fingerprinted ("PATH: why"), sorted by path;
  // pairs naming them count nowhere.
  std::vector<std::string> unreadable;
};

// The one rule for a recommendation: the threshold with the most recall at
// precision >= kCalibrationPrecisionGoal (the lowest such threshold on a
// tie), else the one with the best F1 (the lowest on a tie). `rows` not empty.
// Sets `meets_precision_goal` when the first applies.
size_t RecommendThreshold(const std::vector<ThresholdFigures>& rows, bool* meets_precision_goal);

struct CalibrateOptions {
  MatchOptions match;               // every rule but the threshold, which is varied
  int jobs = 0;                     // fingerprinting threads (0: one per core)
  std::function<bool()> cancelled;  // checked between files; nullptr: never
};

// Fingerprints every file once (in parallel), compares each pair with
// Compare() at thresholds 0..64 and counts an automatic verdict as "same".
// kCancelled when `cancelled` said so; kInvalidArgument when `pairs` is empty.
Result<Calibration> Calibrate(const std::vector<LabelledPair>& pairs,
                              const CalibrateOptions& options);

}  // namespace doppel
