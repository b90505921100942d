// Calibration against labelled pairs (include/doppel/calibrate.h).
#include "doppel/calibrate.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>

#include "doppel/fingerprint.h"
#include "doppel/model.h"
#include "util/csv.h"
#include "util/parallel.h"
#include "util/paths.h"

namespace doppel {
namespace {

// 1/0, true/false, yes/no (any case); nullopt for anything else.
std::optional<bool> ParseSame(std::string v) {
  std::transform(v.begin(), v.end(), v.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  if (v == "1" || v == "true" || v == "yes") return true;
  if (v == "0" || v == "false" || v == "no") return false;
  return std::nullopt;
}

}  // namespace

double ThresholdFigures::f1() const {
  const double p = precision(), r = recall();
  return p + r > 0 ? 2 * p * r / (p + r) : 0;
}

Result<LabelledPairs> ReadLabelledPairs(const std::string& csv_path) {
  std::ifstream in(csv_path);
  if (!in) return NotFound("cannot open " + DisplayPath(csv_path));
  const std::string folder = std::filesystem::path(csv_path).parent_path().string();
  auto resolve = [&](const std::string& p) {
    return p.empty() || p[0] == '/' ? p : JoinPath(folder, p);
  };
  LabelledPairs out;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    auto f = SplitCsvLine(line);
    if (f.size() < 3 || line.empty()) continue;
    const auto same = ParseSame(f[2]);
    if (!same) {
      // The first row is the header.
      if (lineno > 1)
        out.skipped.push_back(DisplayPath(csv_path) + ":" + std::to_string(lineno) +
                              ": 'same' must be 1/0, true/false or yes/no; line skipped");
      continue;
    }
    out.pairs.push_back({resolve(f[0]), resolve(f[1]), *same});
  }
  return out;
}

size_t RecommendThreshold(const std::vector<ThresholdFigures>& rows, bool* meets_precision_goal) {
  std::optional<size_t> best;
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i].precision() >= kCalibrationPrecisionGoal &&
        (!best || rows[i].recall() > rows[*best].recall()))
      best = i;
  if (meets_precision_goal) *meets_precision_goal = best.has_value();
  if (!best)
    for (size_t i = 0; i < rows.size(); ++i)
      if (!best || rows[i].f1() > rows[*best].f1()) best = i;
  return best.value_or(0);
}

Result<Calibration> Calibrate(const std::vector<LabelledPair>& pairs,
                              const CalibrateOptions& options) {
  if (pairs.empty()) return InvalidArgument("no labelled pairs (rows path_a,path_b,same)");
  DOPPEL_RETURN_IF_ERROR(InitImaging());

  // Every file once, fingerprinted in parallel.
  std::vector<std::string> paths;
  for (const auto& p : pairs) paths.insert(paths.end(), {p.a, p.b});
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  std::vector<std::optional<MatchInput>> inputs(paths.size());
  std::vector<Status> errors(paths.size());
  std::atomic<bool> stop{false};
  ParallelFor(
      paths.size(), options.jobs,
      [&](int, size_t i) {
        if (options.cancelled && options.cancelled()) {
          stop = true;
          return;
        }
        auto r = AnalyseFile(paths[i], AnalyseOptions{});
        if (r.ok())
          inputs[i] = MatchInputFrom(*r, int64_t(i + 1));
        else
          errors[i] = r.status();
      },
      [&] { return stop.load(); });
  if (stop) return Cancelled("calibration interrupted while fingerprinting");
  Calibration cal;
  cal.pairs = pairs.size();
  for (size_t i = 0; i < paths.size(); ++i)
    if (!errors[i].ok())
      cal.unreadable.push_back(DisplayPath(paths[i]) + ": " + errors[i].message());
  auto input_of = [&](const std::string& p) -> const MatchInput* {
    const size_t i = size_t(std::lower_bound(paths.begin(), paths.end(), p) - paths.begin());
    return inputs[i] ? &*inputs[i] : nullptr;
  };

  for (int t = 0; t <= 64; ++t) {
    MatchOptions o = options.match;
    o.threshold = t;
    ThresholdFigures r;
    r.threshold = t;
    for (const auto& p : pairs) {
      const MatchInput *a = input_of(p.a), *b = input_of(p.b);
      if (!a || !b) continue;
      const auto m = Compare(*a, *b, o);
      const bool predicted = m && IsAutomatic(m->kind);
      if (predicted && p.same)
        ++r.tp;
      else if (predicted)
        ++r.fp;
      else if (p.same)
        ++r.fn;
      else
        ++r.tn;
    }
    cal.rows.push_back(r);
  }
  cal.recommended = cal.rows[RecommendThreshold(cal.rows, &cal.meets_precision_goal)].threshold;
  return cal;
}

}  // namespace doppel
