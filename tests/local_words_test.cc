// Local words and their inverted file: the index against brute force (an
// oracle that compares every pair), in one pass and in many; the stored
// form; and on real photos, that the edits a global hash misses keep enough
// words in common for the pair to be proposed, while `doppel match` then
// verifies them.
#include <gtest/gtest.h>
#include <vips/vips.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "doppel/fingerprint.h"
#include "doppel/local_words.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;

struct Collection {
  std::vector<LocalWords> words;
  LocalWordSource Source() const {
    return [this](const auto& visit) {
      for (uint32_t f = 0; f < words.size(); ++f)
        if (!words[f].empty()) visit(f, words[f]);
      return Status::OK();
    };
  }
};

// Files of random words from a small universe (so that unrelated files share
// a few words, and some words are common enough to be stop words), with
// pairs planted to share many.
Collection Synthetic(int files, int words_per_file, uint32_t universe, uint32_t seed) {
  std::mt19937 rng(seed);
  Collection c;
  c.words.resize(size_t(files));
  std::uniform_int_distribution<uint32_t> any(0, universe - 1);
  for (auto& w : c.words) {
    for (int k = 0; k < words_per_file; ++k) w.push_back(any(rng) * 2654435761u);
  }
  for (int f = 0; f + 1 < files; f += 7) {  // plant: f+1 takes 5..40 of f's words
    const int n = 5 + int(rng() % 36);
    for (int k = 0; k < n && k < int(c.words[size_t(f)].size()); ++k)
      c.words[size_t(f) + 1].push_back(c.words[size_t(f)][size_t(k)]);
  }
  c.words[3].clear();  // a featureless picture
  for (auto& w : c.words) {
    std::sort(w.begin(), w.end());
    w.erase(std::unique(w.begin(), w.end()), w.end());
  }
  return c;
}

std::map<std::pair<uint32_t, uint32_t>, int> BruteForce(const Collection& c,
                                                        const std::vector<bool>& fresh,
                                                        const LocalCandidateOptions& o) {
  std::unordered_map<uint32_t, int> df;
  for (const auto& w : c.words)
    for (uint32_t x : w) ++df[x];
  std::map<std::pair<uint32_t, uint32_t>, int> out;
  for (uint32_t a = 0; a < c.words.size(); ++a)
    for (uint32_t b = a + 1; b < c.words.size(); ++b) {
      if (!fresh.empty() && !fresh[a] && !fresh[b]) continue;
      int n = 0;
      for (uint32_t x : c.words[a])
        if (df[x] <= o.max_files_per_word &&
            std::binary_search(c.words[b].begin(), c.words[b].end(), x))
          ++n;
      if (n >= o.min_shared) out[{a, b}] = n;
    }
  return out;
}

std::map<std::pair<uint32_t, uint32_t>, int> AsMap(const std::vector<LocalCandidate>& v) {
  std::map<std::pair<uint32_t, uint32_t>, int> out;
  for (const auto& c : v) {
    EXPECT_LT(c.a, c.b);
    EXPECT_TRUE(out.insert({{c.a, c.b}, c.shared}).second) << "pair listed twice";
  }
  return out;
}

TEST(LocalIndexTest, FindsExactlyThePairsBruteForceFindsInOnePassAndInMany) {
  const Collection c = Synthetic(400, 300, 40'000, 1);
  LocalCandidateOptions o;
  o.min_shared = 4;
  o.max_files_per_word = 6;
  const auto expected = BruteForce(c, {}, o);
  ASSERT_GT(expected.size(), 80u) << "the planted pairs at least";
  for (int64_t memory : {int64_t(64) << 20, int64_t(16) << 10, int64_t(1) << 10}) {
    o.memory_bytes = memory;
    LocalCandidateStats st;
    auto got = FindLocalCandidates(c.Source(), uint32_t(c.words.size()), {}, o, &st);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(AsMap(*got), expected) << "memory " << memory << ", " << st.passes << " passes";
    if (memory < (int64_t(1) << 20)) EXPECT_GT(st.passes, 1);
    EXPECT_GT(st.stop_words, 0);
    // Strongest first.
    for (size_t k = 1; k < got->size(); ++k) EXPECT_GE((*got)[k - 1].shared, (*got)[k].shared);
  }
}

TEST(LocalIndexTest, OnlyPairsWithAFreshFileAreCounted) {
  const Collection c = Synthetic(300, 200, 20'000, 2);
  std::vector<bool> fresh(c.words.size());
  for (size_t f = 0; f < fresh.size(); f += 3) fresh[f] = true;
  LocalCandidateOptions o;
  auto got = FindLocalCandidates(c.Source(), uint32_t(c.words.size()), fresh, o);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(AsMap(*got), BruteForce(c, fresh, o));
  for (const auto& p : *got) EXPECT_TRUE(fresh[p.a] || fresh[p.b]);
}

TEST(LocalIndexTest, BadInputIsAnErrorNotACrash) {
  const Collection c = Synthetic(10, 50, 1000, 3);
  EXPECT_FALSE(FindLocalCandidates(c.Source(), 5, {}, {}).ok()) << "file index out of range";
  EXPECT_FALSE(FindLocalCandidates(c.Source(), 10, std::vector<bool>(3), {}).ok());
  LocalCandidateOptions o;
  o.min_shared = 0;
  EXPECT_FALSE(FindLocalCandidates(c.Source(), 10, {}, o).ok());
  LocalWordSource failing = [](const auto&) { return IOError("catalogue unreadable"); };
  auto r = FindLocalCandidates(failing, 10, {}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("catalogue unreadable"), std::string::npos);
}

TEST(LocalWordsTest, StoredFormRoundTripsAndRefusesDamage) {
  const LocalWords w = {1, 7, 0x80000000u, 0xFFFFFFFFu};
  const auto bytes = EncodeLocalWords(w);
  ASSERT_EQ(bytes.size(), 16u);
  EXPECT_EQ(bytes[4], 7);  // little-endian
  auto back = DecodeLocalWords(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, w);
  EXPECT_FALSE(DecodeLocalWords(std::span(bytes.data(), 15)).ok()) << "truncated";
  auto swapped = bytes;
  std::swap_ranges(swapped.begin(), swapped.begin() + 4, swapped.begin() + 4);
  EXPECT_FALSE(DecodeLocalWords(swapped).ok()) << "out of order";
}

// --- Real photos ---

using testing::Crop;

// The photo tests' copies are JPEG Q=85.
void WriteVariant(const std::string& original, const fs::path& out,
                  const std::function<VipsImage*(VipsImage*)>& edit) {
  testing::WriteVariant(original, out, edit, "[Q=85]");
}

VipsImage* TurnAndCrop(VipsImage* in, double degrees, double margin) {
  VipsImage* rot = nullptr;
  if (vips_similarity(in, &rot, "angle", degrees, nullptr)) return nullptr;
  VipsImage* out = Crop(rot, margin, margin, 1 - 2 * margin, 1 - 2 * margin);
  g_object_unref(rot);
  return out;
}

VipsImage* Band(VipsImage* in, double top, double height, double grey) {
  VipsImage* copy = nullptr;
  if (vips_copy(in, &copy, nullptr)) return nullptr;
  double ink[3] = {grey, grey * 0.8, grey * 0.4};
  if (vips_draw_rect(copy, ink, 3, 0, int(top * in->Ysize), in->Xsize, int(height * in->Ysize),
                     "fill", TRUE, nullptr))
    return nullptr;
  return copy;
}

class LocalWordsPhotoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitImaging().ok());
    DOPPEL_REQUIRE_PHOTO(photo_);
  }
  LocalWords Words(const std::string& path) {
    auto r = AnalyseFile(path, {});
    EXPECT_TRUE(r.ok()) << path << ": " << (r.ok() ? "" : r.status().ToString());
    return r.ok() ? r->fingerprints.local_words : LocalWords{};
  }
  static int Shared(const LocalWords& a, const LocalWords& b) {
    std::vector<uint32_t> c;
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(c));
    return int(c.size());
  }
  testing::TempDir dir_;
  std::string photo_;
};

TEST_F(LocalWordsPhotoTest, EditsTheGlobalHashMissesKeepWordsInCommon) {
  const LocalWords original = Words(photo_);
  ASSERT_GT(original.size(), size_t(kLocalKeypoints));  // a photo has plenty of keypoints
  EXPECT_EQ(Words(photo_), original) << "the same words on every run";
  struct Edit {
    const char* name;
    std::function<VipsImage*(VipsImage*)> fn;
  };
  const std::vector<Edit> edits = {
      {"turned 4 degrees, corners cropped", [](VipsImage* in) { return TurnAndCrop(in, 4, 0.09); }},
      {"turned -1.5 degrees", [](VipsImage* in) { return TurnAndCrop(in, -1.5, 0.04); }},
      {"left 22% cut", [](VipsImage* in) { return Crop(in, 0.22, 0, 0.78, 1); }},
      {"bottom 18% cut", [](VipsImage* in) { return Crop(in, 0, 0, 1, 0.82); }},
      {"caption band over 25%", [](VipsImage* in) { return Band(in, 0.75, 0.25, 200); }},
      {"half size",
       [](VipsImage* in) -> VipsImage* {
         VipsImage* out = nullptr;
         return vips_resize(in, &out, 0.5, nullptr) ? nullptr : out;
       }},
  };
  for (const auto& e : edits) {
    const fs::path out = dir_ / (std::string(e.name) + ".jpg");
    WriteVariant(photo_, out, e.fn);
    const int shared = Shared(original, Words(out.string()));
    EXPECT_GE(shared, 3 * LocalCandidateOptions{}.min_shared) << e.name;
  }
}

TEST_F(LocalWordsPhotoTest, AFlatPictureHasNoWords) {
  const fs::path flat = dir_ / "flat.png";
  WriteVariant(photo_, flat, [](VipsImage* in) -> VipsImage* {
    VipsImage* black = nullptr;
    return vips_black(&black, in->Xsize / 4, in->Ysize / 4, "bands", 3, nullptr) ? nullptr : black;
  });
  EXPECT_TRUE(Words(flat.string()).empty());
}

// End to end: a turned-and-cropped copy and a copy cut on one side, which the
// global hashes leave far apart, are proposed by their local words and
// verified by `doppel match` and `doppel explain` alike.
TEST_F(LocalWordsPhotoTest, MatchFindsTurnedAndOneSidedCropsThroughLocalWords) {
  const fs::path a = dir_ / "dept-a", b = dir_ / "dept-b", db = dir_ / "cat.db";
  fs::create_directories(a);
  fs::create_directories(b);
  testing::CopyFile(photo_, a / "original.jpg");
  WriteVariant(photo_, b / "turned.jpg", [](VipsImage* in) { return TurnAndCrop(in, 5, 0.12); });
  WriteVariant(photo_, b / "side.jpg", [](VipsImage* in) { return Crop(in, 0.25, 0, 0.75, 1); });
  using testing::RunDoppel;
  ASSERT_EQ(RunDoppel({"--db", db.string(), "init"}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db.string(), "source", "add", "a", a.string()}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db.string(), "source", "add", "b", b.string()}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db.string(), "scan"}).exit_code, 0);
  auto pairs_with_original = [&](bool local) {
    auto m = RunDoppel({"--db", db.string(), "match", "--rematch", "--json",
                        local ? "--max-checks-per-file=32" : "--no-local-words"});
    EXPECT_EQ(m.exit_code, 0) << m.err;
    auto p = RunDoppel({"--db", db.string(), "pairs", "--format", "json"});
    EXPECT_EQ(p.exit_code, 0) << p.err;
    std::set<std::string> found;
    for (const auto& row : nlohmann::json::parse(p.out)) {
      const std::string x = fs::path(row.value("path_a", "")).filename().string(),
                        y = fs::path(row.value("path_b", "")).filename().string();
      if (row.value("kind", "") != "near") continue;
      if (x == "original.jpg") found.insert(y);
      if (y == "original.jpg") found.insert(x);
    }
    return std::make_pair(nlohmann::json::parse(m.out), found);
  };
  auto [summary, found] = pairs_with_original(true);
  EXPECT_GE(summary.value("local_candidates", 0), 2) << summary.dump();
  EXPECT_EQ(summary.value("checks_skipped", -1), 0);
  EXPECT_TRUE(found.count("turned.jpg")) << summary.dump();
  EXPECT_TRUE(found.count("side.jpg")) << summary.dump();
  auto [summary_hash_only, found_hash_only] = pairs_with_original(false);
  EXPECT_EQ(summary_hash_only.value("local_candidates", -1), 0) << "--no-local-words";
  // `doppel explain` consults local features for the same pairs and agrees.
  for (const char* copy : {"turned.jpg", "side.jpg"}) {
    auto e = RunDoppel({"explain", "--json", (a / "original.jpg").string(), (b / copy).string()});
    ASSERT_EQ(e.exit_code, 0) << e.err;
    EXPECT_EQ(nlohmann::json::parse(e.out).value("kind", ""), "near") << copy << "\n" << e.out;
  }
}

}  // namespace
}  // namespace doppel
