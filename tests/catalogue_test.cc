// The SQLite catalogue on a real file: versioning, round trips, moves.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

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
  // The matcher's finer signature, every field distinct from its default
  // (negative chroma, fractional trims, a trimmed PDQ) so a column that is
  // not stored or read back shows.
  Signature& g = r.fingerprints.signature;
  for (int k = 0; k < 8; ++k) g.smooth.dihedral[k].words.fill(uint16_t(seed * 13 + k));
  g.smooth.hash = g.smooth.dihedral[0];
  g.smooth.quality = 61;
  for (size_t i = 0; i < g.thumb.size(); ++i) g.thumb[i] = uint8_t(i * 7 + seed);
  for (size_t i = 0; i < g.chroma.size(); ++i) g.chroma[i] = int8_t(int(i) * 5 - 80);
  g.trim_left = 0.125f, g.trim_top = 0.0625f, g.trim_right = 0.25f, g.trim_bottom = 0.03125f;
  PdqResult trimmed;
  for (int k = 0; k < 8; ++k) trimmed.dihedral[k].words.fill(uint16_t(seed * 29 + k));
  trimmed.hash = trimmed.dihedral[0];  // stored without its variants (docs/catalogue.md)
  trimmed.quality = 44;
  g.trimmed = trimmed;
  for (size_t i = 0; i < g.inner_thumb.size(); ++i) g.inner_thumb[i] = uint8_t(255 - i % 251);
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
  for (int k = 0; k < 8; ++k)
    EXPECT_EQ(back->fingerprints.pdq.dihedral[k], want.fingerprints.pdq.dihedral[k]) << k;
  EXPECT_EQ(back->fingerprints.pdq.quality, 87);
  EXPECT_EQ(back->info.orientation, 6);
  EXPECT_EQ(back->metadata.capture_time, want.metadata.capture_time);
  EXPECT_EQ(back->metadata.keywords, want.metadata.keywords);
  EXPECT_DOUBLE_EQ(*back->metadata.gps_latitude, 48.8606);
  EXPECT_FALSE(back->metadata.gps_altitude.has_value());
  const Signature& g = back->fingerprints.signature;
  const Signature& w = want.fingerprints.signature;
  EXPECT_EQ(g.smooth.hash, w.smooth.hash);
  for (int k = 0; k < 8; ++k) EXPECT_EQ(g.smooth.dihedral[k], w.smooth.dihedral[k]) << k;
  EXPECT_EQ(g.smooth.quality, w.smooth.quality);
  EXPECT_EQ(g.thumb, w.thumb);
  EXPECT_EQ(g.chroma, w.chroma);
  EXPECT_FLOAT_EQ(g.trim_left, w.trim_left);
  EXPECT_FLOAT_EQ(g.trim_top, w.trim_top);
  EXPECT_FLOAT_EQ(g.trim_right, w.trim_right);
  EXPECT_FLOAT_EQ(g.trim_bottom, w.trim_bottom);
  ASSERT_TRUE(g.trimmed.has_value());
  EXPECT_EQ(g.trimmed->hash, w.trimmed->hash);
  EXPECT_EQ(g.trimmed->quality, w.trimmed->quality);
  EXPECT_EQ(g.inner_thumb, w.inner_thumb);
  EXPECT_EQ(back->info.format, want.info.format);
  EXPECT_EQ(back->info.width, want.info.width);
  EXPECT_EQ(back->info.height, want.info.height);
  EXPECT_EQ(back->info.bit_depth, want.info.bit_depth);
  EXPECT_EQ(back->file_size, want.file_size);
  EXPECT_EQ(back->mtime_ns, want.mtime_ns);
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
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'", nullptr,
                         nullptr, nullptr),
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

// Only `init` (create_if_missing) makes a catalogue: a 0-byte file, what a
// failed copy or a `touch` leaves, is "no catalogue" and stays untouched.
TEST(Catalogue, AnEmptyFileIsNoCatalogueUnlessCreating) {
  TempDir tmp;
  const std::string path = (tmp / "empty.db").string();
  testing::WriteFile(path, "");
  auto opened = OpenCatalogue(path, {});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kNotFound);
  EXPECT_NE(
      opened.status().message().find("no catalogue at " + path + "; create it with `doppel init`"),
      std::string::npos)
      << opened.status().message();
  EXPECT_EQ(std::filesystem::file_size(path), 0u);
  CatalogueOptions ro;
  ro.read_only = true;
  EXPECT_EQ(OpenCatalogue(path, ro).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(OpenCatalogue((tmp / "absent.db").string(), ro).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(tmp / "absent.db"));
  auto created = MustOpen(path);
  ASSERT_TRUE(created);
  EXPECT_GT(std::filesystem::file_size(path), 0u);
}

// Read-only opens neither migrate nor change the journal mode: an older
// catalogue is refused with the way to upgrade it, and left as it was.
TEST(Catalogue, ReadOnlyOpenReadsButNeverMigrates) {
  TempDir tmp;
  const std::string path = (tmp / "c.db").string();
  {
    auto cat = MustOpen(path);
    ASSERT_TRUE(cat);
    ASSERT_TRUE(cat->AddSource("apur", "/srv/apur", 1).ok());
  }
  CatalogueOptions ro;
  ro.read_only = true;
  {
    auto cat = OpenCatalogue(path, ro);
    ASSERT_TRUE(cat.ok()) << cat.status().ToString();
    auto sources = (*cat)->ListSources();
    ASSERT_TRUE(sources.ok());
    EXPECT_EQ(sources->size(), 1u);
    auto add = (*cat)->AddSource("urbanisme", "/srv/urbanisme", 0);
    ASSERT_FALSE(add.ok());
    EXPECT_NE(add.status().message().find("read-only"), std::string::npos)
        << add.status().message();
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '4' WHERE key = 'schema_version'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto old = OpenCatalogue(path, ro);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(old.status().message().find("schema version 4"), std::string::npos)
      << old.status().message();
  EXPECT_NE(old.status().message().find("init`"), std::string::npos) << old.status().message();
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st,
                               nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "4");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(Catalogue, AuditTrailIsAppendOnly) {
  TempDir dir;
  const std::string db = (dir.path() / "doppel.db").string();
  auto cat = MustOpen(db);
  ASSERT_TRUE(cat);
  Event e;
  e.type = "apply";
  e.object = "file:7";
  e.detail = R"({"action":"quarantine"})";
  e.operation = "op-1";
  auto id = cat->AppendEvent(e);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  e.object = "file:8";
  e.outcome = "failure";
  ASSERT_TRUE(cat->AppendEvent(e).ok());
  EXPECT_FALSE(cat->AppendEvent(Event{}).ok()) << "an event without type or object";

  EventFilter all;
  auto events = cat->ListEvents(all);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].id, *id);
  EXPECT_EQ((*events)[0].outcome, "success");
  EXPECT_EQ((*events)[0].agent.rfind("doppel ", 0), 0u) << (*events)[0].agent;
  EXPECT_FALSE((*events)[0].time.empty());
  EXPECT_EQ((*events)[1].outcome, "failure");
  EventFilter one;
  one.object = "file:8";
  EXPECT_EQ(cat->ListEvents(one)->size(), 1u);
  EventFilter after;
  after.after_id = *id;
  EXPECT_EQ(cat->ListEvents(after)->size(), 1u);

  // Not even a direct SQL connection may rewrite history.
  cat.reset();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(raw, "UPDATE events SET outcome = 'success'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  EXPECT_NE(sqlite3_exec(raw, "DELETE FROM events", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  cat = MustOpen(db);
  EXPECT_EQ(cat->ListEvents(all)->size(), 2u);
}

TEST(Catalogue, ReviewDecisionsKeepHistoryAndAudit) {
  TempDir dir;
  auto cat = MustOpen((dir.path() / "doppel.db").string());
  ASSERT_TRUE(cat);
  ReviewDecision d;
  d.cluster_id = 4;
  d.decision = "confirm";
  d.master_file_id = 10;
  d.members = {10, 11, 12};
  d.reviewer = "amelie";
  ASSERT_TRUE(cat->RecordDecision(d).ok());
  d.decision = "choose_master";
  d.master_file_id = 12;
  d.note = "the TIFF is the original";
  ASSERT_TRUE(cat->RecordDecision(d).ok());
  ReviewDecision one = d;
  one.file_id = 11;
  one.decision = "reject";
  one.master_file_id = 0;
  ASSERT_TRUE(cat->RecordDecision(one).ok());

  ReviewDecision bad = d;
  bad.decision = "maybe";
  EXPECT_EQ(cat->RecordDecision(bad).status().code(), StatusCode::kInvalidArgument);
  bad.decision = "choose_master";
  bad.master_file_id = 0;
  EXPECT_EQ(cat->RecordDecision(bad).status().code(), StatusCode::kInvalidArgument);

  auto all = cat->ListDecisions(std::nullopt);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].decision, "confirm");
  EXPECT_EQ((*all)[1].master_file_id, 12);
  EXPECT_EQ((*all)[1].members, (std::vector<int64_t>{10, 11, 12}));
  EXPECT_EQ((*all)[1].note, "the TIFF is the original");
  EXPECT_FALSE((*all)[0].file_id.has_value());
  EXPECT_EQ((*all)[2].file_id, 11);
  EXPECT_EQ(cat->ListDecisions(99)->size(), 0u);
  EXPECT_EQ(cat->ListDecisions(4)->size(), 3u);

  EventFilter f;
  f.type = "review decision";
  auto events = cat->ListEvents(f);
  ASSERT_EQ(events->size(), 3u) << "each decision is audited";
  EXPECT_EQ((*events)[0].agent, "person amelie");
  EXPECT_EQ((*events)[0].object, "cluster:4");
  EXPECT_EQ((*events)[2].object, "file:11");
}

}  // namespace
}  // namespace doppel
