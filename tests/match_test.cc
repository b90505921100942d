// Matching end to end on the sample collection (known answers in its
// EXPECTED.md), and the rules on synthetic records: featureless pictures,
// chaining, stable cluster ids, incremental runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "doppel/calibrate.h"
#include "doppel/match.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunDoppel;
using testing::TempDir;

// Builds the sample collection (scripts/make-sample) in a temp folder.
bool MakeSample(const fs::path& dir) {
  const std::string cmd = std::string(DOPPEL_SOURCE_DIR) + "/scripts/make-sample '" + dir.string() +
                          "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

class SampleMatch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    if (!MakeSample(dir_->path() / "sample")) {
      failed_ = true;
      return;
    }
    db_ = (dir_->path() / "c.db").string();
    RunDoppel({"--db", db_, "init"});
    for (const char* s : {"urbanisme", "apur", "archives"})
      RunDoppel({"--db", db_, "source", "add", s, (dir_->path() / "sample" / s).string()});
    RunDoppel({"--db", db_, "scan"});
    auto m = RunDoppel({"--db", db_, "match", "--json"});
    summary_ = json::parse(m.out, nullptr, false);
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override {
    if (failed_) {
      if (testing::InCi())
        FAIL()
            << "scripts/make-sample failed (are mate-backgrounds and ukui-wallpapers installed?)";
      GTEST_SKIP() << "scripts/make-sample failed: install mate-backgrounds and ukui-wallpapers";
    }
  }
  // path relative to the sample -> cluster id (absent: in no cluster)
  std::map<std::string, int64_t> ClusterOf() {
    auto r = RunDoppel({"--db", db_, "clusters", "--format", "json"});
    std::map<std::string, int64_t> out;
    const std::string root = (dir_->path() / "sample").string() + "/";
    for (const auto& c : json::parse(r.out))
      for (const auto& m : c["members"])
        out[m["path"].get<std::string>().substr(root.size())] = c["id"];
    return out;
  }
  static TempDir* dir_;
  static std::string db_;
  static json summary_;
  static bool failed_;
};
TempDir* SampleMatch::dir_ = nullptr;
std::string SampleMatch::db_;
json SampleMatch::summary_;
bool SampleMatch::failed_ = false;

TEST_F(SampleMatch, EveryKnownCopyIsClusteredWithItsOriginal) {
  auto cl = ClusterOf();
  // Group -> files that must share one cluster (EXPECTED.md, levels exact,
  // pixels and near; the 90% crop of G15 is only "similar").
  const std::vector<std::vector<std::string>> groups = {
      {"urbanisme/2023/arr-01/IMG_0042.jpg", "apur/etudes/facade rue de Rivoli.jpg",
       "archives/numerisation/IMG_0042 (1).jpg", "apur/web/vignettes/IMG_0042_vignette.jpg"},
      {"urbanisme/2023/arr-01/IMG_0043.jpg", "apur/etudes/IMG_0043_demi.jpg"},
      {"urbanisme/2023/arr-04/IMG_0107.jpg", "archives/fonds-1970/église Saint-Eustache.jpg",
       "apur/photos/IMG_0107 légendé.jpg"},
      {"urbanisme/2023/arr-04/IMG_0108.jpg", "apur/cartographie/IMG_0108.png"},
      {"urbanisme/2024/arr-11/DSC_2210.JPG", "archives/numerisation/DSC_2210_q70.jpg"},
      {"urbanisme/2024/arr-11/DSC_2211.JPG", "apur/photos/DSC_2211.JPG"},
      {"urbanisme/2024/arr-15/DSC_2304.jpg", "urbanisme/2024/arr-15/DSC_2304-export.jpg"},
      {"urbanisme/2022/arr-20/IMG_9001.jpg", "archives/numerisation/IMG_9001.jpg"},
      {"apur/etudes/berges de Seine.jpg", "urbanisme/2024/arr-11/copie berges de Seine.jpg",
       "apur/web/berges-de-seine.webp"},
      {"apur/etudes/Halles - canopée.jpg", "archives/fonds-1970/Halles canopée N&B.jpg"},
      {"apur/etudes/2022/jardin partagé 20e.jpg",
       "apur/etudes/2022/jardin partagé 20e (pivoté).jpg"},
      {"apur/photos/P1010456.jpg", "archives/fonds-1985/P1010456.jpg"},
      {"archives/fonds-1970/boite-12/cliché_0002.jpg",
       "archives/fonds-1970/boite-12/cliché_0002_16bit.tif"},
      {"archives/fonds-1985/vue_0311.jpg", "archives/numerisation/vue_0311.tif"},
      // The 90% centre crop is found by the geometric check (docs/matching.md).
      {"archives/fonds-1985/vue_0312.jpg", "urbanisme/2023/arr-04/vue_0312.jpg",
       "archives/fonds-1985/vue_0312_recadrée.jpg"},
  };
  std::set<int64_t> ids;
  for (const auto& g : groups) {
    ASSERT_TRUE(cl.count(g[0])) << g[0] << " is in no cluster";
    for (const auto& f : g) EXPECT_EQ(cl[f], cl[g[0]]) << f << " is not clustered with " << g[0];
    ids.insert(cl[g[0]]);
  }
  EXPECT_EQ(ids.size(), groups.size()) << "two groups were merged";
  EXPECT_EQ(cl.size(), 35u) << "a file that copies nothing was clustered";
}

TEST_F(SampleMatch, LookAlikesAreOnlyProposedForReview) {
  auto cl = ClusterOf();
  EXPECT_FALSE(cl.count("urbanisme/2024/arr-15/DSC_2305.jpg"));
  EXPECT_FALSE(cl.count("archives/fonds-1985/vue_0313.jpg"));
  auto pairs =
      json::parse(RunDoppel({"--db", db_, "pairs", "--format", "json", "--kind", "similar"}).out);
  // The look-alike pair of the sample (EXPECTED.md, L1): both of its files,
  // proposed as "similar" with each other, not with anything else.
  bool lookalike = false;
  for (const auto& p : pairs) {
    const std::string a = p["path_a"], b = p["path_b"];
    const bool cold = a.ends_with("arr-15/DSC_2305.jpg") || b.ends_with("arr-15/DSC_2305.jpg");
    const bool warm =
        a.ends_with("fonds-1985/vue_0313.jpg") || b.ends_with("fonds-1985/vue_0313.jpg");
    if (cold && warm) lookalike = true;
    EXPECT_EQ(cold, warm) << "a look-alike proposed with another file: " << a << " / " << b;
    if (cold && warm) {
      EXPECT_EQ(p["kind"], "similar");
    }
  }
  EXPECT_TRUE(lookalike) << "the sample's look-alike pair (L1) was not proposed";
}

TEST_F(SampleMatch, PairsCsvHasTheDocumentedHeaderAndExplainSaysWhy) {
  auto csv = RunDoppel({"--db", db_, "pairs"});
  EXPECT_EQ(csv.out.substr(0, csv.out.find('\n')),
            "path_a,path_b,kind,distance,transform,correlation,source_a,source_b,reason");
  const fs::path s = dir_->path() / "sample";
  auto e = RunDoppel({"explain", (s / "urbanisme/2022/arr-20/IMG_9001.jpg").string(),
                      (s / "archives/numerisation/IMG_9001.jpg").string(), "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  auto j = json::parse(e.out);
  EXPECT_EQ(j["kind"], "near");
  EXPECT_NE(j["verdict"].get<std::string>().find("near copy"), std::string::npos);
  auto no = RunDoppel({"explain", (s / "apur/photos/P1010457.jpg").string(),
                       (s / "apur/photos/P1010460.jpg").string()});
  EXPECT_NE(no.out.find("verdict: not duplicates"), std::string::npos) << no.out;
}

TEST_F(SampleMatch, RerunsAreIncrementalAndClusterIdsStable) {
  auto before = ClusterOf();
  auto again = json::parse(RunDoppel({"--db", db_, "match", "--json"}).out);
  EXPECT_EQ(again["new_files"], 0);
  EXPECT_EQ(ClusterOf(), before);
  auto re = json::parse(RunDoppel({"--db", db_, "match", "--rematch", "--json"}).out);
  EXPECT_EQ(re["new_files"], summary_["files"]);
  EXPECT_EQ(ClusterOf(), before);
}

MatchInput Synthetic(int64_t id, uint8_t seed, int quality) {
  MatchInput m;
  m.file_id = id;
  m.fingerprints.sha256.fill(uint8_t(id));
  m.fingerprints.content_hash.fill(uint8_t(id + 100));
  for (int k = 0; k < 16; ++k)
    m.fingerprints.pdq.hash.words[k] = uint16_t(seed * 2654435761u >> (k % 16));
  m.fingerprints.pdq.dihedral.fill(PdqHash{});  // other orientations: far away
  for (auto& w : m.fingerprints.pdq.dihedral[1].words) w = 0x5555;
  m.fingerprints.pdq.dihedral[0] = m.fingerprints.pdq.hash;
  m.fingerprints.pdq.quality = quality;
  m.fingerprints.signature.smooth = m.fingerprints.pdq;
  for (int i = 0; i < kThumbSide * kThumbSide; ++i)
    m.fingerprints.signature.thumb[i] = uint8_t((i * 7 + seed) % 251);
  m.info = {"jpeg", 1000, 800, 3, 8, 1, 1, false, "srgb"};
  return m;
}

PdqHash Flip(PdqHash h, int first, int count) {
  for (int k = first; k < first + count; ++k) h.words[k >> 4] ^= uint16_t(1u << (k & 15));
  return h;
}

TEST(MatchRules, FeaturelessPicturesAreNeverNearCopies) {
  MatchInput a = Synthetic(1, 3, 20), b = Synthetic(2, 3, 20);  // blank-page quality
  auto m = Compare(a, b, MatchOptions{});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->kind, MatchKind::kSimilar);
  EXPECT_NE(m->reason.find("too plain"), std::string::npos) << m->reason;
  a.fingerprints.pdq.quality = b.fingerprints.pdq.quality = 90;
  EXPECT_EQ(Compare(a, b, MatchOptions{})->kind, MatchKind::kNear);
}

TEST(MatchRules, ThumbnailsThatDisagreeMakeLookAlikesNotCopies) {
  MatchInput a = Synthetic(1, 3, 90), b = Synthetic(2, 3, 90);
  for (int i = 0; i < kThumbSide * kThumbSide; ++i)
    b.fingerprints.signature.thumb[i] = uint8_t((i * 13 + 5) % 241);
  auto m = Compare(a, b, MatchOptions{});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->kind, MatchKind::kSimilar);
  EXPECT_NE(m->reason.find("thumbnails disagree"), std::string::npos) << m->reason;
}

TEST(MatchRules, ClustersDoNotChain) {
  // A ~ B (20 bits), B ~ C (20 bits), A and C 40 bits apart: A is the better
  // master, so C must not join A's cluster through B.
  MatchInput a = Synthetic(1, 9, 90), b = Synthetic(2, 9, 90), c = Synthetic(3, 9, 90);
  b.fingerprints.pdq.hash = b.fingerprints.pdq.dihedral[0] = Flip(a.fingerprints.pdq.hash, 0, 20);
  c.fingerprints.pdq.hash = c.fingerprints.pdq.dihedral[0] = Flip(b.fingerprints.pdq.hash, 20, 20);
  for (auto* m : {&b, &c}) m->fingerprints.signature.smooth = m->fingerprints.pdq;
  a.info.width = 4000;  // the best master candidate (same shape, more pixels)
  a.info.height = 3200;
  std::vector<Match> matches;
  for (auto [x, y] : {std::pair{&a, &b}, std::pair{&b, &c}, std::pair{&a, &c}})
    if (auto m = Compare(*x, *y, MatchOptions{})) matches.push_back(*m);
  int automatic = 0;
  for (const auto& m : matches) automatic += IsAutomatic(m.kind);
  ASSERT_EQ(automatic, 2);  // A-C is at most "similar"
  auto clusters = BuildClusters({a, b, c}, matches);
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0].master_file_id, 1);
  ASSERT_EQ(clusters[0].members.size(), 2u);
  EXPECT_EQ(clusters[0].members[1].file_id, 2);
}

TEST(MatchRules, MastersRankBySourceThenPixelsThenDepthThenLossless) {
  MatchInput a = Synthetic(1, 1, 90), b = Synthetic(2, 1, 90);
  b.source_priority = 1;
  EXPECT_TRUE(RanksBefore(b, a));
  b.source_priority = 0;
  b.info.width = 2000;
  EXPECT_TRUE(RanksBefore(b, a));
  b.info.width = 1000;
  b.info.bit_depth = 16;
  EXPECT_TRUE(RanksBefore(b, a));
  b.info.bit_depth = 8;
  b.info.format = "tiff";
  EXPECT_TRUE(RanksBefore(b, a));
  b.info.format = "jpeg";
  EXPECT_TRUE(RanksBefore(a, b));  // tie: lower id
}

}  // namespace
}  // namespace doppel

namespace doppel {
namespace {

// A clustered file that is then broken (or deleted) must not break listings
// before the next match run, and the next run drops it from its cluster.
TEST(MatchCli, ListingsSurviveFilesChangingAfterMatch) {
  TempDir tmp;
  const std::string db = (tmp / "c.db").string();
  testing::MakeImage(tmp / "d" / "a.jpg", 640, 480, 1, "[Q=95]");
  testing::MakeImage(tmp / "d" / "a-q60.jpg", 640, 480, 1, "[Q=60]");
  testing::MakeImage(tmp / "d" / "a-q40.jpg", 640, 480, 1, "[Q=40]");
  ASSERT_EQ(RunDoppel({"--db", db, "init"}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db, "source", "add", "d", (tmp / "d").string()}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db, "scan"}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db, "match"}).exit_code, 0);
  auto before = json::parse(RunDoppel({"--db", db, "clusters", "--format", "json"}).out);
  ASSERT_EQ(before.size(), 1u);
  ASSERT_EQ(before[0]["members"].size(), 3u);
  testing::WriteFile(tmp / "d" / "a-q40.jpg", "now broken");
  EXPECT_EQ(RunDoppel({"--db", db, "scan"}).exit_code, 3);
  auto mid = RunDoppel({"--db", db, "clusters", "--format", "json"});
  ASSERT_EQ(mid.exit_code, 0) << mid.err;
  EXPECT_EQ(json::parse(mid.out)[0]["members"].size(), 2u);
  EXPECT_EQ(RunDoppel({"--db", db, "pairs"}).exit_code, 0);
  auto again = json::parse(RunDoppel({"--db", db, "match", "--json"}).out);
  EXPECT_EQ(again["new_files"], 0);
  auto after = json::parse(RunDoppel({"--db", db, "clusters", "--format", "json"}).out);
  EXPECT_EQ(after[0]["id"], before[0]["id"]);  // same master, same id
  EXPECT_EQ(after[0]["members"].size(), 2u);
}

// --- Calibration (include/doppel/calibrate.h) ---

TEST(Calibration, ReadsLabelledPairsAndNamesTheRowsItSkips) {
  TempDir tmp;
  testing::WriteFile(tmp / "labels.csv",
                     "path_a,path_b,same\n"   // the header: skipped silently
                     "a.jpg,sub/b.jpg,1\n"    // relative: to the CSV's folder
                     "/abs/c.jpg,d.jpg,No\n"  // absolute kept; any case
                     "e.jpg,f.jpg\n"          // too short: ignored
                     "\n"
                     "g.jpg,h.jpg,perhaps\n"       // named, with its line
                     "\"i,1.jpg\",j.jpg,TRUE\n");  // CSV quoting
  auto r = ReadLabelledPairs((tmp / "labels.csv").string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::string dir = tmp.path().string();
  ASSERT_EQ(r->pairs.size(), 3u);
  EXPECT_EQ(r->pairs[0].a, dir + "/a.jpg");
  EXPECT_EQ(r->pairs[0].b, dir + "/sub/b.jpg");
  EXPECT_TRUE(r->pairs[0].same);
  EXPECT_EQ(r->pairs[1].a, "/abs/c.jpg");
  EXPECT_FALSE(r->pairs[1].same);
  EXPECT_EQ(r->pairs[2].a, dir + "/i,1.jpg");
  EXPECT_TRUE(r->pairs[2].same);
  ASSERT_EQ(r->skipped.size(), 1u);
  EXPECT_NE(r->skipped[0].find("labels.csv:6: 'same' must be"), std::string::npos) << r->skipped[0];
  EXPECT_EQ(ReadLabelledPairs((tmp / "none.csv").string()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Calibrate({}, CalibrateOptions{}).status().code(), StatusCode::kInvalidArgument);
}

ThresholdFigures Figures(int t, int64_t tp, int64_t fp, int64_t fn, int64_t tn) {
  ThresholdFigures f;
  f.threshold = t;
  f.tp = tp;
  f.fp = fp;
  f.fn = fn;
  f.tn = tn;
  return f;
}

TEST(Calibration, RecommendsTheMostRecallAtThePrecisionGoalElseTheBestF1) {
  bool precise = false;
  // Precision 1 at 0-2, recall growing to 2; at 3 a false positive: 0.75.
  std::vector<ThresholdFigures> rows = {Figures(0, 100, 0, 100, 50), Figures(1, 150, 0, 50, 50),
                                        Figures(2, 150, 0, 50, 50), Figures(3, 199, 66, 1, 0)};
  EXPECT_EQ(RecommendThreshold(rows, &precise), 1u);  // the lowest of the best recall
  EXPECT_TRUE(precise);
  // 995 / 1000 meets the goal exactly.
  rows.push_back(Figures(4, 199, 1, 1, 49));
  EXPECT_EQ(RecommendThreshold(rows, &precise), 4u);
  EXPECT_TRUE(precise);
  // Nothing reaches 0.995: the best F1 (2 x 0.9 x 0.9 / 1.8 = 0.9 at 1).
  std::vector<ThresholdFigures> noisy = {Figures(0, 50, 10, 50, 0), Figures(1, 90, 10, 10, 0),
                                         Figures(2, 100, 40, 0, 0)};
  EXPECT_EQ(RecommendThreshold(noisy, &precise), 1u);
  EXPECT_FALSE(precise);
  EXPECT_NEAR(noisy[1].f1(), 0.9, 1e-12);
}

}  // namespace
}  // namespace doppel
