// The finer check's signature: thumbnails, borders, transforms.
#include <gtest/gtest.h>
#include <vips/vips.h>

#include "doppel/fingerprint.h"
#include "doppel/signature.h"
#include "test_util.h"

namespace doppel {
namespace {

Signature Sig(const std::string& path) {
  auto r = AnalyseFile(path, AnalyseOptions{});
  EXPECT_TRUE(r.ok()) << path << ": " << r.status().ToString();
  return r.ok() ? r->fingerprints.signature : Signature{};
}

// Each file of dih/ is the original transformed; the original's thumbnail,
// transformed the same way, must correlate best with that file's.
TEST(Signature, ThumbTransformsFollowThePdqVariants) {
  DOPPEL_REQUIRE_TESTDATA();
  ASSERT_TRUE(InitImaging().ok());
  const char* files[8] = {"bridge-1-original.jpg",    "bridge-2-rotate-90.jpg",
                          "bridge-3-rotate-180.jpg",  "bridge-4-rotate-270.jpg",
                          "bridge-5-flipx.jpg",       "bridge-6-flipy.jpg",
                          "bridge-7-flip-plus-1.jpg", "bridge-8-flip-minus-1.jpg"};
  const std::string dir = testing::TestDataDir() + "/pdq/dih/";
  const Signature orig = Sig(dir + files[0]);
  for (int k = 0; k < 8; ++k) {
    const Signature other = Sig(dir + files[k]);
    int best = -1;
    double best_c = -2;
    for (int t = 0; t < 8; ++t) {
      double c = ThumbCorrelation(TransformThumb(orig.thumb, Dihedral(t)), other.thumb);
      if (c > best_c) best_c = c, best = t;
    }
    EXPECT_EQ(best, k) << files[k];
    EXPECT_GT(best_c, 0.95) << files[k];
  }
}

TEST(Signature, BordersAreFoundAndThePictureInsideHashesLikeTheOriginal) {
  ASSERT_TRUE(InitImaging().ok());
  testing::TempDir dir;
  testing::MakeImage(dir / "photo.png", 800, 600, 5);
  VipsImage* in = vips_image_new_from_file((dir / "photo.png").c_str(), nullptr);
  ASSERT_TRUE(in);
  VipsImage* boxed = nullptr;
  double black[3] = {0, 0, 0};
  VipsArrayDouble* bg = vips_array_double_new(black, 3);
  ASSERT_EQ(vips_embed(in, &boxed, 0, 120, 800, 840, "extend", VIPS_EXTEND_BACKGROUND, "background",
                       bg, nullptr),
            0);
  vips_area_unref(VIPS_AREA(bg));
  ASSERT_EQ(vips_image_write_to_file(boxed, (dir / "letterbox.jpg").c_str(), "Q", 90, nullptr), 0);
  g_object_unref(boxed);
  g_object_unref(in);
  auto plain = AnalyseFile((dir / "photo.png").string(), {});
  auto lb = AnalyseFile((dir / "letterbox.jpg").string(), {});
  ASSERT_TRUE(plain.ok() && lb.ok());
  const Signature& s = lb->fingerprints.signature;
  ASSERT_TRUE(s.has_borders());
  EXPECT_NEAR(s.trim_top, 120.0 / 840, 0.02);
  EXPECT_NEAR(s.trim_bottom, 120.0 / 840, 0.02);
  EXPECT_FLOAT_EQ(s.trim_left, 0);
  EXPECT_FALSE(plain->fingerprints.signature.has_borders());
  const int whole = HammingDistance(plain->fingerprints.pdq.hash, lb->fingerprints.pdq.hash);
  const int inside = HammingDistance(plain->fingerprints.pdq.hash, s.trimmed->hash);
  std::printf("[ borders  ] letterboxed copy: %d bits as a whole, %d bits inside the borders\n",
              whole, inside);
  EXPECT_LE(inside, 16);
  EXPECT_GT(ThumbCorrelation(plain->fingerprints.signature.thumb, s.inner_thumb), 0.95);
}

}  // namespace
}  // namespace doppel

namespace doppel {
namespace {

// The thumbnail of a 90% centre crop, resampled, aligns with the original's at
// about 90% scale; an unrelated picture does not align.
TEST(Signature, AlignmentFindsACropInsideItsOriginal) {
  ASSERT_TRUE(InitImaging().ok());
  testing::TempDir dir;
  std::string photo;
  DOPPEL_REQUIRE_PHOTO(photo);
  testing::CopyFile(photo, dir / "photo.jpg");
  testing::MakeImage(dir / "other.png", 1000, 1000, 9);
  VipsImage* in = vips_image_new_from_file((dir / "photo.jpg").c_str(), nullptr);
  ASSERT_TRUE(in);
  VipsImage* crop = nullptr;
  const int w = in->Xsize, h = in->Ysize;
  ASSERT_EQ(vips_crop(in, &crop, w / 20, h / 20, w - w / 10, h - h / 10, nullptr), 0);
  ASSERT_EQ(vips_image_write_to_file(crop, (dir / "crop.png").c_str(), nullptr), 0);
  g_object_unref(crop);
  g_object_unref(in);
  const Signature a = Sig((dir / "photo.jpg").string()), b = Sig((dir / "crop.png").string());
  const Signature c = Sig((dir / "other.png").string());
  const ThumbAlignment g = AlignThumbs(a.thumb, b.thumb);
  std::printf("[ align    ] 90%% crop: plain correlation %.3f, aligned %.3f at scale %.3f\n",
              ThumbCorrelation(a.thumb, b.thumb), g.correlation, g.scale);
  EXPECT_GT(g.correlation, 0.97);
  EXPECT_NEAR(g.scale, 0.9, 0.03);
  EXPECT_FALSE(g.a_inside_b);  // the crop (b) lies inside the original (a)
  EXPECT_LT(AlignThumbs(a.thumb, c.thumb).correlation, 0.8);
}

}  // namespace
}  // namespace doppel
