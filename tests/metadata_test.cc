// Metadata read back from real files whose tags were written with exiv2's own
// writer (the oracle), in every container exiv2 can write.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <vips/vips.h>
#include "test_util.h"

#include <exiv2/exiv2.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "metadata/exiv2_reader.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using Bytes = std::string;
using Strings = std::vector<std::string>;

const uint8_t* U8(const Bytes& b) { return reinterpret_cast<const uint8_t*>(b.data()); }

// The shared helpers of tests/test_util.h, under this file's names.
using ScratchDir = ::doppel::testing::TempDir;
Bytes Slurp(const fs::path& p) { return ::doppel::testing::ReadFile(p); }
void Spit(const fs::path& p, const Bytes& b) { ::doppel::testing::WriteFile(p, b); }

// A small seeded picture saved by libvips without any metadata.
void MakePicture(const fs::path& p, int seed) {
  static const bool vips_ok = VIPS_INIT("doppel_tests") == 0;
  ASSERT_TRUE(vips_ok);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  const int w = 48, h = 32;
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (uint8_t& v : px) v = static_cast<uint8_t>(rng());
  VipsImage* img =
      vips_image_new_from_memory_copy(px.data(), px.size(), w, h, 3, VIPS_FORMAT_UCHAR);
  ASSERT_NE(img, nullptr);
  const std::string target = p.string() + "[strip]";
  const int rc = vips_image_write_to_file(img, target.c_str(), nullptr);
  g_object_unref(img);
  ASSERT_EQ(rc, 0) << vips_error_buffer();
}

// Opens `p` with exiv2, lets `edit` change the metadata, writes it back.
void Edit(const fs::path& p, const std::function<void(Exiv2::Image&)>& edit) {
  InitExiv2();
  std::unique_ptr<Exiv2::Image> img(Exiv2::ImageFactory::open(p.string()).release());
  img->readMetadata();
  edit(*img);
  img->writeMetadata();
}

void AddBag(Exiv2::XmpData& xmp, const char* key, std::initializer_list<const char*> items) {
  Exiv2::XmpArrayValue bag(Exiv2::xmpBag);
  for (const char* item : items) bag.read(item);
  xmp.add(Exiv2::XmpKey(key), &bag);
}

void AddIptc(Exiv2::IptcData& iptc, const char* key, const std::string& value) {
  Exiv2::StringValue v(value);
  iptc.add(Exiv2::IptcKey(key), &v);
}

// Everything a careful archive would record.
void WriteFullSet(Exiv2::Image& img, bool iptc) {
  Exiv2::ExifData& exif = img.exifData();
  exif["Exif.Image.Make"] = "Canon   ";  // cameras pad with spaces
  exif["Exif.Image.Model"] = "Canon EOS 5D";
  exif["Exif.Image.Artist"] = "Erika Mustermann";
  exif["Exif.Image.Copyright"] = "Stadtarchiv";
  exif["Exif.Photo.DateTimeOriginal"] = "2021:03:04 05:06:07";
  exif["Exif.Photo.SubSecTimeOriginal"] = "12";
  exif["Exif.Photo.OffsetTimeOriginal"] = "+01:00";
  exif["Exif.Photo.DateTimeDigitized"] = "2022:01:01 00:00:00";
  exif["Exif.GPSInfo.GPSLatitude"] = "52/1 31/1 1200/100";
  exif["Exif.GPSInfo.GPSLatitudeRef"] = "N";
  exif["Exif.GPSInfo.GPSLongitude"] = "13/1 24/1 0/1";
  exif["Exif.GPSInfo.GPSLongitudeRef"] = "W";
  exif["Exif.GPSInfo.GPSAltitude"] = "691/20";
  exif["Exif.GPSInfo.GPSAltitudeRef"] = "1";
  Exiv2::XmpData& xmp = img.xmpData();
  xmp["Xmp.dc.title"] = "lang=\"x-default\" Rathaus im Schnee";
  AddBag(xmp, "Xmp.dc.subject", {"Rathaus", " Brücke ", "Winter"});
  if (iptc) {
    AddIptc(img.iptcData(), "Iptc.Application2.Keywords", "Brücke");
    AddIptc(img.iptcData(), "Iptc.Application2.Keywords", "Schnee");
    AddIptc(img.iptcData(), "Iptc.Application2.Keywords", "Rathaus");
  }
}

void ExpectFullSet(const ImageMetadata& md, bool iptc) {
  EXPECT_TRUE(md.warnings.empty()) << md.warnings.front();
  EXPECT_EQ(md.capture_time, "2021-03-04T05:06:07.120+01:00");
  EXPECT_EQ(md.capture_time_source, "Exif.Photo.DateTimeOriginal");
  EXPECT_EQ(md.make, "Canon");
  EXPECT_EQ(md.model, "Canon EOS 5D");
  EXPECT_EQ(md.artist, "Erika Mustermann");
  EXPECT_EQ(md.copyright, "Stadtarchiv");
  ASSERT_TRUE(md.gps_latitude && md.gps_longitude && md.gps_altitude);
  EXPECT_NEAR(*md.gps_latitude, 52 + 31 / 60.0 + 12 / 3600.0, 1e-9);
  EXPECT_NEAR(*md.gps_longitude, -(13 + 24 / 60.0), 1e-9);
  EXPECT_NEAR(*md.gps_altitude, -34.55, 1e-9);
  EXPECT_EQ(md.title, "Rathaus im Schnee");
  if (iptc) {
    EXPECT_EQ(md.keywords, (Strings{"Rathaus", "Brücke", "Winter", "Schnee"}));
  } else {
    EXPECT_EQ(md.keywords, (Strings{"Rathaus", "Brücke", "Winter"}));
  }
}

TEST(Exiv2Reader, FullSetInEveryWritableFormat) {
  struct Format {
    const char* ext;
    bool iptc;  // exiv2 0.27 writes no IPTC into WebP
  };
  for (const Format& f :
       {Format{".jpg", true}, Format{".png", true}, Format{".tif", true}, Format{".webp", false}}) {
    SCOPED_TRACE(f.ext);
    ScratchDir dir;
    const fs::path p = dir / (std::string("full") + f.ext);
    MakePicture(p, 1);
    Edit(p, [&](Exiv2::Image& img) { WriteFullSet(img, f.iptc); });
    ExpectFullSet(ReadMetadataFromFile(p.string()), f.iptc);
    const Bytes bytes = Slurp(p);
    ExpectFullSet(ReadMetadataFromBuffer(U8(bytes), bytes.size()), f.iptc);
  }
}

TEST(Exiv2Reader, NoMetadataMeansEmptyFieldsAndNoWarnings) {
  for (const char* ext : {".jpg", ".png", ".tif", ".webp", ".gif"}) {
    SCOPED_TRACE(ext);
    ScratchDir dir;
    const fs::path p = dir / (std::string("plain") + ext);
    MakePicture(p, 2);
    for (const ImageMetadata& md : {ReadMetadataFromFile(p.string()),
                                    ReadMetadataFromBuffer(U8(Slurp(p)), Slurp(p).size())}) {
      EXPECT_TRUE(md.warnings.empty()) << md.warnings.front();
      EXPECT_EQ(md.capture_time, "");
      EXPECT_EQ(md.capture_time_source, "");
      EXPECT_EQ(md.make, "");
      EXPECT_EQ(md.artist, "");
      EXPECT_FALSE(md.gps_latitude.has_value());
      EXPECT_TRUE(md.keywords.empty());
    }
  }
}

TEST(Exiv2Reader, UnknownFormatsAreNotWarnings) {
  const Bytes text = "just some text, not an image at all";
  const ImageMetadata md = ReadMetadataFromBuffer(U8(text), text.size());
  EXPECT_TRUE(md.warnings.empty()) << md.warnings.front();
  EXPECT_TRUE(ReadMetadataFromBuffer(nullptr, 0).warnings.empty());
  ScratchDir dir;
  Spit(dir / "notes.txt", text);
  EXPECT_TRUE(ReadMetadataFromFile((dir / "notes.txt").string()).warnings.empty());
}

TEST(Exiv2Reader, CaptureTimeFallsBackInOrder) {
  struct Case {
    const char* name;
    std::function<void(Exiv2::Image&)> edit;
    const char* time;
    const char* source;
    size_t warnings;
  };
  const std::vector<Case> cases = {
      {"digitized, with its own offset",
       [](Exiv2::Image& img) {
         img.exifData()["Exif.Photo.DateTimeDigitized"] = "1999:12:31 23:59:58";
         img.exifData()["Exif.Photo.OffsetTimeDigitized"] = "-05:00";
       },
       "1999-12-31T23:59:58-05:00", "Exif.Photo.DateTimeDigitized", 0},
      {"zero original is rejected",
       [](Exiv2::Image& img) {
         img.exifData()["Exif.Photo.DateTimeOriginal"] = "0000:00:00 00:00:00";
         img.exifData()["Exif.Photo.DateTimeDigitized"] = "2005:06:07 08:09:10";
       },
       "2005-06-07T08:09:10", "Exif.Photo.DateTimeDigitized", 1},
      {"blank original is rejected",
       [](Exiv2::Image& img) {
         img.exifData()["Exif.Photo.DateTimeOriginal"] = "    :  :     :  :  ";
         img.xmpData()["Xmp.xmp.CreateDate"] = "2010-01-02T03:04:05Z";
       },
       "2010-01-02T03:04:05+00:00", "Xmp.xmp.CreateDate", 1},
      {"photoshop before xmp",
       [](Exiv2::Image& img) {
         img.xmpData()["Xmp.xmp.CreateDate"] = "2010-01-02T03:04:05Z";
         img.xmpData()["Xmp.photoshop.DateCreated"] = "2009-07-01T10:20:30.5+02:00";
       },
       "2009-07-01T10:20:30.500+02:00", "Xmp.photoshop.DateCreated", 0},
      {"xmp date without seconds",
       [](Exiv2::Image& img) { img.xmpData()["Xmp.xmp.CreateDate"] = "2010-01-02T03:04+01:00"; },
       "2010-01-02T03:04:00+01:00", "Xmp.xmp.CreateDate", 0},
      {"historic scan, date only",
       [](Exiv2::Image& img) { img.xmpData()["Xmp.photoshop.DateCreated"] = "1905-05-17"; },
       "1905-05-17", "Xmp.photoshop.DateCreated", 0},
      {"iptc date and time",
       [](Exiv2::Image& img) {
         img.iptcData()["Iptc.Application2.DateCreated"] = "2001-02-03";
         img.iptcData()["Iptc.Application2.TimeCreated"] = "14:15:16+01:00";
       },
       "2001-02-03T14:15:16+01:00", "Iptc.Application2.DateCreated", 0},
      {"iptc date only",
       [](Exiv2::Image& img) { img.iptcData()["Iptc.Application2.DateCreated"] = "2001-02-03"; },
       "2001-02-03", "Iptc.Application2.DateCreated", 0},
      {"impossible day, nothing else",
       [](Exiv2::Image& img) {
         img.exifData()["Exif.Photo.DateTimeOriginal"] = "2023:02:29 10:00:00";
       },
       "", "", 1},
      {"bad offset is dropped with a warning",
       [](Exiv2::Image& img) {
         img.exifData()["Exif.Photo.DateTimeOriginal"] = "2020:02:29 10:00:00";
         img.exifData()["Exif.Photo.OffsetTimeOriginal"] = "   :  ";
       },
       "2020-02-29T10:00:00", "Exif.Photo.DateTimeOriginal", 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ScratchDir dir;
    const fs::path p = dir / "t.jpg";
    MakePicture(p, 3);
    Edit(p, c.edit);
    const ImageMetadata md = ReadMetadataFromFile(p.string());
    EXPECT_EQ(md.capture_time, c.time);
    EXPECT_EQ(md.capture_time_source, c.source);
    EXPECT_EQ(md.warnings.size(), c.warnings);
  }
}

TEST(Exiv2Reader, TextFieldsFallBackToXmpThenIptc) {
  ScratchDir dir;
  const fs::path xmp_only = dir / "xmp.jpg";
  MakePicture(xmp_only, 4);
  Edit(xmp_only, [](Exiv2::Image& img) {
    Exiv2::XmpArrayValue seq(Exiv2::xmpSeq);
    seq.read("Doe, Jane");
    seq.read("Roe, Richard");
    img.xmpData().add(Exiv2::XmpKey("Xmp.dc.creator"), &seq);
    img.xmpData()["Xmp.dc.rights"] = "lang=\"de-DE\" CC BY 4.0";
    img.xmpData()["Xmp.dc.title"] = "lang=\"en\" Bridge";
    AddIptc(img.iptcData(), "Iptc.Application2.Byline", "Someone Else");
    AddIptc(img.iptcData(), "Iptc.Application2.ObjectName", "Not the title");
    img.exifData()["Exif.Image.ImageDescription"] = "Not the title either";
  });
  ImageMetadata md = ReadMetadataFromFile(xmp_only.string());
  EXPECT_EQ(md.artist, "Doe, Jane; Roe, Richard");
  EXPECT_EQ(md.copyright, "CC BY 4.0");
  EXPECT_EQ(md.title, "Bridge");

  const fs::path iptc_only = dir / "iptc.jpg";
  MakePicture(iptc_only, 5);
  Edit(iptc_only, [](Exiv2::Image& img) {
    AddIptc(img.iptcData(), "Iptc.Application2.Byline", "Max Muster");
    AddIptc(img.iptcData(), "Iptc.Application2.Copyright", "(c) Stadt");
    AddIptc(img.iptcData(), "Iptc.Application2.ObjectName", "Marktplatz");
    AddIptc(img.iptcData(), "Iptc.Application2.Keywords", " Markt ");
    AddIptc(img.iptcData(), "Iptc.Application2.Keywords", "Markt");
    AddIptc(img.iptcData(), "Iptc.Application2.Keywords", "");
    // Legacy IPTC written as Latin-1: "Straße".
    AddIptc(img.iptcData(), "Iptc.Application2.Keywords",
            "Stra\xDF"
            "e");
    img.exifData()["Exif.Image.ImageDescription"] = "Not the title";
  });
  md = ReadMetadataFromFile(iptc_only.string());
  EXPECT_TRUE(md.warnings.empty());
  EXPECT_EQ(md.artist, "Max Muster");
  EXPECT_EQ(md.copyright, "(c) Stadt");
  EXPECT_EQ(md.title, "Marktplatz");
  EXPECT_EQ(md.keywords, (Strings{"Markt", "Straße"}));

  const fs::path exif_only = dir / "exif.jpg";
  MakePicture(exif_only, 6);
  Edit(exif_only, [](Exiv2::Image& img) {
    img.exifData()["Exif.Image.ImageDescription"] = "OLYMPUS DIGITAL CAMERA         ";
    img.exifData()["Exif.Image.Artist"] = "                ";  // blank-filled by the camera
    AddIptc(img.iptcData(), "Iptc.Application2.Byline", "Fallback Artist");
  });
  md = ReadMetadataFromFile(exif_only.string());
  EXPECT_EQ(md.title, "OLYMPUS DIGITAL CAMERA");
  EXPECT_EQ(md.artist, "Fallback Artist");
}

TEST(Exiv2Reader, InvalidGpsIsDroppedWithAWarning) {
  ScratchDir dir;
  const fs::path p = dir / "gps.jpg";
  MakePicture(p, 7);
  Edit(p, [](Exiv2::Image& img) {
    img.exifData()["Exif.GPSInfo.GPSLatitude"] = "95/1 0/1 0/1";
    img.exifData()["Exif.GPSInfo.GPSLatitudeRef"] = "N";
    img.exifData()["Exif.GPSInfo.GPSLongitude"] = "10/1 0/1 0/0";
    img.exifData()["Exif.GPSInfo.GPSLongitudeRef"] = "E";
    img.exifData()["Exif.GPSInfo.GPSAltitude"] = "100/1";
  });
  const ImageMetadata md = ReadMetadataFromFile(p.string());
  EXPECT_FALSE(md.gps_latitude.has_value());
  EXPECT_FALSE(md.gps_longitude.has_value());
  ASSERT_TRUE(md.gps_altitude.has_value());
  EXPECT_EQ(*md.gps_altitude, 100.0);  // AltitudeRef absent means above sea level
  EXPECT_EQ(md.warnings.size(), 2u);
}

TEST(Exiv2Reader, CorruptFilesGiveWarningsNotCrashes) {
  ScratchDir dir;
  const fs::path p = dir / "good.jpg";
  MakePicture(p, 8);
  Edit(p, [](Exiv2::Image& img) { WriteFullSet(img, true); });
  const Bytes good = Slurp(p);

  ImageMetadata md;
  // Structures exiv2 refuses: a segment length below 2, an Exif block whose
  // TIFF header is garbage, a PNG cut inside IHDR.
  for (const Bytes& bad : {Bytes("\xFF\xD8\xFF\xE1\x00\x01", 6),
                           Bytes("\xFF\xD8\xFF\xE1\x00\x10"
                                 "Exif\0\0MM\0\x2a\xff\xff\xff\xff",
                                 20),
                           Bytes("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16)}) {
    md = ReadMetadataFromBuffer(U8(bad), bad.size());
    ASSERT_EQ(md.warnings.size(), 1u);
    EXPECT_EQ(md.warnings[0].rfind("metadata unreadable (exiv2): ", 0), 0u) << md.warnings[0];
    EXPECT_EQ(md.capture_time, "");
  }

  // Missing file.
  md = ReadMetadataFromFile((dir / "missing.jpg").string());
  ASSERT_EQ(md.warnings.size(), 1u);
  EXPECT_NE(md.warnings[0].find("metadata unreadable"), std::string::npos) << md.warnings[0];

  // Every truncation and a sweep of single-byte corruptions: never a crash,
  // and whatever comes back is well formed.
  std::mt19937 rng(1);
  std::vector<Bytes> variants;
  for (size_t n = 0; n < good.size(); n += 1 + good.size() / 300)
    variants.push_back(good.substr(0, n));
  for (int i = 0; i < 300; ++i) {
    Bytes b = good;
    b[rng() % b.size()] = static_cast<char>(rng());
    variants.push_back(b);
  }
  for (const Bytes& b : variants) {
    md = ReadMetadataFromBuffer(U8(b), b.size());
    EXPECT_TRUE(md.capture_time.empty() || md.capture_time.size() >= 10);
    for (const std::string& w : md.warnings) EXPECT_FALSE(w.empty());
  }
}

TEST(Exiv2Reader, ConcurrentReadsAgree) {
  ScratchDir dir;
  const fs::path p = dir / "mt.png";
  MakePicture(p, 9);
  Edit(p, [](Exiv2::Image& img) { WriteFullSet(img, true); });
  const Bytes bytes = Slurp(p);
  std::vector<std::thread> threads;
  std::vector<int> good(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const ImageMetadata md = ReadMetadataFromBuffer(U8(bytes), bytes.size());
        good[t] += md.capture_time == "2021-03-04T05:06:07.120+01:00" && md.keywords.size() == 4;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(good, (std::vector<int>{25, 25, 25, 25}));
}

}  // namespace
}  // namespace doppel
