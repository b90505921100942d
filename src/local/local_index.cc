// FindLocalCandidates: an inverted file over local words, built in passes
// of bounded memory. Each pass keeps the words whose hash falls in its
// share, sorts (word, file) postings, and counts, for every word held by
// 2..max_files_per_word files, each pair of its files once. The counts of
// all passes are then merged: a pair's count is the number of words the
// two files share (stop words excepted).
#include <algorithm>
#include <cstring>
#include <tuple>

#include "doppel/local_words.h"

namespace doppel {
namespace {

uint32_t PassOf(uint32_t word, int passes) {
  // Words are already mixed (uniform); a second mix keeps passes balanced
  // even for a source whose words are not.
  uint32_t x = word * 0x9E3779B1u;
  return uint32_t((uint64_t(x) * uint32_t(passes)) >> 32);
}

// Sorted pair keys (a << 32 | b) into (key, count) runs, kept in place.
void Compact(std::vector<uint64_t>& keys, std::vector<std::pair<uint64_t, uint32_t>>& counts) {
  std::sort(keys.begin(), keys.end());
  std::vector<std::pair<uint64_t, uint32_t>> merged;
  merged.reserve(counts.size() + keys.size() / 2);
  size_t i = 0, j = 0;
  while (i < keys.size() || j < counts.size()) {
    uint64_t k;
    uint32_t n = 0;
    if (j < counts.size() && (i >= keys.size() || counts[j].first <= keys[i])) {
      k = counts[j].first;
    } else {
      k = keys[i];
    }
    while (j < counts.size() && counts[j].first == k) n += counts[j++].second;
    while (i < keys.size() && keys[i] == k) ++n, ++i;
    merged.push_back({k, n});
  }
  counts.swap(merged);
  keys.clear();
}

}  // namespace

Result<std::vector<LocalCandidate>> FindLocalCandidates(const LocalWordSource& source,
                                                        uint32_t files,
                                                        const std::vector<bool>& fresh,
                                                        const LocalCandidateOptions& opt,
                                                        LocalCandidateStats* stats) {
  if (!fresh.empty() && fresh.size() != files)
    return InvalidArgument("local candidates: one fresh flag per file is needed");
  if (opt.min_shared < 1 || opt.max_files_per_word < 2)
    return InvalidArgument("local candidates: min_shared >= 1 and max_files_per_word >= 2");
  auto cancelled = [&] { return opt.cancel && opt.cancel->load(std::memory_order_relaxed); };
  auto is_fresh = [&](uint32_t f) { return fresh.empty() || fresh[f]; };
  LocalCandidateStats st;
  st.files = files;

  // A first look counts the words, to choose how many passes fit in memory.
  int64_t total = 0;
  DOPPEL_RETURN_IF_ERROR(
      source([&](uint32_t, std::span<const uint32_t> w) { total += int64_t(w.size()); }));
  st.words = total;
  const int64_t per_pass = std::max<int64_t>(1, opt.memory_bytes / int64_t(sizeof(uint64_t)));
  const int passes = int(std::clamp<int64_t>((total + per_pass - 1) / per_pass, 1, 1024));
  st.passes = passes;

  std::vector<std::pair<uint64_t, uint32_t>> counts;  // (a << 32 | b, shared words)
  std::vector<uint64_t> keys;                         // pair occurrences not yet merged
  std::vector<uint64_t> postings;                     // word << 32 | file
  std::vector<uint32_t> run;
  for (int p = 0; p < passes; ++p) {
    if (cancelled()) return Cancelled("local candidates: stopped on request");
    postings.clear();
    Status bad = Status::OK();
    DOPPEL_RETURN_IF_ERROR(source([&](uint32_t f, std::span<const uint32_t> w) {
      if (f >= files) {
        if (bad.ok()) bad = InvalidArgument("local candidates: file index out of range");
        return;
      }
      for (uint32_t x : w)
        if (PassOf(x, passes) == uint32_t(p)) postings.push_back(uint64_t(x) << 32 | f);
    }));
    DOPPEL_RETURN_IF_ERROR(bad);
    std::sort(postings.begin(), postings.end());
    for (size_t i = 0; i < postings.size();) {
      size_t j = i;
      run.clear();
      while (j < postings.size() && (postings[j] >> 32) == (postings[i] >> 32)) {
        const uint32_t f = uint32_t(postings[j]);
        if (run.empty() || run.back() != f)
          run.push_back(f);  // a file repeating a word counts once
        ++j;
      }
      i = j;
      if (run.size() < 2) continue;
      if (run.size() > size_t(opt.max_files_per_word)) {
        ++st.stop_words;
        continue;
      }
      for (size_t x = 0; x < run.size(); ++x)
        for (size_t y = x + 1; y < run.size(); ++y)
          if (is_fresh(run[x]) || is_fresh(run[y])) keys.push_back(uint64_t(run[x]) << 32 | run[y]);
      // Merge before the occurrences outgrow the postings' share of memory.
      if (keys.size() >= size_t(per_pass)) {
        st.pairs_counted += int64_t(keys.size());
        Compact(keys, counts);
      }
    }
    st.pairs_counted += int64_t(keys.size());
    Compact(keys, counts);
  }
  std::vector<uint64_t>().swap(postings);

  std::vector<LocalCandidate> out;
  for (const auto& [key, n] : counts)
    if (n >= uint32_t(opt.min_shared)) out.push_back({uint32_t(key >> 32), uint32_t(key), int(n)});
  std::sort(out.begin(), out.end(), [](const LocalCandidate& x, const LocalCandidate& y) {
    if (x.shared != y.shared) return x.shared > y.shared;
    return std::tie(x.a, x.b) < std::tie(y.a, y.b);
  });
  if (stats) *stats = st;
  return out;
}

}  // namespace doppel
