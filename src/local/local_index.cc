// FindLocalCandidates: an inverted file over local words, built in passes
// of bounded memory. Each pass keeps the words whose hash falls in its
// share, sorts (word, file) postings, and counts, for every word held by
// 2..max_files_per_word files, each pair of its files once. A pair's count
// is the number of words the two files share (stop words excepted). With
// several passes, a count-min sketch screens the pairs first (it never
// underestimates), then the survivors are counted exactly over all passes:
// memory holds one pass's postings and pairs and the sketch, never every
// pair that shares a single word.
#include <algorithm>
#include <cstring>
#include <tuple>

#include "doppel/local_words.h"

namespace doppel {
namespace {

// Words are spread over kBuckets by a hash; a pass takes a contiguous range
// of buckets, so the first look can size every pass exactly.
constexpr int kBuckets = 4096;
uint32_t BucketOf(uint32_t word) {
  // Words are already mixed (uniform); a second mix keeps buckets balanced
  // even for a source whose words are not.
  return (word * 0x9E3779B1u) >> 20;  // 12 bits: 0..4095
}

// Pair keys (a << 32 | b), sorted, to on_run(key, occurrences) per key.
template <class F>
void ForEachRun(std::vector<uint64_t>& keys, const F& on_run) {
  std::sort(keys.begin(), keys.end());
  for (size_t i = 0; i < keys.size();) {
    size_t j = i;
    while (j < keys.size() && keys[j] == keys[i]) ++j;
    on_run(keys[i], uint32_t(j - i));
    i = j;
  }
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

  // A first look counts the words per bucket, to cut the buckets into
  // passes whose postings fit in memory.
  std::vector<int64_t> bucket_words(kBuckets, 0);
  Status bad = Status::OK();
  DOPPEL_RETURN_IF_ERROR(source([&](uint32_t f, std::span<const uint32_t> w) {
    if (f >= files) {
      if (bad.ok()) bad = InvalidArgument("local candidates: file index out of range");
      return;
    }
    for (uint32_t x : w) ++bucket_words[BucketOf(x)];
  }));
  DOPPEL_RETURN_IF_ERROR(bad);
  for (int64_t n : bucket_words) st.words += n;
  // Half the memory for one pass's postings, half for the sketch (below).
  const int64_t per_pass = std::max<int64_t>(1, opt.memory_bytes / 2 / int64_t(sizeof(uint64_t)));
  std::vector<int> pass_start = {0};  // first bucket of each pass
  std::vector<int64_t> pass_words = {0};
  for (int b = 0; b < kBuckets; ++b) {
    if (pass_words.back() > 0 && pass_words.back() + bucket_words[b] > per_pass) {
      pass_start.push_back(b);
      pass_words.push_back(0);
    }
    pass_words.back() += bucket_words[b];
  }
  const int passes = int(pass_start.size());
  pass_start.push_back(kBuckets);
  st.passes = passes;
  std::vector<uint64_t> postings;  // word << 32 | file
  std::vector<uint64_t> keys;      // pair occurrences of one pass
  std::vector<uint32_t> run;
  // Emits, for each word of the pass held by 2..max files, each pair of its
  // files once; `keep` filters pairs.
  bool first_round = true;
  auto pass = [&](int p, const auto& keep, const auto& on_run) -> Status {
    if (cancelled()) return Cancelled("local candidates: stopped on request");
    postings.clear();
    postings.reserve(size_t(pass_words[size_t(p)]));
    const uint32_t lo = uint32_t(pass_start[size_t(p)]), hi = uint32_t(pass_start[size_t(p) + 1]);
    DOPPEL_RETURN_IF_ERROR(source([&](uint32_t f, std::span<const uint32_t> w) {
      if (f >= files) return;
      for (uint32_t x : w) {
        const uint32_t b = BucketOf(x);
        if (b >= lo && b < hi) postings.push_back(uint64_t(x) << 32 | f);
      }
    }));
    std::sort(postings.begin(), postings.end());
    keys.clear();
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
        if (first_round) ++st.stop_words;
        continue;
      }
      for (size_t x = 0; x < run.size(); ++x)
        for (size_t y = x + 1; y < run.size(); ++y)
          if (is_fresh(run[x]) || is_fresh(run[y])) {
            const uint64_t key = uint64_t(run[x]) << 32 | run[y];
            if (keep(key)) keys.push_back(key);
          }
    }
    if (first_round) st.pairs_counted += int64_t(keys.size());
    std::vector<uint64_t>().swap(postings);  // the pairs may now use the postings' memory
    ForEachRun(keys, on_run);
    return Status::OK();
  };

  // One pass holds every word: its counts are exact.
  std::vector<std::pair<uint64_t, uint32_t>> found;  // (pair, words shared)
  if (passes == 1) {
    DOPPEL_RETURN_IF_ERROR(pass(
        0, [](uint64_t) { return true; },
        [&](uint64_t key, uint32_t n) {
          if (n >= uint32_t(opt.min_shared)) found.push_back({key, n});
        }));
  } else {
    // Several passes: a count-min sketch (two rows of saturating 8-bit
    // counters, half the memory) learns every pair's occurrences in a first
    // round; it never underestimates, so the pairs it puts below min_shared
    // are surely not candidates. A second round keeps the per-pass counts of
    // the others only, and sums them: exact counts, without ever holding
    // every pair that shares a single word.
    const size_t width = size_t(std::max<int64_t>(1024, opt.memory_bytes / 4));
    std::vector<uint8_t> sketch(2 * width, 0);
    auto cells = [&](uint64_t key) {
      uint64_t z = key * 0x9E3779B97F4A7C15ull;
      z ^= z >> 29;
      z *= 0xBF58476D1CE4E5B9ull;
      z ^= z >> 32;
      return std::make_pair(size_t(uint32_t(z) % width), width + size_t((z >> 32) % width));
    };
    for (int p = 0; p < passes; ++p)
      DOPPEL_RETURN_IF_ERROR(pass(
          p, [](uint64_t) { return true; },
          [&](uint64_t key, uint32_t n) {
            const auto [c1, c2] = cells(key);
            sketch[c1] = uint8_t(std::min<uint32_t>(255, sketch[c1] + n));
            sketch[c2] = uint8_t(std::min<uint32_t>(255, sketch[c2] + n));
          }));
    first_round = false;
    auto may_qualify = [&](uint64_t key) {
      const auto [c1, c2] = cells(key);
      return std::min(sketch[c1], sketch[c2]) >= std::min(opt.min_shared, 255);
    };
    std::vector<std::pair<uint64_t, uint32_t>> partial;
    for (int p = 0; p < passes; ++p)
      DOPPEL_RETURN_IF_ERROR(pass(p, may_qualify, [&](uint64_t key, uint32_t n) {
        partial.push_back({key, n});
      }));
    std::vector<uint8_t>().swap(sketch);
    std::sort(partial.begin(), partial.end());
    for (size_t i = 0; i < partial.size();) {
      uint32_t n = 0;
      size_t j = i;
      for (; j < partial.size() && partial[j].first == partial[i].first; ++j)
        n += partial[j].second;
      if (n >= uint32_t(opt.min_shared)) found.push_back({partial[i].first, n});
      i = j;
    }
  }
  std::vector<uint64_t>().swap(postings);
  std::vector<uint64_t>().swap(keys);

  std::vector<LocalCandidate> out;
  out.reserve(found.size());
  for (const auto& [key, n] : found) out.push_back({uint32_t(key >> 32), uint32_t(key), int(n)});
  std::sort(out.begin(), out.end(), [](const LocalCandidate& x, const LocalCandidate& y) {
    if (x.shared != y.shared) return x.shared > y.shared;
    return std::tie(x.a, x.b) < std::tie(y.a, y.b);
  });
  if (stats) *stats = st;
  return out;
}

}  // namespace doppel
