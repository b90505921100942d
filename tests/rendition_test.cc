// Renditions: orientation, size bounds, damaged input, JPEG round trip.
#include <gtest/gtest.h>

#include "doppel/fingerprint.h"
#include "doppel/rendition.h"
#include "test_util.h"

namespace doppel {
namespace {

using testing::TempDir;

TEST(Rendition, ShrinksKeepsShapeAndOrients) {
  ASSERT_TRUE(InitImaging().ok());
  TempDir dir;
  const auto jpg = dir.path() / "wide.jpg";
  testing::MakeImage(jpg, 1200, 600, 3);
  RenditionOptions o;
  o.max_side = 256;
  auto r = RenderFile(jpg.string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->width, 256);
  EXPECT_EQ(r->height, 128);
  EXPECT_EQ(r->bands, 3);
  EXPECT_EQ(r->source_width, 1200);
  EXPECT_EQ(r->format, "jpeg");
  EXPECT_EQ(r->pixels.size(), size_t(256 * 128 * 3));

  // Never enlarged; grey on request.
  o.max_side = 4000;
  o.grey = true;
  auto g = RenderFile(jpg.string(), o);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->width, 1200);
  EXPECT_EQ(g->bands, 1);

  // EXIF orientation 6 (rotate 90 clockwise to display): a wide stored
  // picture displays tall.
  const auto rotated = dir.path() / "rotated.jpg";
  testing::CopyFile(jpg, rotated);
  ASSERT_EQ(std::system(("exiv2 -q -M'set Exif.Image.Orientation 6' " + rotated.string()).c_str()),
            0);
  o.max_side = 100;
  o.grey = false;
  auto t = RenderFile(rotated.string(), o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->width, 50);
  EXPECT_EQ(t->height, 100);
}

TEST(Rendition, RefusesWhatFingerprintingRefuses) {
  ASSERT_TRUE(InitImaging().ok());
  TempDir dir;
  const auto jpg = dir.path() / "a.jpg";
  testing::MakeImage(jpg, 800, 600, 5);
  std::string bytes = testing::ReadFile(jpg);
  RenditionOptions o;
  auto trunc = RenderBuffer(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size() / 2, o);
  EXPECT_FALSE(trunc.ok());
  const std::string text = "not a picture at all";
  auto junk = RenderBuffer(reinterpret_cast<const uint8_t*>(text.data()), text.size(), o);
  EXPECT_EQ(junk.status().code(), StatusCode::kUnsupported);
  const std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>";
  EXPECT_FALSE(RenderBuffer(reinterpret_cast<const uint8_t*>(svg.data()), svg.size(), o).ok());
  o.max_pixels = 1000;
  EXPECT_EQ(RenderFile(jpg.string(), o).status().code(), StatusCode::kTooLarge);
}

TEST(Rendition, EncodesAJpegThatDecodesToTheSameSize) {
  ASSERT_TRUE(InitImaging().ok());
  TempDir dir;
  const auto png = dir.path() / "a.png";
  testing::MakeImage(png, 640, 480, 9);
  RenditionOptions o;
  o.max_side = 160;
  auto r = RenderFile(png.string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto jpeg = EncodeJpeg(*r, 80);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status().ToString();
  ASSERT_GT(jpeg->size(), 100u);
  EXPECT_EQ(uint8_t((*jpeg)[0]), 0xFF);
  EXPECT_EQ(uint8_t((*jpeg)[1]), 0xD8);
  auto back = RenderBuffer(reinterpret_cast<const uint8_t*>(jpeg->data()), jpeg->size(), o);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->width, 160);
  EXPECT_EQ(back->height, 120);
  EXPECT_FALSE(EncodeJpeg(Rendition{}, 80).ok());
}

}  // namespace
}  // namespace doppel
