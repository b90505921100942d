// Information first (docs/policy.md): for every kind of lesser copy held by
// a more authoritative department, the built-in policy keeps the richer copy;
// a policy that puts departments first keeps the lesser one and the plan
// says so. Real images, a real scan and match, a real SQLite catalogue.
#include "doppel/policy.h"

#include <gtest/gtest.h>
#include <vips/vips.h>

#include <filesystem>
#include <map>
#include <string>

#include "doppel/catalogue.h"
#include "doppel/replace.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using testing::MakeImage;
using testing::RunDoppel;
using testing::TempDir;

// Runs one libvips operation's output to a file; `options` like "[Q=40]".
void Save(VipsImage* img, const fs::path& to, const std::string& options = "") {
  fs::create_directories(to.parent_path());
  ASSERT_EQ(vips_image_write_to_file(img, (to.string() + options).c_str(), nullptr), 0)
      << vips_error_buffer();
}

struct Img {
  explicit Img(const fs::path& p) : img(vips_image_new_from_file(p.c_str(), nullptr)) {}
  explicit Img(VipsImage* i) : img(i) {}
  ~Img() {
    if (img) g_object_unref(img);
  }
  VipsImage* img;
};

// One pair per kind of lesser copy: the richer copy in 'low' (priority 1),
// the lesser one in 'high' (priority 5), each pair a different picture.
struct Pair {
  std::string kind, richer, lesser, words;  // words: what the warning says
};

class InformationFirst : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = tmp_.path() / "src";
    db_ = (tmp_ / "c.db").string();
    const fs::path low = src_ / "low", high = src_ / "high", work = tmp_.path() / "work";
    // Greyscale: one band.
    MakeImage(low / "colour.jpg", 1024, 768, 31, "[Q=90]");
    {
      Img in(low / "colour.jpg");
      VipsImage* grey = nullptr;
      ASSERT_EQ(vips_colourspace(in.img, &grey, VIPS_INTERPRETATION_B_W, nullptr), 0);
      Img keep(grey);
      Save(grey, high / "grey.jpg", "[Q=90]");
    }
    // Half size.
    MakeImage(low / "full.jpg", 1200, 900, 32, "[Q=90]");
    {
      Img in(low / "full.jpg");
      VipsImage* half = nullptr;
      ASSERT_EQ(vips_resize(in.img, &half, 0.5, nullptr), 0);
      Img keep(half);
      Save(half, high / "half.jpg", "[Q=90]");
    }
    // A crop scaled back to the original's size, both lossless: only the
    // match relation tells the crop from the whole picture.
    MakeImage(low / "whole.png", 1000, 800, 33);
    {
      Img in(low / "whole.png");
      VipsImage *crop = nullptr, *up = nullptr;
      ASSERT_EQ(vips_crop(in.img, &crop, 25, 20, 950, 760, nullptr), 0);
      Img k1(crop);
      ASSERT_EQ(vips_resize(crop, &up, 1000.0 / 950, "vscale", 800.0 / 760, nullptr), 0);
      Img k2(up);
      Save(up, high / "crop.png");
    }
    // 8-bit of a 16-bit TIFF.
    MakeImage(work / "deep8.tif", 900, 700, 34);
    {
      Img in(work / "deep8.tif");
      VipsImage *scaled = nullptr, *ushort = nullptr, *rgb16 = nullptr;
      ASSERT_EQ(vips_linear1(in.img, &scaled, 257.0, 0.0, nullptr), 0);
      Img k1(scaled);
      ASSERT_EQ(vips_cast(scaled, &ushort, VIPS_FORMAT_USHORT, nullptr), 0);
      Img k2(ushort);
      ASSERT_EQ(vips_copy(ushort, &rgb16, "interpretation", VIPS_INTERPRETATION_RGB16, nullptr), 0);
      Img k3(rgb16);
      Save(rgb16, low / "deep16.tif");
      testing::CopyFile(work / "deep8.tif", high / "deep8.tif");
    }
    // JPEG of a PNG.
    MakeImage(low / "lossless.png", 800, 600, 35);
    {
      Img in(low / "lossless.png");
      Save(in.img, high / "lossy.jpg", "[Q=85]");
    }
    // A heavier JPEG of the same size.
    MakeImage(low / "light.jpg", 1000, 750, 36, "[Q=95]");
    {
      Img in(low / "light.jpg");
      Save(in.img, high / "heavy.jpg", "[Q=35]");
    }
    pairs_ = {{"greyscale", "low/colour.jpg", "high/grey.jpg", "greyscale"},
              {"half size", "low/full.jpg", "high/half.jpg", "smaller"},
              {"crop", "low/whole.png", "high/crop.png", "crop"},
              {"8-bit of 16-bit", "low/deep16.tif", "high/deep8.tif", "8-bit"},
              {"JPEG of a PNG", "low/lossless.png", "high/lossy.jpg", "lossy jpeg"},
              {"heavier JPEG", "low/light.jpg", "high/heavy.jpg", "more compressed"}};

    ASSERT_EQ(RunDoppel({"--db", db_, "init"}).exit_code, 0);
    ASSERT_EQ(RunDoppel({"--db", db_, "source", "add", "high", high.string(), "--priority", "5"})
                  .exit_code,
              0);
    ASSERT_EQ(
        RunDoppel({"--db", db_, "source", "add", "low", low.string(), "--priority", "1"}).exit_code,
        0);
    auto scan = RunDoppel({"--db", db_, "scan"});
    ASSERT_EQ(scan.exit_code, 0) << scan.err;
    auto match = RunDoppel({"--db", db_, "match"});
    ASSERT_EQ(match.exit_code, 0) << match.err;
    auto cat = OpenCatalogue(db_, {});
    ASSERT_TRUE(cat.ok()) << cat.status().ToString();
    cat_ = std::move(*cat);
  }

  // The plan's cluster holding `name` ("low/x.jpg"), or null.
  static const PlannedCluster* ClusterOf(const Plan& p, const std::string& name) {
    for (const PlannedCluster& c : p.clusters) {
      for (const HeldBy& h : c.metadata.held_by)
        if (h.source + "/" + h.path == name) return &c;
    }
    return nullptr;
  }

  Plan PlanWith(const MasterPolicy& policy) {
    PlanOptions o;
    o.policy = policy;
    o.include_unconfirmed = true;
    auto p = MakePlan(*cat_, o);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *p : Plan{};
  }

  TempDir tmp_;
  fs::path src_;
  std::string db_;
  std::unique_ptr<Catalogue> cat_;
  std::vector<Pair> pairs_;
};

TEST_F(InformationFirst, BuiltInPolicyKeepsTheRicherCopyOverADepartmentsLesserOne) {
  Plan p = PlanWith(MasterPolicy{});
  for (const Pair& x : pairs_) {
    SCOPED_TRACE(x.kind);
    const PlannedCluster* c = ClusterOf(p, x.richer);
    ASSERT_NE(c, nullptr) << x.richer << " is not in a planned cluster";
    EXPECT_EQ(c->master, x.richer) << c->reason;
    EXPECT_EQ(ClusterOf(p, x.lesser), c) << x.lesser << " should be a copy of " << x.richer;
    EXPECT_EQ(c->warning, "") << c->reason;
    EXPECT_NE(c->reason.find("holds more of the picture"), std::string::npos) << c->reason;
  }
  EXPECT_EQ(p.LesserMasters(), 0);
}

TEST_F(InformationFirst, APolicyThatPutsDepartmentsFirstKeepsTheLesserCopyAndSaysSo) {
  auto policy = ParsePolicy(R"(
version = 2
rules = ["source", "information", "original", "capture_date", "metadata", "file_id"]
)",
                            "departments-first.toml");
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  Plan p = PlanWith(*policy);
  for (const Pair& x : pairs_) {
    SCOPED_TRACE(x.kind);
    const PlannedCluster* c = ClusterOf(p, x.lesser);
    ASSERT_NE(c, nullptr) << x.lesser << " is not in a planned cluster";
    EXPECT_EQ(c->master, x.lesser) << c->reason;
    EXPECT_NE(c->warning.find("keeps "), std::string::npos) << c->reason;
    EXPECT_NE(c->warning.find(x.words), std::string::npos) << c->warning;
    EXPECT_NE(c->warning.find(x.richer + " is retired"), std::string::npos) << c->warning;
    EXPECT_NE(c->reason.find(c->warning), std::string::npos) << c->reason;
  }
  EXPECT_EQ(p.LesserMasters(), int64_t(pairs_.size()));
  // The plan file carries the warnings; `doppel plan` counts them.
  auto back = PlanFromJson(PlanToJson(p), "plan.json");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->LesserMasters(), int64_t(pairs_.size()));
  const fs::path policy_file = tmp_ / "departments-first.toml";
  testing::WriteFile(policy_file, "version = 2\nrules = [\"source\", \"original\"]\n");
  auto cli = RunDoppel({"--db", db_, "plan", "--include-unconfirmed", "--policy",
                        policy_file.string(), "-o", (tmp_ / "plan.json").string()});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("warning: " + std::to_string(pairs_.size()) +
                         " clusters keep a copy that holds less"),
            std::string::npos)
      << cli.out;
}

TEST(InformationDominance, AxesAreMeasuredFromTheRecordAndIncomparableCopiesTie) {
  auto cand = [](int64_t id, const std::string& format, int w, int h, int bands, int depth,
                 int64_t size) {
    Candidate c;
    c.file_id = id;
    c.source = "s";
    c.path = "p" + std::to_string(id);
    c.record.info.format = format;
    c.record.info.width = w;
    c.record.info.height = h;
    c.record.info.bands = bands;
    c.record.info.bit_depth = depth;
    c.record.info.colourspace = bands == 1 ? "b-w" : "srgb";
    c.record.file_size = size;
    return c;
  };
  // Larger but greyscale against smaller in colour: neither dominates.
  std::vector<Candidate> c = {cand(1, "jpeg", 2000, 1500, 1, 8, 900000),
                              cand(2, "jpeg", 1000, 750, 3, 8, 300000)};
  EXPECT_EQ(CompareInformation(c[0], c[1]).order, 0);
  EXPECT_EQ(HoldsMostInformation(c), (std::vector<bool>{true, true}));
  // A crop known from the match relation loses to the whole picture even at
  // the same size.
  std::vector<Candidate> crop = {cand(3, "png", 800, 600, 3, 8, 1),
                                 cand(4, "png", 800, 600, 3, 8, 1)};
  Match m;
  m.file_a = 3;
  m.file_b = 4;
  m.transform = "A cropped to 90% of the area";
  NoteCrops({m}, crop);
  EXPECT_EQ(HoldsMostInformation(crop), (std::vector<bool>{false, true}));
  EXPECT_EQ(LesserCopyWarning(crop, 0), "keeps a cropped copy; the whole picture s/p4 is retired");
  EXPECT_EQ(LesserCopyWarning(crop, 1), "");
  // Within 5 % bytes per pixel is the same compression.
  std::vector<Candidate> close = {cand(5, "jpeg", 100, 100, 3, 8, 10000),
                                  cand(6, "jpeg", 100, 100, 3, 8, 10400)};
  EXPECT_EQ(CompareInformation(close[0], close[1]).order, 0);
}

}  // namespace
}  // namespace doppel
