// Content hashes of real JPEG and PNG files written by libvips, edited with
// exiv2 (the metadata tool archives actually use) and restructured by hand.
#include "imaging/content_hash.h"

#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>
#include <vips/vips.h>
#include "test_util.h"

#include <cstring>
#include <exiv2/exiv2.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "metadata/exiv2_reader.h"
#include "util/sha256.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;

using Bytes = std::string;

const uint8_t* U8(const Bytes& b) { return reinterpret_cast<const uint8_t*>(b.data()); }

// The shared helpers of tests/test_util.h, under this file's names.
using ScratchDir = ::doppel::testing::TempDir;
Bytes Slurp(const fs::path& p) { return ::doppel::testing::ReadFile(p); }
void Spit(const fs::path& p, const Bytes& b) { ::doppel::testing::WriteFile(p, b); }

void EnsureVips() {
  static const bool ok = VIPS_INIT("doppel_tests") == 0;
  ASSERT_TRUE(ok) << vips_error_buffer();
}

// A textured RGB picture: gradients plus seeded noise, so JPEG and PNG
// encoders produce non-trivial entropy data.
std::vector<uint8_t> Pixels(int w, int h, int seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &px[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 255 / w + rng() % 16);
      p[1] = static_cast<uint8_t>(y * 255 / h + rng() % 16);
      p[2] = static_cast<uint8_t>(((x / 8 + y / 8 + seed) % 2) * 200 + rng() % 32);
    }
  }
  return px;
}

// Encodes a seeded picture; `format` is a libvips suffix with options, e.g.
// ".jpg[Q=90,interlace]".
Bytes Encode(int w, int h, int seed, const char* format) {
  EnsureVips();
  std::vector<uint8_t> px = Pixels(w, h, seed);
  VipsImage* img =
      vips_image_new_from_memory_copy(px.data(), px.size(), w, h, 3, VIPS_FORMAT_UCHAR);
  EXPECT_NE(img, nullptr) << vips_error_buffer();
  if (!img) return {};
  void* buf = nullptr;
  size_t len = 0;
  const int rc = vips_image_write_to_buffer(img, format, &buf, &len, nullptr);
  g_object_unref(img);
  EXPECT_EQ(rc, 0) << vips_error_buffer();
  Bytes out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

// Decoded pixels (as an uncompressed buffer), the oracle for "same picture".
Bytes Decode(const Bytes& file) {
  EnsureVips();
  VipsImage* img = vips_image_new_from_buffer(file.data(), file.size(), "", nullptr);
  EXPECT_NE(img, nullptr) << vips_error_buffer();
  if (!img) return {};
  size_t len = 0;
  void* mem = vips_image_write_to_memory(img, &len);
  g_object_unref(img);
  Bytes out(static_cast<const char*>(mem), len);
  g_free(mem);
  return out;
}

Result<Digest> HashChunked(ContentHashKind kind, const Bytes& b,
                           const std::vector<size_t>& chunks) {
  std::unique_ptr<StructuralHasher> h = MakeStructuralHasher(kind);
  size_t pos = 0;
  for (size_t n : chunks) {
    n = std::min(n, b.size() - pos);
    h->Update(U8(b) + pos, n);
    pos += n;
  }
  h->Update(U8(b) + pos, b.size() - pos);
  return h->Finish();
}

Result<Digest> Hash(ContentHashKind kind, const Bytes& b) { return HashChunked(kind, b, {}); }

Result<Digest> HashBytewise(ContentHashKind kind, const Bytes& b) {
  return HashChunked(kind, b, std::vector<size_t>(b.size(), 1));
}

Result<Digest> HashRandomChunks(ContentHashKind kind, const Bytes& b, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<size_t> chunks;
  for (size_t total = 0; total < b.size();) {
    // Mostly tiny chunks so headers straddle boundaries, sometimes big ones.
    size_t n = rng() % 4 == 0 ? rng() % 4096 : rng() % 9;
    chunks.push_back(n);
    total += n;
  }
  return HashChunked(kind, b, chunks);
}

Digest FileSha(const Bytes& b) { return Sha256::Of(b.data(), b.size()); }

// Rewrites the file's metadata the way archive tools do; `ext` picks the format.
Bytes AddMetadata(const Bytes& original, const std::string& ext, bool comment) {
  InitExiv2();
  ScratchDir dir;
  const fs::path p = dir / ("edit" + ext);
  Spit(p, original);
  std::unique_ptr<Exiv2::Image> img(Exiv2::ImageFactory::open(p.string()).release());
  img->readMetadata();
  Exiv2::ExifData& exif = img->exifData();
  exif["Exif.Image.Make"] = "Testcam";
  exif["Exif.Photo.DateTimeOriginal"] = "2021:03:04 05:06:07";
  exif["Exif.GPSInfo.GPSLatitude"] = "52/1 31/1 1234/100";
  exif["Exif.GPSInfo.GPSLatitudeRef"] = "N";
  Exiv2::XmpArrayValue bag(Exiv2::xmpBag);
  bag.read("Rathaus");
  img->xmpData().add(Exiv2::XmpKey("Xmp.dc.subject"), &bag);
  Exiv2::StringValue kw("Winter");
  img->iptcData().add(Exiv2::IptcKey("Iptc.Application2.Keywords"), &kw);
  if (comment) img->setComment("scanned by the city archive");
  img->writeMetadata();
  img.reset();
  return Slurp(p);
}

uint32_t Crc32(const uint8_t* data, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

void PutBe32(Bytes& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xFF));
}

uint32_t GetBe32(const Bytes& b, size_t at) {
  return (uint32_t{static_cast<uint8_t>(b[at])} << 24) |
         (uint32_t{static_cast<uint8_t>(b[at + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(b[at + 2])} << 8) | static_cast<uint8_t>(b[at + 3]);
}

Bytes PngChunk(const std::string& type, const Bytes& data) {
  Bytes out;
  PutBe32(out, static_cast<uint32_t>(data.size()));
  Bytes body = type + data;
  out += body;
  PutBe32(out, Crc32(U8(body), body.size()));
  return out;
}

struct PngChunkView {
  std::string type;
  Bytes data;
};

std::vector<PngChunkView> ParsePng(const Bytes& png) {
  std::vector<PngChunkView> chunks;
  size_t at = 8;
  while (at + 12 <= png.size()) {
    const uint32_t len = GetBe32(png, at);
    chunks.push_back({png.substr(at + 4, 4), png.substr(at + 8, len)});
    at += 12 + len;
  }
  return chunks;
}

const Bytes kPngSig("\x89PNG\r\n\x1a\n", 8);

// Rebuilds a PNG with the IDAT stream cut into pieces of `piece` bytes and
// `extra` chunks inserted before the first IDAT.
Bytes RechunkPng(const Bytes& png, size_t piece, const Bytes& extra = {}) {
  Bytes idat, before, after;
  bool seen_idat = false;
  for (const PngChunkView& c : ParsePng(png)) {
    if (c.type == "IDAT") {
      idat += c.data;
      seen_idat = true;
    } else {
      (seen_idat ? after : before) += PngChunk(c.type, c.data);
    }
  }
  Bytes out = kPngSig + before + extra;
  for (size_t at = 0; at < idat.size(); at += piece)
    out += PngChunk("IDAT", idat.substr(at, piece));
  return out + after;
}

Bytes H(std::initializer_list<int> bytes) {
  Bytes b;
  for (int v : bytes) b.push_back(static_cast<char>(v));
  return b;
}

// ---------------------------------------------------------------------------

TEST(ContentHashKindDetect, ByMagicBytes) {
  const Bytes jpeg = H({0xFF, 0xD8, 0xFF, 0xE0});
  EXPECT_EQ(DetectContentHashKind(U8(jpeg), jpeg.size()), ContentHashKind::kJpegSegments);
  EXPECT_EQ(DetectContentHashKind(U8(jpeg), 2), ContentHashKind::kPixels);
  EXPECT_EQ(DetectContentHashKind(U8(kPngSig), 8), ContentHashKind::kPngChunks);
  EXPECT_EQ(DetectContentHashKind(U8(kPngSig), 7), ContentHashKind::kPixels);
  const Bytes gif = "GIF89a";
  EXPECT_EQ(DetectContentHashKind(U8(gif), gif.size()), ContentHashKind::kPixels);
  EXPECT_EQ(DetectContentHashKind(nullptr, 0), ContentHashKind::kPixels);
  EXPECT_EQ(MakeStructuralHasher(ContentHashKind::kPixels), nullptr);
}

TEST(ContentHashCombine, TagOrientationAndInnerAllMatter) {
  Digest inner{};
  inner[0] = 7;
  Digest other = inner;
  other[31] = 1;
  const Digest a = CombineContentHash(ContentHashKind::kJpegSegments, 1, inner);
  EXPECT_EQ(a, CombineContentHash(ContentHashKind::kJpegSegments, 1, inner));
  EXPECT_NE(a, CombineContentHash(ContentHashKind::kJpegSegments, 6, inner));
  EXPECT_NE(a, CombineContentHash(ContentHashKind::kPngChunks, 1, inner));
  EXPECT_NE(a, CombineContentHash(ContentHashKind::kPixels, 1, inner));
  EXPECT_NE(a, CombineContentHash(ContentHashKind::kJpegSegments, 1, other));

  // The documented construction, computed independently.
  Bytes msg = "doppel-content-v1:jpeg";
  msg.push_back(1);
  msg.append(reinterpret_cast<const char*>(inner.data()), inner.size());
  EXPECT_EQ(a, Sha256::Of(msg.data(), msg.size()));
}

// A hand-built stream exercising every rule, against the bytes the header
// comment says are hashed.
TEST(JpegContentHash, HashesExactlyTheDocumentedBytes) {
  const Bytes soi = H({0xFF, 0xD8});
  const Bytes app0 = H({0xFF, 0xE0, 0x00, 0x06, 'J', 'F', 'I', 'F'});
  const Bytes app1 = H({0xFF, 0xE1, 0x00, 0x04, 0xFF, 0xD9});  // an EOI inside APP1 is payload
  const Bytes com = H({0xFF, 0xFE, 0x00, 0x05, 'h', 'i', '!'});
  const Bytes dqt = H({0xFF, 0xDB, 0x00, 0x05, 1, 2, 3});
  const Bytes sof = H({0xFF, 0xC2, 0x00, 0x04, 9, 9});
  const Bytes dht = H({0xFF, 0xC4, 0x00, 0x03, 4});
  const Bytes sos = H({0xFF, 0xDA, 0x00, 0x04, 5, 6});
  const Bytes scan1 = H({0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56});
  const Bytes scan2 = H({0x78, 0xFF, 0x00});
  const Bytes eoi = H({0xFF, 0xD9});

  Bytes file = soi + app0 + H({0xFF, 0xFF}) /* fill */ + com + dqt + app1 + sof + dht + sos +
               scan1 + H({0xFF}) /* fill */ + dht + sos +
               H({0x78, 0xFF, 0xFF, 0x00}) /* FF FF 00 */ + eoi + "trailing preview bytes";
  const Bytes expected = soi + dqt + sof + dht + sos + scan1 + dht + sos + scan2 + eoi;

  Result<Digest> whole = Hash(ContentHashKind::kJpegSegments, file);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(*whole, Sha256::Of(expected.data(), expected.size()));
  Result<Digest> bytewise = HashBytewise(ContentHashKind::kJpegSegments, file);
  ASSERT_TRUE(bytewise.ok());
  EXPECT_EQ(*bytewise, *whole);

  // Finish() is stable.
  std::unique_ptr<StructuralHasher> h = MakeStructuralHasher(ContentHashKind::kJpegSegments);
  h->Update(U8(file), file.size());
  h->Update(nullptr, 0);
  Result<Digest> first = h->Finish();
  Result<Digest> second = h->Finish();
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
}

TEST(JpegContentHash, MalformedStructureIsCorruption) {
  struct Case {
    const char* name;
    Bytes bytes;
    const char* message;
  };
  const Bytes sos = H({0xFF, 0xDA, 0x00, 0x03, 0x01, 0x11, 0xFF, 0xD9});
  const std::vector<Case> cases = {
      {"empty", "", "truncated JPEG: no EOI marker after 0 bytes"},
      {"no SOI", H({0xFF, 0xD9, 0xFF, 0xD9}), "corrupt JPEG: no SOI marker at start"},
      {"text", "hello world", "corrupt JPEG: no SOI marker at start"},
      {"length 1", H({0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x01, 0xFF, 0xD9}),
       "corrupt JPEG: segment length 1 at offset 2"},
      {"length 0 in APP", H({0xFF, 0xD8, 0xFF, 0xFF, 0xE1, 0x00, 0x00}),
       "corrupt JPEG: segment length 0 at offset 3"},
      {"no scan", H({0xFF, 0xD8, 0xFF, 0xD9}),
       "corrupt JPEG: EOI at offset 2 before any scan (SOS)"},
      {"no EOI", H({0xFF, 0xD8}) + sos.substr(0, 6), "truncated JPEG: no EOI marker after 8 bytes"},
      {"cut in length", H({0xFF, 0xD8, 0xFF, 0xDB, 0x00}),
       "truncated JPEG: no EOI marker after 5 bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    for (const Result<Digest>& r : {Hash(ContentHashKind::kJpegSegments, c.bytes),
                                    HashBytewise(ContentHashKind::kJpegSegments, c.bytes)}) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
      EXPECT_EQ(r.status().message(), c.message);
    }
  }
  // After an error, further input (even a valid file) changes nothing.
  const Bytes good = Encode(16, 16, 1, ".jpg");
  std::unique_ptr<StructuralHasher> h = MakeStructuralHasher(ContentHashKind::kJpegSegments);
  h->Update(U8(cases[3].bytes), 6);
  h->Update(U8(good), good.size());
  EXPECT_EQ(h->Finish().status().message(), "corrupt JPEG: segment length 1 at offset 2");

  std::mt19937 rng(42);
  for (int i = 0; i < 200; ++i) {
    Bytes noise(rng() % 3000, '\0');
    for (char& ch : noise) ch = static_cast<char>(rng());
    if (i % 2) noise = H({0xFF, 0xD8}) + noise;  // past the SOI check
    EXPECT_EQ(Hash(ContentHashKind::kJpegSegments, noise).status().code(), StatusCode::kCorruption);
  }
}

TEST(JpegContentHash, MetadataEditsKeepTheHash) {
  for (const char* format : {".jpg[Q=90]", ".jpg[Q=85,interlace]", ".jpg[Q=80,restart-interval=2]",
                             ".jpg[Q=75,strip]"}) {
    SCOPED_TRACE(format);
    const Bytes original = Encode(96, 64, 3, format);
    const Bytes edited = AddMetadata(original, ".jpg", /*comment=*/true);
    ASSERT_NE(FileSha(original), FileSha(edited));
    ASSERT_GT(edited.size(), original.size());
    ASSERT_EQ(Decode(original), Decode(edited));

    // The edit really landed: exiv2 reads it back.
    std::unique_ptr<Exiv2::Image> img(
        Exiv2::ImageFactory::open(U8(edited), static_cast<long>(edited.size())).release());
    img->readMetadata();
    EXPECT_EQ(img->exifData()["Exif.Photo.DateTimeOriginal"].toString(), "2021:03:04 05:06:07");
    EXPECT_EQ(img->comment(), "scanned by the city archive");

    Result<Digest> a = Hash(ContentHashKind::kJpegSegments, original);
    Result<Digest> b = Hash(ContentHashKind::kJpegSegments, edited);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ(*a, *b);
    if (std::string(format).find("strip") != std::string::npos) {
      // No APPn, no COM, no fill, nothing after EOI: every byte is hashed.
      EXPECT_EQ(*a, FileSha(original));
    } else {
      EXPECT_NE(*a, FileSha(original));
    }

    for (const Bytes* f : {&original, &edited}) {
      Result<Digest> bytewise = HashBytewise(ContentHashKind::kJpegSegments, *f);
      ASSERT_TRUE(bytewise.ok());
      EXPECT_EQ(*bytewise, *a);
      for (uint32_t seed = 1; seed <= 20; ++seed) {
        Result<Digest> r = HashRandomChunks(ContentHashKind::kJpegSegments, *f, seed);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(*r, *a);
      }
    }

    // Bytes after EOI (camera trailers, appended previews) are ignored.
    const Bytes trailer = edited + Encode(8, 8, 9, ".jpg");
    Result<Digest> c = Hash(ContentHashKind::kJpegSegments, trailer);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(*c, *a);
  }
}

TEST(JpegContentHash, DifferentPicturesDiffer) {
  const Bytes a = Encode(64, 64, 1, ".jpg[Q=90]");
  const Bytes b = Encode(64, 64, 2, ".jpg[Q=90]");
  const Bytes a_q80 = Encode(64, 64, 1, ".jpg[Q=80]");
  const Bytes a_prog = Encode(64, 64, 1, ".jpg[Q=90,interlace]");
  std::vector<Digest> seen;
  for (const Bytes* f : {&a, &b, &a_q80, &a_prog}) {
    Result<Digest> r = Hash(ContentHashKind::kJpegSegments, *f);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (const Digest& d : seen) EXPECT_NE(d, *r);
    seen.push_back(*r);
  }
}

TEST(JpegContentHash, EveryTruncationIsCorruption) {
  const Bytes progressive = AddMetadata(Encode(40, 24, 5, ".jpg[Q=70,interlace]"), ".jpg", true);
  ASSERT_TRUE(Hash(ContentHashKind::kJpegSegments, progressive).ok());
  for (size_t n = 0; n < progressive.size(); ++n) {
    Result<Digest> r = Hash(ContentHashKind::kJpegSegments, progressive.substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes";
    ASSERT_EQ(r.status().code(), StatusCode::kCorruption);
  }
  Result<Digest> r =
      Hash(ContentHashKind::kJpegSegments, progressive.substr(0, progressive.size() / 2));
  EXPECT_EQ(r.status().message(), "truncated JPEG: no EOI marker after " +
                                      std::to_string(progressive.size() / 2) + " bytes");
}

TEST(PngContentHash, HashesExactlyTheDocumentedBytes) {
  const Bytes ihdr = H({0, 0, 0, 2, 0, 0, 0, 1, 8, 3, 0, 0, 0});
  const Bytes plte = H({255, 0, 0, 0, 0, 255});
  const Bytes trns = H({128});
  const Bytes idat1 = "zlib-part-1", idat2 = "part-2";
  const Bytes file = kPngSig + PngChunk("IHDR", ihdr) + PngChunk("tEXt", Bytes("Title\0x", 7)) +
                     PngChunk("PLTE", plte) + PngChunk("tRNS", trns) + PngChunk("IDAT", idat1) +
                     PngChunk("IDAT", "") + PngChunk("IDAT", idat2) + PngChunk("tIME", "1234567") +
                     PngChunk("IEND", "") + "trailing";
  auto typed = [](const std::string& type, const Bytes& data) {
    Bytes out = type;
    PutBe32(out, static_cast<uint32_t>(data.size()));
    return out + data;
  };
  const Bytes expected = kPngSig + typed("IHDR", ihdr) + typed("PLTE", plte) + typed("tRNS", trns) +
                         "IDAT" + idat1 + idat2 + typed("IEND", "");
  for (const Result<Digest>& r :
       {Hash(ContentHashKind::kPngChunks, file), HashBytewise(ContentHashKind::kPngChunks, file)}) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, Sha256::Of(expected.data(), expected.size()));
  }
}

TEST(PngContentHash, MalformedStructureIsCorruption) {
  const Bytes ihdr = PngChunk("IHDR", Bytes(13, '\1'));
  const Bytes idat = PngChunk("IDAT", "x");
  const Bytes iend = PngChunk("IEND", "");
  Bytes huge = kPngSig + ihdr;
  PutBe32(huge, 0x80000000u);
  huge += "tEXt";
  struct Case {
    const char* name;
    Bytes bytes;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"empty", "", "truncated PNG: no IEND chunk after 0 bytes"},
      {"bad signature", "\x89PNG\r\n\x1a\r", "corrupt PNG: bad signature"},
      {"jpeg", H({0xFF, 0xD8, 0xFF}), "corrupt PNG: bad signature"},
      {"IHDR not first", kPngSig + idat + ihdr + iend, "corrupt PNG: first chunk is not IHDR"},
      {"short IHDR", kPngSig + PngChunk("IHDR", "abc") + idat + iend,
       "corrupt PNG: IHDR length 3, expected 13"},
      {"two IHDR", kPngSig + ihdr + ihdr + idat + iend,
       "corrupt PNG: second IHDR chunk at offset 33"},
      {"no IDAT", kPngSig + ihdr + iend, "corrupt PNG: IEND at offset 33 before any IDAT"},
      {"length > 2^31-1", huge, "corrupt PNG: chunk length 2147483648 at offset 33 exceeds 2^31-1"},
      {"bad type", kPngSig + ihdr + PngChunk("ID T", "x") + iend,
       "corrupt PNG: invalid chunk type at offset 33"},
      {"no IEND", kPngSig + ihdr + idat, "truncated PNG: no IEND chunk after 46 bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    for (const Result<Digest>& r : {Hash(ContentHashKind::kPngChunks, c.bytes),
                                    HashBytewise(ContentHashKind::kPngChunks, c.bytes)}) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
      EXPECT_EQ(r.status().message(), c.message);
    }
  }
  EXPECT_TRUE(Hash(ContentHashKind::kPngChunks, kPngSig + ihdr + idat + iend).ok());
}

TEST(PngContentHash, MetadataAndChunkingKeepTheHash) {
  for (const char* format : {".png", ".png[compression=9,interlace]"}) {
    SCOPED_TRACE(format);
    const Bytes original = Encode(120, 80, 4, format);
    const Bytes edited = AddMetadata(original, ".png", /*comment=*/true);
    Bytes text_chunk = PngChunk("tEXt", Bytes("Comment\0hand-added", 18));
    const Bytes with_text = RechunkPng(original, 1 << 30, text_chunk);
    const Bytes rechunked = RechunkPng(original, 97);
    const Bytes rechunked_1 = RechunkPng(original, 1);

    Result<Digest> want = Hash(ContentHashKind::kPngChunks, original);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    EXPECT_NE(*want, FileSha(original));
    const Bytes pixels = Decode(original);
    ASSERT_FALSE(pixels.empty());
    for (const Bytes* f : {&edited, &with_text, &rechunked, &rechunked_1}) {
      ASSERT_NE(FileSha(*f), FileSha(original));
      ASSERT_EQ(Decode(*f), pixels);  // libvips/libpng agree they are the same picture
      Result<Digest> r = Hash(ContentHashKind::kPngChunks, *f);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(*r, *want);
      Result<Digest> bytewise = HashBytewise(ContentHashKind::kPngChunks, *f);
      ASSERT_TRUE(bytewise.ok());
      EXPECT_EQ(*bytewise, *want);
      for (uint32_t seed = 1; seed <= 10; ++seed) {
        Result<Digest> c = HashRandomChunks(ContentHashKind::kPngChunks, *f, seed);
        ASSERT_TRUE(c.ok());
        EXPECT_EQ(*c, *want);
      }
    }
    auto idat_chunks = [](const Bytes& png) {
      int n = 0;
      for (const PngChunkView& c : ParsePng(png)) n += c.type == "IDAT";
      return n;
    };
    EXPECT_GT(idat_chunks(rechunked), idat_chunks(original));
    EXPECT_GT(idat_chunks(rechunked_1), 100);
  }
}

TEST(PngContentHash, DifferentPicturesDiffer) {
  Result<Digest> a = Hash(ContentHashKind::kPngChunks, Encode(32, 32, 1, ".png"));
  Result<Digest> b = Hash(ContentHashKind::kPngChunks, Encode(32, 32, 2, ".png"));
  Result<Digest> c = Hash(ContentHashKind::kPngChunks, Encode(33, 32, 1, ".png"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_NE(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_NE(*b, *c);
}

TEST(PngContentHash, EveryTruncationIsCorruption) {
  const Bytes png = RechunkPng(Encode(24, 16, 6, ".png"), 50, PngChunk("tEXt", Bytes("a\0b", 3)));
  // IEND's CRC is not needed: a file missing only that still hashes.
  EXPECT_TRUE(Hash(ContentHashKind::kPngChunks, png.substr(0, png.size() - 4)).ok());
  for (size_t n = 0; n < png.size() - 4; ++n) {
    Result<Digest> r = Hash(ContentHashKind::kPngChunks, png.substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes";
    ASSERT_EQ(r.status().code(), StatusCode::kCorruption);
  }
}

// Whatever real photos this machine has (Debian wallpapers): each must hash,
// chunking must not matter, and a metadata edit must not change the hash.
TEST(ContentHashRealPhotos, WallpapersHashStably) {
  std::vector<fs::path> photos;
  for (const char* dir :
       {"/usr/share/backgrounds", "/usr/share/wallpapers", "/usr/share/images/desktop-base"}) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const std::string ext = it->path().extension().string();
      if (it->is_regular_file(ec) && (ext == ".jpg" || ext == ".png") &&
          it->file_size(ec) < (8 << 20)) {
        photos.push_back(it->path());
      }
    }
  }
  if (photos.empty()) GTEST_SKIP() << "no wallpapers installed";
  std::sort(photos.begin(), photos.end());
  if (photos.size() > 4) photos.resize(4);
  for (const fs::path& p : photos) {
    SCOPED_TRACE(p.string());
    const Bytes file = Slurp(p);
    const ContentHashKind kind = DetectContentHashKind(U8(file), file.size());
    ASSERT_NE(kind, ContentHashKind::kPixels);
    Result<Digest> whole = Hash(kind, file);
    ASSERT_TRUE(whole.ok()) << whole.status().ToString();
    Result<Digest> chunked = HashRandomChunks(kind, file, 7);
    ASSERT_TRUE(chunked.ok());
    EXPECT_EQ(*chunked, *whole);
    const Bytes edited =
        AddMetadata(file, p.extension().string(), kind == ContentHashKind::kJpegSegments);
    ASSERT_NE(FileSha(edited), FileSha(file));
    Result<Digest> after = Hash(kind, edited);
    ASSERT_TRUE(after.ok()) << after.status().ToString();
    EXPECT_EQ(*after, *whole);
  }
}

}  // namespace
}  // namespace doppel
