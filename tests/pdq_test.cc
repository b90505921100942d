// PDQ conformance against the reference tool's outputs, and the dihedral set.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "doppel/fingerprint.h"
#include "doppel/pdq.h"
#include "test_util.h"

namespace doppel {
namespace {

using testing::TestDataDir;

struct Expected {
  std::string file, hash;
  int quality = -1;  // -1: the reference gave none
};

std::vector<Expected> LoadExpected() {
  std::vector<Expected> out;
  std::ifstream in(TestDataDir() + "/pdq/expected.csv");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    Expected e;
    std::string q;
    std::getline(ss, e.file, ',');
    std::getline(ss, e.hash, ',');
    std::getline(ss, q, ',');
    if (!q.empty()) e.quality = std::stoi(q);
    out.push_back(e);
  }
  return out;
}

class PdqTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(InitImaging().ok()); }
};

TEST_F(PdqTest, HexRoundTripAndBitLayout) {
  PdqHash h;
  h.set_bit(0);    // word 0, bit 0: the last hex digit
  h.set_bit(255);  // word 15, bit 15: the first hex digit
  std::string hex = h.ToHex();
  EXPECT_EQ(hex.front(), '8');
  EXPECT_EQ(hex.back(), '1');
  auto back = PdqHash::FromHex(hex);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, h);
  EXPECT_EQ(PdqHash::FromBytes(h.ToBytes().data()), h);
  EXPECT_FALSE(PdqHash::FromHex("xyz"));
  EXPECT_FALSE(PdqHash::FromHex(std::string(64, 'g')));
  EXPECT_EQ(HammingDistance(h, PdqHash{}), 2);
}

TEST_F(PdqTest, TinyImagesHashToZero) {
  std::vector<float> px(4 * 100, 128.0f);
  PdqResult r = PdqFromLuminance(px.data(), 4, 100);
  EXPECT_EQ(r.hash, PdqHash{});
  EXPECT_EQ(r.quality, 0);
}

TEST_F(PdqTest, FlatImageHasLowQuality) {
  std::vector<float> px(300 * 200, 77.0f);
  EXPECT_EQ(PdqFromLuminance(px.data(), 300, 200).quality, 0);
}

// The reference's own conformance rule: every image of quality >= 80 within
// 10 bits. We print the median and the worst distance over all images.
TEST_F(PdqTest, MatchesReferenceHashes) {
  DOPPEL_REQUIRE_TESTDATA();
  auto expected = LoadExpected();
  ASSERT_GE(expected.size(), 25u);
  std::vector<int> distances;
  for (const auto& e : expected) {
    auto r = AnalyseFile(TestDataDir() + "/pdq/" + e.file, AnalyseOptions{});
    ASSERT_TRUE(r.ok()) << e.file << ": " << r.status().ToString();
    auto ref = PdqHash::FromHex(e.hash);
    ASSERT_TRUE(ref) << e.file;
    const int d = HammingDistance(r->fingerprints.pdq.hash, *ref);
    distances.push_back(d);
    if (e.quality >= 80) {
      EXPECT_LE(d, 10) << e.file << " is " << d << " bits from the reference";
    }
    if (e.quality >= 0) {
      EXPECT_NEAR(r->fingerprints.pdq.quality, e.quality, 5) << e.file;
    }
  }
  std::sort(distances.begin(), distances.end());
  std::printf("[ pdq      ] %zu reference images: median distance %d, worst %d bits\n",
              distances.size(), distances[distances.size() / 2], distances.back());
}

// Each file of dih/ is the original in one orientation; the matching dihedral
// variant of the original's hash must land near that file's hash, and far
// from the unrelated orientations.
TEST_F(PdqTest, DihedralVariantsLandNearTheirOrientation) {
  DOPPEL_REQUIRE_TESTDATA();
  const char* files[8] = {"bridge-1-original.jpg",    "bridge-2-rotate-90.jpg",
                          "bridge-3-rotate-180.jpg",  "bridge-4-rotate-270.jpg",
                          "bridge-5-flipx.jpg",       "bridge-6-flipy.jpg",
                          "bridge-7-flip-plus-1.jpg", "bridge-8-flip-minus-1.jpg"};
  PdqHash hashes[8];
  for (int k = 0; k < 8; ++k) {
    auto r = AnalyseFile(TestDataDir() + "/pdq/dih/" + files[k], AnalyseOptions{});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    hashes[k] = r->fingerprints.pdq.hash;
  }
  auto orig = AnalyseFile(TestDataDir() + "/pdq/dih/" + files[0], AnalyseOptions{});
  ASSERT_TRUE(orig.ok());
  for (int k = 0; k < 8; ++k) {
    const PdqHash& variant = orig->fingerprints.pdq.dihedral[k];
    const int d = HammingDistance(variant, hashes[k]);
    std::printf("[ dihedral ] %-10s variant vs %-28s %3d bits\n", DihedralName(Dihedral(k)),
                files[k], d);
    // Not zero: the rotated files were re-encoded, and centre-sample
    // decimation is not symmetric under reflection. Well inside the match
    // threshold (31) and far from every other orientation.
    EXPECT_LE(d, 24) << DihedralName(Dihedral(k));
    for (int other = 0; other < 8; ++other)
      if (other != k) {
        EXPECT_GT(HammingDistance(variant, hashes[other]), 40) << k << " vs " << other;
      }
  }
}

}  // namespace
}  // namespace doppel
