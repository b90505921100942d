// Scale benchmark of the local-word candidate index (scripts/bench-candidates).
//   bench-candidates FILES [PLANTED] [MEMORY_MB] [BRUTE_SUBSET]
// Synthetic signatures drawn to resemble real ones (docs/matching.md gives
// the measured shape: about 1,100 words per file, a few percent of them from
// a pool of common words), regenerated from a seed on every pass so the
// benchmark holds no signatures, plus PLANTED pairs sharing 6..60 words.
// Prints one JSON line: time, peak RSS, passes, candidates per file, planted
// pairs found; and, when BRUTE_SUBSET > 0, the brute-force baseline (every
// pair of the first BRUTE_SUBSET files intersected) extrapolated to FILES.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <vector>

#include "doppel/local_words.h"

using namespace doppel;

namespace {

constexpr int kWords = 1100;         // per file (measured mean on photos: see docs)
constexpr int kCommonPool = 200000;  // words many pictures share (textures, text, flat areas)
constexpr double kCommonShare = 0.05;

uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// File f's words; a planted partner p = f + 1 (for f in the planted set)
// takes `shared` of f's words and the rest of its own.
void WordsOf(uint32_t f, uint32_t planted_every, LocalWords& w) {
  w.clear();
  auto draw = [](uint64_t& state) -> uint32_t {
    const uint64_t r = Mix(state += 0x9E3779B97F4A7C15ull);
    if ((r & 0xFFFF) < uint64_t(kCommonShare * 65536)) {
      // Skewed: a few common words are very common.
      const double u = double((r >> 16) & 0xFFFFFF) / double(1 << 24);
      return uint32_t(Mix(0xC0FFEEull + uint64_t(u * u * u * kCommonPool)));
    }
    return uint32_t(r >> 32);
  };
  const bool is_partner = planted_every && f % planted_every == 1;
  int own = kWords;
  if (is_partner) {
    uint64_t original = Mix(f - 1 + 1);  // the original's stream
    const int shared = 6 + int(Mix(f * 7919ull) % 55);
    for (int k = 0; k < shared; ++k) w.push_back(draw(original));
    own -= shared;
  }
  uint64_t state = Mix(f + 1) ^ 0x5555;
  if (!is_partner) state = Mix(f + 1);
  for (int k = 0; k < own; ++k) w.push_back(draw(state));
  std::sort(w.begin(), w.end());
  w.erase(std::unique(w.begin(), w.end()), w.end());
}

double PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench-candidates FILES [PLANTED] [MEMORY_MB] [BRUTE_SUBSET]\n");
    return 2;
  }
  const uint32_t files = uint32_t(std::strtoul(argv[1], nullptr, 10));
  const uint32_t planted = argc > 2 ? uint32_t(std::strtoul(argv[2], nullptr, 10)) : files / 100;
  const int64_t memory_mb = argc > 3 ? std::strtoll(argv[3], nullptr, 10) : 512;
  const uint32_t brute = argc > 4 ? uint32_t(std::strtoul(argv[4], nullptr, 10)) : 0;
  const uint32_t every = planted ? std::max<uint32_t>(2, files / planted) : 0;

  LocalWordSource source = [&](const auto& visit) {
    LocalWords w;
    for (uint32_t f = 0; f < files; ++f) {
      WordsOf(f, every, w);
      visit(f, w);
    }
    return Status::OK();
  };
  LocalCandidateOptions o;
  o.memory_bytes = memory_mb << 20;
  LocalCandidateStats st;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = FindLocalCandidates(source, files, {}, o, &st);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) {
    std::fprintf(stderr, "bench-candidates: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::set<std::pair<uint32_t, uint32_t>> got;
  for (const auto& c : *r) got.insert({c.a, c.b});
  uint32_t planted_total = 0, planted_found = 0;
  for (uint32_t f = 0; every && f + 1 < files; ++f)
    if (f % every == 0) {
      ++planted_total;
      planted_found += got.count({f, f + 1});
    }
  std::printf(
      "{\"files\": %u, \"seconds\": %.2f, \"peak_rss_mb\": %.0f, \"passes\": %d, \"words\": %lld, "
      "\"stop_words\": %lld, \"pairs_counted\": %lld, \"candidates\": %zu, "
      "\"candidates_per_file\": %.3f, \"planted\": %u, \"planted_found\": %u",
      files, secs, PeakRssMb(), st.passes, (long long)st.words, (long long)st.stop_words,
      (long long)st.pairs_counted, r->size(), 2.0 * double(r->size()) / files, planted_total,
      planted_found);
  if (brute > 1) {
    std::vector<LocalWords> w(brute);
    for (uint32_t f = 0; f < brute; ++f) WordsOf(f, every, w[f]);
    const auto b0 = std::chrono::steady_clock::now();
    uint64_t sink = 0;
    for (uint32_t a = 0; a < brute; ++a)
      for (uint32_t b = a + 1; b < brute; ++b) {
        size_t i = 0, j = 0, n = 0;
        while (i < w[a].size() && j < w[b].size()) {
          if (w[a][i] < w[b][j])
            ++i;
          else if (w[b][j] < w[a][i])
            ++j;
          else
            ++n, ++i, ++j;
        }
        sink += n;
      }
    const double bs = std::chrono::duration<double>(std::chrono::steady_clock::now() - b0).count();
    const double scale = (double(files) / brute) * (double(files) / brute);
    std::printf(
        ", \"brute_subset\": %u, \"brute_seconds\": %.2f, \"brute_extrapolated_seconds\": %.0f, "
        "\"sink\": %llu",
        brute, bs, bs * scale, (unsigned long long)sink);
  }
  std::printf("}\n");
  return planted_found == planted_total ? 0 : 3;
}
