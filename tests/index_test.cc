// The PDQ index against its oracle: a plain loop over every hash. Real hash
// lists (the reference's haystack and needles) and random sets with planted
// near pairs, at radii on both sides of where multi-index hashing hands over.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>
#include <tuple>

#include "doppel/index.h"
#include "test_util.h"

namespace doppel {
namespace {

using Triple = std::tuple<uint32_t, uint32_t, int>;

PdqHash RandomHash(std::mt19937_64& rng) {
  PdqHash h;
  for (auto& w : h.words) w = uint16_t(rng());
  return h;
}

PdqHash FlipBits(PdqHash h, int bits, std::mt19937_64& rng) {
  std::set<int> chosen;
  while (int(chosen.size()) < bits) chosen.insert(int(rng() % 256));
  for (int k : chosen) h.words[k >> 4] ^= uint16_t(1u << (k & 15));
  return h;
}

std::vector<Neighbour> Naive(const std::vector<PdqHash>& hs, const PdqHash& q, int r) {
  std::vector<Neighbour> out;
  for (uint32_t i = 0; i < hs.size(); ++i) {
    int d = HammingDistance(q, hs[i]);
    if (d <= r) out.push_back({i, uint16_t(d)});
  }
  return out;
}

std::set<Triple> NaiveJoin(const std::vector<PdqHash>& hs, int r) {
  std::set<Triple> out;
  for (uint32_t i = 0; i < hs.size(); ++i)
    for (uint32_t j = i + 1; j < hs.size(); ++j) {
      int d = HammingDistance(hs[i], hs[j]);
      if (d <= r) out.insert({i, j, d});
    }
  return out;
}

std::set<Triple> Join(const PdqIndex& idx, int r, int threads, PdqIndex::Method m) {
  std::set<Triple> out;
  size_t calls = 0;
  idx.SelfJoin(
      r, threads,
      [&](uint32_t a, uint32_t b, int d) {
        ++calls;
        out.insert({a, b, d});
      },
      m);
  EXPECT_EQ(calls, out.size()) << "a pair was reported twice";
  return out;
}

std::vector<PdqHash> LoadHashes(const std::string& path) {
  std::vector<PdqHash> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto h = PdqHash::FromHex(line.substr(0, 64));
    EXPECT_TRUE(h) << line;
    if (h) out.push_back(*h);
  }
  return out;
}

// Each kernel the CPU can run against a bit-by-bit count (an oracle that
// shares no code with the kernels). On a CPU without AVX-512 VPOPCNTDQ that
// kernel is reported as not checked rather than silently compared with itself.
TEST(HammingKernel, EverySupportedKernelAgreesWithBitByBitCount) {
  std::mt19937_64 rng(1);
  std::vector<PdqHash> hs(1001);
  for (auto& h : hs) h = RandomHash(rng);
  hs[5] = hs[0];                      // distance 0
  hs[7] = FlipBits(hs[0], 256, rng);  // distance 256
  auto bit_by_bit = [](const PdqHash& a, const PdqHash& b) {
    int d = 0;
    for (int k = 0; k < 256; ++k) d += a.bit(k) != b.bit(k);
    return d;
  };
  int selected = 0, checked = 0;
  for (const HammingKernel& k : HammingKernels()) {
    selected += k.selected;
    if (!k.supported) {
      std::printf("[ kernel   ] %s: not checked (this CPU lacks it)\n", k.name);
      continue;
    }
    ++checked;
    for (size_t n : {0, 1, 2, 3, 999, 1001}) {
      std::vector<uint16_t> got(n, 0xffff);
      k.fn(hs[0], hs.data(), n, got.data());
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(got[i], bit_by_bit(hs[0], hs[i])) << k.name << " n=" << n << " i=" << i;
    }
    std::printf("[ kernel   ] %s: agrees%s\n", k.name, k.selected ? " (selected)" : "");
  }
  EXPECT_EQ(selected, 1) << "exactly one kernel serves HammingDistances";
  EXPECT_GE(checked, 1);
  std::vector<uint16_t> got(hs.size());
  HammingDistances(hs[0], hs.data(), hs.size(), got.data());
  for (size_t i = 0; i < hs.size(); ++i) ASSERT_EQ(got[i], bit_by_bit(hs[0], hs[i])) << i;
}

TEST(PdqIndex, ReferenceHaystackAndNeedles) {
  DOPPEL_REQUIRE_TESTDATA();
  auto hay = LoadHashes(testing::TestDataDir() + "/pdq/haystack.txt");
  auto needles = LoadHashes(testing::TestDataDir() + "/pdq/needles.txt");
  ASSERT_EQ(hay.size(), 1350u);
  ASSERT_EQ(needles.size(), 100u);
  PdqIndex idx;
  idx.Build(hay);
  QueryScratch scratch;
  size_t total = 0;
  for (int r : {0, 10, 16, 31, 32, 47, 63, 95}) {
    for (const auto& q : needles) {
      auto want = Naive(hay, q, r);
      std::vector<Neighbour> got;
      for (auto m : {PdqIndex::Method::kAuto, PdqIndex::Method::kMultiIndex,
                     PdqIndex::Method::kBruteForce}) {
        idx.Query(q, r, got, scratch, m);
        ASSERT_EQ(got, want) << "radius " << r << " method " << int(m);
      }
      if (r == 31) total += want.size();
    }
  }
  std::printf("[ index    ] %zu needle-haystack matches at radius 31, all exact\n", total);
  EXPECT_GT(total, 0u);
}

TEST(PdqIndex, RandomSetsWithPlantedPairs) {
  std::mt19937_64 rng(42);
  std::vector<PdqHash> hs;
  for (int i = 0; i < 6000; ++i) hs.push_back(RandomHash(rng));
  // Planted pairs at every distance 0..40, and a tight cluster (near copies of
  // one photo) where pairs qualify in many slots at once.
  for (int d = 0; d <= 40; ++d)
    for (int k = 0; k < 5; ++k) hs.push_back(FlipBits(hs[size_t(rng() % 6000)], d, rng));
  const PdqHash centre = RandomHash(rng);
  for (int k = 0; k < 60; ++k) hs.push_back(FlipBits(centre, int(rng() % 12), rng));
  std::shuffle(hs.begin(), hs.end(), rng);
  PdqIndex idx;
  idx.Build(hs);
  QueryScratch scratch;
  for (int r : {0, 15, 16, 31, 40, 63}) {
    for (int q = 0; q < 200; ++q) {
      const PdqHash& needle = q % 2 ? hs[size_t(rng() % hs.size())] : RandomHash(rng);
      std::vector<Neighbour> got;
      idx.Query(needle, r, got, scratch);
      ASSERT_EQ(got, Naive(hs, needle, r)) << "radius " << r;
    }
  }
  for (int r : {0, 15, 31, 40}) {
    auto want = NaiveJoin(hs, r);
    for (int threads : {1, 2}) {
      EXPECT_EQ(Join(idx, r, threads, PdqIndex::Method::kAuto), want)
          << "radius " << r << " threads " << threads;
      EXPECT_EQ(Join(idx, r, threads, PdqIndex::Method::kBruteForce), want) << "radius " << r;
    }
    if (r == 31) {
      EXPECT_GE(want.size(), 32u * 5 + 60 * 59 / 2 - 100);
    }
  }
}

TEST(PdqIndex, IncrementalAddsAreSearchableAtOnce) {
  std::mt19937_64 rng(7);
  std::vector<PdqHash> hs;
  PdqIndex idx;
  QueryScratch scratch;
  for (int i = 0; i < 5000; ++i) {
    PdqHash h = i % 10 == 0 && i ? FlipBits(hs[size_t(rng() % hs.size())], int(rng() % 30), rng)
                                 : RandomHash(rng);
    hs.push_back(h);
    ASSERT_EQ(idx.Add(h), uint32_t(i));
    if (i % 250 == 0) {
      std::vector<Neighbour> got;
      idx.Query(h, 31, got, scratch);
      ASSERT_EQ(got, Naive(hs, h, 31)) << i;
    }
  }
}

TEST(PdqIndex, UnderOneHundredTwentyEightBytesPerHash) {
  std::mt19937_64 rng(3);
  std::vector<PdqHash> hs(200000);
  for (auto& h : hs) h = RandomHash(rng);
  PdqIndex idx;
  idx.Build(std::move(hs));
  const double per = double(idx.MemoryBytes()) / double(idx.size());
  std::printf("[ index    ] %.1f bytes per hash at 200,000 hashes\n", per);
  EXPECT_LE(per, 128.0);
}

}  // namespace
}  // namespace doppel
