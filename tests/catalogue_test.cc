// The SQLite catalogue on a real file: versioning, round trips, moves.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "doppel/catalogue.h"
#include "test_util.h"

namespace doppel {
namespace {

using testing::TempDir;

std::unique_ptr<Catalogue> MustOpen(const std::string& path) {
  CatalogueOptions o;
  o.create_if_missing = true;
  auto c = OpenCatalogue(path, o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

ImageRecord SampleRecord(uint8_t seed) {
  ImageRecord r;
  r.file_size = 1234 + seed;
  r.mtime_ns = 1'700'000'000'000'000'000 + seed;
  r.fingerprints.sha256.fill(seed);
  r.fingerprints.content_hash.fill(uint8_t(seed + 1));
  r.fingerprints.content_kind = ContentHashKind::kJpegSegments;
  for (int k = 0; k < 8; ++k) r.fingerprints.pdq.dihedral[k].words.fill(uint16_t(seed * 8 + k));
  r.fingerprints.pdq.hash = r.fingerprints.pdq.dihedral[0];
  r.fingerprints.pdq.quality = 87;
  r.info = {"jpeg", 4000, 3000, 3, 8, 1, 6, false, "srgb"};
  r.metadata.capture_time = "2023-03-14T09:41:12+01:00";
  r.metadata.capture_time_source = "Exif.Photo.DateTimeOriginal";
  r.metadata.make = "Canon";
  r.metadata.gps_latitude = 48.8606;
  r.metadata.gps_longitude = 2.3376;
  r.metadata.keywords = {"façade", "Rivoli"};
  return r;
}

TEST(Catalogue, RecordsRoundTripExactly) {
  TempDir tmp;
  auto cat = MustOpen((tmp / "c.db").string());
  auto src = cat->AddSource("urbanisme", "/srv/urbanisme", 20);
  ASSERT_TRUE(src.ok());
  auto scan = cat->BeginScan(src->id);
  ASSERT_TRUE(scan.ok());
  FileOutcome o;
  o.path = "2023/caf\xE9.jpg";
  o.record = SampleRecord(7);
  auto counts = cat->CommitOutcomes(src->id, *scan, {o});
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(counts->added, 1);
  auto files = cat->ListFiles(std::nullopt, "urbanisme", 0);
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].path, o.path);  // raw bytes survive
  auto back = cat->GetRecord((*files)[0].id);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  const ImageRecord want = SampleRecord(7);
  EXPECT_EQ(back->fingerprints.sha256, want.fingerprints.sha256);
  EXPECT_EQ(back->fingerprints.content_hash, want.fingerprints.content_hash);
  EXPECT_EQ(back->fingerprints.pdq.hash, want.fingerprints.pdq.hash);
  for (int k = 0; k < 8; ++k) EXPECT_EQ(back->fingerprints.pdq.dihedral[k], want.fingerprints.pdq.dihedral[k]) << k;
  EXPECT_EQ(back->fingerprints.pdq.quality, 87);
  EXPECT_EQ(back->info.orientation, 6);
  EXPECT_EQ(back->metadata.capture_time, want.metadata.capture_time);
  EXPECT_EQ(back->metadata.keywords, want.metadata.keywords);
  EXPECT_DOUBLE_EQ(*back->metadata.gps_latitude, 48.8606);
  EXPECT_FALSE(back->metadata.gps_altitude.has_value());
}

TEST(Catalogue, ASecondLiveScanOfTheSameSourceIsRefused) {
  TempDir tmp;
  auto a = MustOpen((tmp / "c.db").string());
  auto src = a->AddSource("apur", "/mnt/apur", 0);
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE(a->BeginScan(src->id).ok());
  auto b = MustOpen((tmp / "c.db").string());
  // Same process, so its pid is alive: the lease holds.
  auto second = b->BeginScan(src->id);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kBusy);
}

TEST(Catalogue, NewerSchemasAndOtherDatabasesAreRefused) {
  TempDir tmp;
  const std::string path = (tmp / "c.db").string();
  { MustOpen(path); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto newer = OpenCatalogue(path, {});
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(newer.status().message().find("upgrade doppel"), std::string::npos);

  const std::string other = (tmp / "other.db").string();
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto foreign = OpenCatalogue(other, {});
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().message().find("not a doppel catalogue"), std::string::npos);

  auto pg = OpenCatalogue("postgresql://localhost/doppel", {});
  ASSERT_FALSE(pg.ok());
  EXPECT_EQ(pg.status().code(), StatusCode::kUnsupported);
  auto none = OpenCatalogue((tmp / "absent.db").string(), {});
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace doppel
