// Geometric verification on real photos: the edits a global hash misses are
// recognised as copies, a shifted window is only a neighbour, and unrelated
// pictures or separate parts of one picture never align.
#include <gtest/gtest.h>
#include <vips/vips.h>

#include <filesystem>
#include <functional>
#include <sstream>
#include <vector>

#include "doppel/fingerprint.h"
#include "doppel/geometry.h"
#include "doppel/rendition.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using testing::RunDoppel;
using testing::TempDir;

using testing::Crop;
using testing::WriteVariant;

class GeometryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitImaging().ok());
    DOPPEL_REQUIRE_PHOTO(photo_);
  }

  std::shared_ptr<const LocalFeatures> Features(const std::string& path) {
    RenditionOptions ro;
    ro.max_side = kGeometrySide;
    ro.grey = true;
    auto r = RenderFile(path, ro);
    EXPECT_TRUE(r.ok()) << path << ": " << r.status().ToString();
    if (!r.ok()) return nullptr;
    auto f = ExtractFeatures(*r);
    EXPECT_TRUE(f.ok());
    return f.ok() ? *f : nullptr;
  }

  GeometricCheck Check(const std::string& a, const std::string& b) {
    auto fa = Features(a), fb = Features(b);
    if (!fa || !fb) return {};
    return VerifyGeometry(*fa, *fb);
  }

  TempDir dir_;
  std::string photo_;
};

TEST_F(GeometryTest, ACentreCropIsACopyInsideTheOriginal) {
  const fs::path crop = dir_ / "crop5.jpg";
  WriteVariant(photo_, crop, [](VipsImage* in) { return Crop(in, 0.025, 0.025, 0.95, 0.95); });
  const GeometricCheck g = Check(photo_, crop.string());
  EXPECT_TRUE(g.aligned) << DescribeGeometry(g);
  EXPECT_TRUE(IsGeometricCopy(g)) << DescribeGeometry(g);
  EXPECT_GT(g.b_inside_a, 0.98);
  EXPECT_NEAR(g.area_ratio, 0.95 * 0.95, 0.05);
  EXPECT_FALSE(ContradictsCopy(g));
}

TEST_F(GeometryTest, ASmallRotationIsACopyWithItsAngle) {
  const fs::path turned = dir_ / "rotate2.jpg";
  WriteVariant(photo_, turned, [](VipsImage* in) -> VipsImage* {
    VipsImage* rot = nullptr;
    if (vips_similarity(in, &rot, "angle", 2.0, nullptr)) return nullptr;
    // Cut away the empty corners the rotation leaves.
    VipsImage* out = Crop(rot, 0.06, 0.06, 0.88, 0.88);
    g_object_unref(rot);
    return out;
  });
  const GeometricCheck g = Check(photo_, turned.string());
  EXPECT_TRUE(IsGeometricCopy(g)) << DescribeGeometry(g);
  EXPECT_NEAR(std::fabs(g.angle), 2.0, 0.5) << DescribeGeometry(g);
}

TEST_F(GeometryTest, ACaptionAndABorderStillMakeACopy) {
  const fs::path edited = dir_ / "caption-border.jpg";
  WriteVariant(photo_, edited, [](VipsImage* in) -> VipsImage* {
    VipsImage* copy = nullptr;
    if (vips_copy(in, &copy, nullptr)) return nullptr;
    double white[3] = {255, 255, 255};
    const int w = in->Xsize, h = in->Ysize;
    if (vips_draw_rect(copy, white, 3, w / 20, h * 8 / 10, w / 4, h / 10, "fill", TRUE, nullptr))
      return nullptr;
    VipsImage* out = nullptr;
    double black[3] = {0, 0, 0};
    VipsArrayDouble* bg = vips_array_double_new(black, 3);
    const int rc = vips_embed(copy, &out, 0, h / 12, w, h + h / 6, "extend", VIPS_EXTEND_BACKGROUND,
                              "background", bg, nullptr);
    vips_area_unref(VIPS_AREA(bg));
    g_object_unref(copy);
    return rc ? nullptr : out;
  });
  const GeometricCheck g = Check(photo_, edited.string());
  EXPECT_TRUE(IsGeometricCopy(g)) << DescribeGeometry(g);
}

// A scene whose edge is one dark tone (night sky, shadow) looks like a
// border; a turned copy that reaches into it is still inside the original.
TEST_F(GeometryTest, ATurnedCopyReachingIntoADarkEdgeIsACopy) {
  const fs::path dark = dir_ / "dark-edge.jpg", turned = dir_ / "dark-edge-turned.jpg";
  WriteVariant(photo_, dark, [](VipsImage* in) -> VipsImage* {
    VipsImage* copy = nullptr;
    if (vips_copy(in, &copy, nullptr)) return nullptr;
    double black[3] = {6, 6, 6};
    if (vips_draw_rect(copy, black, 3, 0, in->Ysize * 82 / 100, in->Xsize, in->Ysize, "fill", TRUE,
                       nullptr))
      return nullptr;
    return copy;
  });
  WriteVariant(dark.string(), turned, [](VipsImage* in) -> VipsImage* {
    VipsImage* rot = nullptr;
    if (vips_similarity(in, &rot, "angle", -2.0, nullptr)) return nullptr;
    VipsImage* out = Crop(rot, 0.06, 0.06, 0.88, 0.88);
    g_object_unref(rot);
    return out;
  });
  const GeometricCheck g = Check(dark.string(), turned.string());
  EXPECT_TRUE(IsGeometricCopy(g)) << DescribeGeometry(g);
}

TEST_F(GeometryTest, AShiftedWindowIsANeighbourNotACopy) {
  // Two frames of one scene, each missing a different 12% strip: what a
  // second shot a moment later looks like. Neither frame holds the other.
  const fs::path left = dir_ / "left.jpg", right = dir_ / "right.jpg";
  WriteVariant(photo_, left, [](VipsImage* in) { return Crop(in, 0.0, 0.0, 0.88, 1.0); });
  WriteVariant(photo_, right, [](VipsImage* in) { return Crop(in, 0.12, 0.0, 0.88, 1.0); });
  const GeometricCheck g = Check(left.string(), right.string());
  EXPECT_TRUE(g.aligned) << DescribeGeometry(g);
  EXPECT_FALSE(IsGeometricCopy(g)) << DescribeGeometry(g);
  EXPECT_TRUE(IsGeometricNeighbour(g)) << DescribeGeometry(g);
}

TEST_F(GeometryTest, SeparatePartsOfOnePictureNeverAlign) {
  const fs::path top = dir_ / "top.jpg", bottom = dir_ / "bottom.jpg";
  WriteVariant(photo_, top, [](VipsImage* in) { return Crop(in, 0.0, 0.0, 1.0, 0.5); });
  WriteVariant(photo_, bottom, [](VipsImage* in) { return Crop(in, 0.0, 0.5, 1.0, 0.5); });
  const GeometricCheck g = Check(top.string(), bottom.string());
  EXPECT_FALSE(IsGeometricCopy(g)) << DescribeGeometry(g);
  EXPECT_FALSE(IsGeometricNeighbour(g)) << DescribeGeometry(g);
}

TEST_F(GeometryTest, UnrelatedPhotosNeverAlign) {
  const fs::path other = dir_ / "other.jpg";
  testing::MakeImage(other, 1200, 800, 7, "[Q=90]");
  for (const char* p : {"/usr/share/backgrounds/mate/nature/Dune.jpg", other.c_str()}) {
    if (!fs::exists(p) || p == photo_) continue;
    const GeometricCheck g = Check(photo_, p);
    EXPECT_FALSE(IsGeometricCopy(g)) << p << ": " << DescribeGeometry(g);
    EXPECT_FALSE(IsGeometricNeighbour(g)) << p << ": " << DescribeGeometry(g);
  }
}

TEST_F(GeometryTest, AFeaturelessPictureNeverAligns) {
  const fs::path flat = dir_ / "flat.png";
  WriteVariant(photo_, flat, [](VipsImage* in) -> VipsImage* {
    VipsImage* black = nullptr;
    if (vips_black(&black, in->Xsize / 4, in->Ysize / 4, "bands", 3, nullptr)) return nullptr;
    return black;
  });
  const GeometricCheck g = Check(photo_, flat.string());
  EXPECT_FALSE(g.aligned);
  EXPECT_FALSE(IsGeometricCopy(g));
  EXPECT_FALSE(ContradictsCopy(g)) << "too few features to overrule anything";
}

// The whole path through `doppel match`: crops missed by PDQ alone are found
// and verified against the original; two crops framed differently are only
// "similar" to each other.
TEST_F(GeometryTest, MatchFindsCropsAndKeepsDifferentFramingsForReview) {
  const fs::path a = dir_ / "dept-a", b = dir_ / "dept-b";
  fs::create_directories(a);
  fs::create_directories(b);
  testing::CopyFile(photo_, a / "original.jpg");
  WriteVariant(photo_, b / "crop.jpg",
               [](VipsImage* in) { return Crop(in, 0.0, 0.0, 0.93, 0.93); });
  WriteVariant(photo_, b / "shifted.jpg",
               [](VipsImage* in) { return Crop(in, 0.15, 0.1, 0.85, 0.9); });
  const std::string db = (dir_ / "doppel.db").string();
  ASSERT_EQ(RunDoppel({"--db", db, "init"}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db, "source", "add", "a", a.string()}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db, "source", "add", "b", b.string()}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db, "-q", "scan"}).exit_code, 0);
  auto m = RunDoppel({"--db", db, "-q", "match"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  auto pairs = RunDoppel({"--db", db, "pairs", "--format", "csv"});
  ASSERT_EQ(pairs.exit_code, 0) << pairs.err;
  // path_a,path_b,kind,... (no commas in these paths).
  auto kind_of = [&](const std::string& x, const std::string& y) -> std::string {
    std::istringstream in(pairs.out);
    for (std::string line; std::getline(in, line);) {
      std::vector<std::string> f;
      std::istringstream row(line);
      for (std::string cell; std::getline(row, cell, ',') && f.size() < 3;) f.push_back(cell);
      if (f.size() < 3) continue;
      auto ends = [](const std::string& s, const std::string& t) {
        return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
      };
      if ((ends(f[0], x) && ends(f[1], y)) || (ends(f[0], y) && ends(f[1], x))) return f[2];
    }
    return "none";
  };
  EXPECT_EQ(kind_of("/original.jpg", "/crop.jpg"), "near") << pairs.out;
  // Both crops lie inside the original, but neither holds the other: two
  // framings of one scene, proposed for review, never merged.
  EXPECT_EQ(kind_of("/original.jpg", "/shifted.jpg"), "near") << pairs.out;
  EXPECT_EQ(kind_of("/crop.jpg", "/shifted.jpg"), "similar") << pairs.out;
  auto ex =
      RunDoppel({"--db", db, "explain", (a / "original.jpg").string(), (b / "crop.jpg").string()});
  EXPECT_NE(ex.out.find("local features"), std::string::npos) << ex.out;
}

}  // namespace
}  // namespace doppel
