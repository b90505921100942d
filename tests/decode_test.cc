// Decoding: every format doppel claims, colour handling, orientation, limits
// and bounded memory on huge images. All files are real, written by libvips.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <vips/vips.h>
#include <zlib.h>

#include "doppel/fingerprint.h"
#include "imaging/decoder.h"
#include "test_util.h"

namespace doppel {
namespace {

using testing::MakeImage;
using testing::ReadFile;
using testing::TempDir;

class DecodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitImaging().ok());
    MakeImage(dir_ / "base.png", 900, 600, 7);
  }
  Result<ImageRecord> Analyse(const std::string& name, AnalyseOptions o = {}) {
    return AnalyseFile((dir_ / name).string(), o);
  }
  PdqHash Hash(const std::string& name) {
    auto r = Analyse(name);
    EXPECT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    return r.ok() ? r->fingerprints.pdq.hash : PdqHash{};
  }
  // Loads base.png, applies fn, saves as `name` (with save options).
  bool Derive(const std::string& name, const std::function<VipsImage*(VipsImage*)>& fn,
              const std::string& options = "") {
    VipsImage* in = vips_image_new_from_file((dir_ / "base.png").c_str(), nullptr);
    if (!in) return false;
    VipsImage* out = fn(in);
    bool ok = out && vips_image_write_to_file(out, ((dir_ / name).string() + options).c_str(),
                                              nullptr) == 0;
    if (!ok) vips_error_clear();
    if (out && out != in) g_object_unref(out);
    g_object_unref(in);
    return ok;
  }
  TempDir dir_;
};

VipsImage* Same(VipsImage* in) {
  g_object_ref(in);
  return in;
}

TEST_F(DecodeTest, EveryFormatHashesNearTheOriginal) {
  const PdqHash base = Hash("base.png");
  struct Case {
    const char* name;
    const char* options;
    int max_bits;
  } cases[] = {
      {"a.jpg", "[Q=90]", 8},
      {"a-prog.jpg", "[Q=85,interlace]", 10},
      {"a.tif", "", 0},
      {"a-lzw.tif", "[compression=lzw,tile]", 0},
      {"a.webp", "[lossless]", 0},
      {"a-lossy.webp", "[Q=80]", 12},
      {"a.gif", "", 20},
  };
  for (const auto& c : cases) {
    ASSERT_TRUE(Derive(c.name, Same, c.options)) << c.name;
    auto r = Analyse(c.name);
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.status().ToString();
    EXPECT_LE(HammingDistance(base, r->fingerprints.pdq.hash), c.max_bits) << c.name;
    EXPECT_EQ(r->info.width, 900);
    EXPECT_EQ(r->info.height, 600);
  }
  EXPECT_EQ(Analyse("a.tif")->info.format, "tiff");
  EXPECT_EQ(Analyse("a.webp")->info.format, "webp");
  EXPECT_EQ(Analyse("a.gif")->info.format, "gif");
  // Pixel-hashed formats: same pixels, same content hash, whatever the container.
  EXPECT_EQ(Analyse("a.tif")->fingerprints.content_kind, ContentHashKind::kPixels);
  EXPECT_EQ(Analyse("a.tif")->fingerprints.content_hash,
            Analyse("a-lzw.tif")->fingerprints.content_hash);
  EXPECT_NE(Analyse("a.tif")->fingerprints.sha256, Analyse("a-lzw.tif")->fingerprints.sha256);
}

TEST_F(DecodeTest, HeifAvifAndJxlWhereLibvipsWritesThem) {
  const PdqHash base = Hash("base.png");
  vips_operation_block_set("VipsForeignSaveJxl",
                           FALSE);  // doppel blocks untrusted savers; the test writes
  int tried = 0;
  for (auto [name, opts] :
       {std::pair{"a.avif", "[compression=av1,Q=70]"}, std::pair{"a.jxl", "[Q=90]"}}) {
    if (!Derive(name, Same, opts)) {
      std::printf("[ skipped  ] this libvips cannot write %s\n", name);
      continue;
    }
    ++tried;
    auto r = Analyse(name);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    EXPECT_LE(HammingDistance(base, r->fingerprints.pdq.hash), 16) << name;
  }
  if (!tried) GTEST_SKIP() << "no HEIF/AVIF or JPEG XL encoder in this libvips";
}

TEST_F(DecodeTest, SixteenBitTiffMatchesEightBit) {
  ASSERT_TRUE(Derive("16.tif", [](VipsImage* in) {
    VipsImage *lin = nullptr, *cast = nullptr, *tagged = nullptr;
    vips_linear1(in, &lin, 257.0, 0.0, nullptr);
    vips_cast(lin, &cast, VIPS_FORMAT_USHORT, nullptr);
    vips_copy(cast, &tagged, "interpretation", VIPS_INTERPRETATION_RGB16, nullptr);
    g_object_unref(lin);
    g_object_unref(cast);
    return tagged;
  }));
  auto r = Analyse("16.tif");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->info.bit_depth, 16);
  EXPECT_LE(HammingDistance(Hash("base.png"), r->fingerprints.pdq.hash), 2);
}

TEST_F(DecodeTest, CmykGreyAndPaletteConvertToSrgb) {
  const PdqHash base = Hash("base.png");
  ASSERT_TRUE(Derive(
      "cmyk.jpg",
      [](VipsImage* in) {
        VipsImage* out = nullptr;
        if (vips_colourspace(in, &out, VIPS_INTERPRETATION_CMYK, nullptr))
          return (VipsImage*)nullptr;
        return out;
      },
      "[Q=95]"));
  auto cmyk = Analyse("cmyk.jpg");
  ASSERT_TRUE(cmyk.ok()) << cmyk.status().ToString();
  EXPECT_EQ(cmyk->info.colourspace, "cmyk");
  EXPECT_LE(HammingDistance(base, cmyk->fingerprints.pdq.hash), 20);

  ASSERT_TRUE(Derive("grey.png", [](VipsImage* in) {
    VipsImage* out = nullptr;
    vips_colourspace(in, &out, VIPS_INTERPRETATION_B_W, nullptr);
    return out;
  }));
  EXPECT_LE(HammingDistance(base, Hash("grey.png")), 20);

  ASSERT_TRUE(Derive("palette.png", Same, "[palette]"));
  EXPECT_LE(HammingDistance(base, Hash("palette.png")), 20);
}

TEST_F(DecodeTest, AlphaIsCompositedOverWhite) {
  // Left half transparent: whatever colour hides under it, it hashes as white.
  auto with_alpha = [](VipsImage* in) {
    VipsImage *alpha = nullptr, *rgba = nullptr, *bw = nullptr;
    vips_black(&alpha, in->Xsize, in->Ysize, nullptr);
    VipsImage* opaque = nullptr;
    vips_draw_rect1(alpha, 255, in->Xsize / 2, 0, in->Xsize - in->Xsize / 2, in->Ysize, "fill",
                    TRUE, nullptr);
    vips_cast(alpha, &bw, VIPS_FORMAT_UCHAR, nullptr);
    vips_bandjoin2(in, bw, &rgba, nullptr);
    (void)opaque;
    g_object_unref(alpha);
    g_object_unref(bw);
    return rgba;
  };
  ASSERT_TRUE(Derive("alpha.png", with_alpha));
  ASSERT_TRUE(Derive("white-left.png", [](VipsImage* in) {
    VipsImage* copy = nullptr;
    vips_copy(in, &copy, nullptr);
    vips_image_wio_input(copy);
    vips_draw_rect1(copy, 255, 0, 0, in->Xsize / 2, in->Ysize, "fill", TRUE, nullptr);
    return copy;
  }));
  auto a = Analyse("alpha.png");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(a->info.has_alpha);
  EXPECT_LE(HammingDistance(a->fingerprints.pdq.hash, Hash("white-left.png")), 4);
}

TEST_F(DecodeTest, ExifOrientationIsAppliedBeforeHashing) {
  const PdqHash upright = Hash("base.png");
  // Stored rotated 90 degrees anticlockwise, tagged "rotate 90 clockwise to display".
  ASSERT_TRUE(Derive(
      "rot.jpg",
      [](VipsImage* in) {
        VipsImage* out = nullptr;
        vips_rot(in, &out, VIPS_ANGLE_D270, nullptr);
        vips_image_set_int(out, VIPS_META_ORIENTATION, 6);
        return out;
      },
      "[Q=92]"));
  auto r = Analyse("rot.jpg");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->info.orientation, 6);
  EXPECT_EQ(r->info.width, 600);  // stored size
  EXPECT_LE(HammingDistance(upright, r->fingerprints.pdq.hash), 12);
  // The same stored pixels without the tag are a different (rotated) picture.
  ASSERT_TRUE(Derive(
      "rot-notag.jpg",
      [](VipsImage* in) {
        VipsImage* out = nullptr;
        vips_rot(in, &out, VIPS_ANGLE_D270, nullptr);
        return out;
      },
      "[Q=92,strip]"));
  auto plain = Analyse("rot-notag.jpg");
  ASSERT_TRUE(plain.ok());
  EXPECT_GT(HammingDistance(upright, plain->fingerprints.pdq.hash), 40);
  EXPECT_NE(plain->fingerprints.content_hash, r->fingerprints.content_hash);
}

TEST_F(DecodeTest, ShrinkOnLoadStaysNearAFullDecode) {
  // A 3000x2000 JPEG decodes at 1/2 scale (short side 1000 >= 512); a full
  // decode squashed the reference's way must be within a few bits.
  MakeImage(dir_ / "big.png", 3000, 2000, 11);
  VipsImage* in = vips_image_new_from_file((dir_ / "big.png").c_str(), nullptr);
  ASSERT_TRUE(in);
  ASSERT_EQ(vips_image_write_to_file(in, (dir_ / "big.jpg").c_str(), "Q", 92, nullptr), 0);
  g_object_unref(in);
  EXPECT_LE(HammingDistance(Hash("big.jpg"), Hash("big.png")), 8);
}

TEST_F(DecodeTest, MultiPageTiffHashesPageOneAndCountsPages) {
  MakeImage(dir_ / "p1.png", 400, 300, 1);
  MakeImage(dir_ / "p2.png", 400, 300, 2);
  VipsImage* p1 = vips_image_new_from_file((dir_ / "p1.png").c_str(), nullptr);
  VipsImage* p2 = vips_image_new_from_file((dir_ / "p2.png").c_str(), nullptr);
  VipsImage* pages[2] = {p1, p2};
  VipsImage* joined = nullptr;
  ASSERT_EQ(vips_arrayjoin(pages, &joined, 2, "across", 1, nullptr), 0);
  VipsImage* tall = nullptr;
  ASSERT_EQ(vips_copy(joined, &tall, nullptr), 0);
  vips_image_set_int(tall, VIPS_META_PAGE_HEIGHT, 300);
  ASSERT_EQ(vips_image_write_to_file(tall, (dir_ / "multi.tif").c_str(), nullptr), 0);
  for (auto* i : {p1, p2, joined, tall}) g_object_unref(i);
  auto r = Analyse("multi.tif");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->info.pages, 2);
  EXPECT_EQ(r->info.height, 300);
  EXPECT_EQ(HammingDistance(r->fingerprints.pdq.hash, Hash("p1.png")), 0);
}

// Damage inside the entropy-coded data is only a libjpeg warning: libvips
// fills the rest with grey. doppel refuses such files, but accepts the
// harmless warnings real cameras and editors trigger.
TEST_F(DecodeTest, DamagedJpegDataIsRefusedHarmlessWarningsAreNot) {
  ASSERT_TRUE(Derive("good.jpg", Same, "[Q=90,strip]"));
  const std::string good = ReadFile(dir_ / "good.jpg");
  std::string damaged = good;
  for (size_t i = good.size() / 2; i < good.size() / 2 + 2048; ++i) damaged[i] = char(0xFF);
  testing::WriteFile(dir_ / "damaged.jpg", damaged);
  auto d = Analyse("damaged.jpg");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kCorruption);
  EXPECT_NE(d.status().message().find("damaged image data"), std::string::npos)
      << d.status().message();

  // Two stray bytes before EOI: libjpeg warns "extraneous bytes before marker".
  std::string stray = good.substr(0, good.size() - 2) + std::string("\x12\x34\xFF\xD9", 4);
  testing::WriteFile(dir_ / "stray.jpg", stray);
  auto s = Analyse("stray.jpg");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(HammingDistance(s->fingerprints.pdq.hash, Hash("good.jpg")), 0);
}

TEST_F(DecodeTest, PixelLimitRefusesDecompressionBombs) {
  AnalyseOptions o;
  o.max_pixels = 900 * 600 - 1;
  auto r = Analyse("base.png", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kTooLarge);
  EXPECT_NE(r.status().message().find("900 x 600"), std::string::npos) << r.status().message();

  // A PNG whose header claims 100000 x 100000 pixels, refused before any decode.
  std::string png = "\x89PNG\r\n\x1a\n";
  auto chunk = [&](const std::string& type, const std::string& data) {
    uint32_t n = htonl(uint32_t(data.size()));
    png.append(reinterpret_cast<char*>(&n), 4);
    std::string td = type + data;
    png += td;
    uint32_t crc =
        htonl(uint32_t(crc32(0, reinterpret_cast<const Bytef*>(td.data()), uInt(td.size()))));
    png.append(reinterpret_cast<char*>(&crc), 4);
  };
  std::string ihdr;
  uint32_t dim = htonl(100000);
  ihdr.append(reinterpret_cast<char*>(&dim), 4);
  ihdr.append(reinterpret_cast<char*>(&dim), 4);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);
  chunk("IHDR", ihdr);
  std::string raw(2000, '\0');
  uLongf zlen = compressBound(uLong(raw.size()));
  std::string z(zlen, '\0');
  compress(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()),
           uLong(raw.size()));
  z.resize(zlen);
  chunk("IDAT", z);
  chunk("IEND", "");
  testing::WriteFile(dir_ / "bomb.png", png);
  auto bomb = Analyse("bomb.png");
  ASSERT_FALSE(bomb.ok());
  EXPECT_EQ(bomb.status().code(), StatusCode::kTooLarge) << bomb.status().ToString();
}

TEST_F(DecodeTest, OrientationTransformsAreExact) {
  // 3x2 image with distinct values; check all eight against hand-made answers.
  std::vector<float> px = {1, 2, 3, 4, 5, 6};
  struct Case {
    int o, w, h;
    std::vector<float> want;
  } cases[] = {
      {1, 3, 2, {1, 2, 3, 4, 5, 6}}, {2, 3, 2, {3, 2, 1, 6, 5, 4}}, {3, 3, 2, {6, 5, 4, 3, 2, 1}},
      {4, 3, 2, {4, 5, 6, 1, 2, 3}}, {5, 2, 3, {1, 4, 2, 5, 3, 6}}, {6, 2, 3, {4, 1, 5, 2, 6, 3}},
      {7, 2, 3, {6, 3, 5, 2, 4, 1}}, {8, 2, 3, {3, 6, 2, 5, 1, 4}},
  };
  for (const auto& c : cases) {
    std::vector<float> v = px;
    int w = 3, h = 2;
    ApplyOrientation(v, w, h, c.o);
    EXPECT_EQ(w, c.w) << c.o;
    EXPECT_EQ(h, c.h) << c.o;
    EXPECT_EQ(v, c.want) << "orientation " << c.o;
  }
}

// 20,000 x 20,000 pixels (400 MP; 1.2 GB as 8-bit RGB) must hash in a small,
// fixed amount of memory: JPEG through shrink-on-load, PNG streamed in strips.
TEST(LargeImage, TwentyThousandSquareHashesInBoundedMemory) {
  ASSERT_TRUE(InitImaging().ok());
  TempDir dir;
  // Texture at 1/8 size, zoomed by pixel replication: cheap to make, and the
  // decoder still has to walk all 400 MP.
  MakeImage(dir / "seed.png", 2500, 2500, 3);
  VipsImage* seed = vips_image_new_from_file((dir / "seed.png").c_str(), nullptr);
  ASSERT_TRUE(seed);
  VipsImage* huge = nullptr;
  ASSERT_EQ(vips_zoom(seed, &huge, 8, 8, nullptr), 0);
  for (const char* name : {"huge.jpg", "huge.png"}) {
    const bool png = std::string(name).ends_with(".png");
    const int rc = png ? vips_pngsave(huge, (dir / name).c_str(), "compression", 1, "filter",
                                      VIPS_FOREIGN_PNG_FILTER_NONE, nullptr)
                       : vips_jpegsave(huge, (dir / name).c_str(), "Q", 75, nullptr);
    ASSERT_EQ(rc, 0) << vips_error_buffer();
    auto rr = testing::RunDoppel({"hash", "--json", (dir / name).string()});
    ASSERT_EQ(rr.exit_code, 0) << rr.err;
    EXPECT_NE(rr.out.find("\"width\":20000"), std::string::npos) << rr.out;
    std::printf("[ memory   ] %s 20000x20000 (%lld MB file): peak RSS %ld MB\n", name,
                (long long)(std::filesystem::file_size(dir / name) >> 20), rr.max_rss_kb / 1024);
    EXPECT_LT(rr.max_rss_kb, 300 * 1024) << name << " held too much in memory";
    std::filesystem::remove(dir / name);
  }
  g_object_unref(huge);
  g_object_unref(seed);
}

}  // namespace
}  // namespace doppel
