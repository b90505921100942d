// The catalogue interface on both backends, one suite: a real SQLite file and
// a real PostgreSQL database (tests/pg_server.h). Versioning, round trips,
// moves, the audit trail.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "catalogue/catalogue_rows.h"
#include "catalogue/pg_catalogue.h"
#include "doppel/catalogue.h"
#include "pg_server.h"
#include "test_util.h"

namespace doppel {
namespace {

using testing::TempDir;

enum class Backend { kSqlite, kPostgres };

std::unique_ptr<Catalogue> MustOpen(const std::string& location) {
  CatalogueOptions o;
  o.create_if_missing = true;
  auto c = OpenCatalogue(location, o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

// Each test gets its own catalogue location on the backend under test: a
// file in a fresh folder, or a fresh database of the test cluster.
class CatalogueTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kPostgres)
      DOPPEL_REQUIRE_PG(location_);
    else
      location_ = (tmp_ / "c.db").string();
  }
  bool Pg() const { return GetParam() == Backend::kPostgres; }
  // A second, separate location with nothing in it.
  std::string OtherLocation(const std::string& name) {
    if (!Pg()) return (tmp_ / name).string();
    std::string why;
    std::string uri = testing::FreshPgDatabase(&why);
    EXPECT_FALSE(uri.empty()) << why;
    return uri;
  }
  // Runs SQL on the catalogue outside doppel; true if it succeeded.
  bool RawExec(const std::string& location, const std::string& sql) {
    if (Pg()) {
      std::string error;
      testing::PgExec(location, sql, &error);
      return error.empty();
    }
    sqlite3* db = nullptr;
    bool ok = sqlite3_open(location.c_str(), &db) == SQLITE_OK &&
              sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
    sqlite3_close(db);
    return ok;
  }
  std::string RawQuery(const std::string& location, const std::string& sql) {
    if (Pg()) return testing::PgExec(location, sql);
    sqlite3* db = nullptr;
    std::string out;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_open(location.c_str(), &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  TempDir tmp_;
  std::string location_;
};

INSTANTIATE_TEST_SUITE_P(Backends, CatalogueTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kSqlite ? "SQLite" : "PostgreSQL";
                         });

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

TEST_P(CatalogueTest, RecordsRoundTripExactly) {
  auto cat = MustOpen(location_);
  ASSERT_TRUE(cat);
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

TEST_P(CatalogueTest, ASecondLiveScanOfTheSameSourceIsRefused) {
  auto a = MustOpen(location_);
  ASSERT_TRUE(a);
  auto src = a->AddSource("apur", "/mnt/apur", 0);
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE(a->BeginScan(src->id).ok());
  auto b = MustOpen(location_);
  ASSERT_TRUE(b);
  // Same process, so its pid is alive: the lease holds.
  auto second = b->BeginScan(src->id);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kBusy);
  EXPECT_NE(second.status().message().find("is running in process"), std::string::npos)
      << second.status().message();
}

TEST_P(CatalogueTest, NewerSchemasAndOtherDatabasesAreRefused) {
  { ASSERT_TRUE(MustOpen(location_)); }
  ASSERT_TRUE(RawExec(location_, "UPDATE meta SET value = '99' WHERE key = 'schema_version'"));
  auto newer = OpenCatalogue(location_, {});
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(newer.status().message().find("upgrade doppel"), std::string::npos);

  const std::string other = OtherLocation("other.db");
  ASSERT_TRUE(RawExec(other, "CREATE TABLE t(x INTEGER)"));
  auto foreign = OpenCatalogue(other, {});
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().message().find("not a doppel catalogue"), std::string::npos)
      << foreign.status().message();
  if (Pg()) {
    // A database that is not there: no catalogue, with the way to make one.
    std::string absent = location_;
    absent.replace(absent.find("@/") + 2, absent.find('?') - absent.find("@/") - 2, "absent");
    auto none = OpenCatalogue(absent, {});
    EXPECT_EQ(none.status().code(), StatusCode::kNotFound) << none.status().ToString();
  } else {
    auto none = OpenCatalogue((tmp_ / "absent.db").string(), {});
    EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  }
}

// Only `init` (create_if_missing) makes a catalogue: a 0-byte file, what a
// failed copy or a `touch` leaves, or an empty PostgreSQL database, is "no
// catalogue" and stays untouched.
TEST_P(CatalogueTest, AnEmptyLocationIsNoCatalogueUnlessCreating) {
  const std::string empty = OtherLocation("empty.db");
  if (!Pg()) testing::WriteFile(empty, "");
  auto opened = OpenCatalogue(empty, {});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kNotFound);
  const std::string redacted = Pg() ? RedactPgUri(empty) : empty;
  EXPECT_NE(opened.status().message().find("no catalogue " + std::string(Pg() ? "in " : "at ") +
                                           redacted + "; create it with `doppel"),
            std::string::npos)
      << opened.status().message();
  CatalogueOptions ro;
  ro.read_only = true;
  EXPECT_EQ(OpenCatalogue(empty, ro).status().code(), StatusCode::kNotFound);
  if (Pg()) {
    EXPECT_EQ(RawQuery(empty,
                       "SELECT count(*) FROM information_schema.tables WHERE "
                       "table_schema = 'public'"),
              "0");
  } else {
    EXPECT_EQ(std::filesystem::file_size(empty), 0u);
    EXPECT_EQ(OpenCatalogue((tmp_ / "absent.db").string(), ro).status().code(),
              StatusCode::kNotFound);
    EXPECT_FALSE(std::filesystem::exists(tmp_ / "absent.db"));
  }
  auto created = MustOpen(empty);
  ASSERT_TRUE(created);
  EXPECT_EQ(created->SchemaVersion(), catalogue_rows::kSchemaVersion);
  EXPECT_EQ(RawQuery(empty, "SELECT value FROM meta WHERE key = 'schema_version'"),
            std::to_string(catalogue_rows::kSchemaVersion));
}

// Read-only opens neither migrate nor change the journal mode: an older
// catalogue is refused with the way to upgrade it, and left as it was.
TEST_P(CatalogueTest, ReadOnlyOpenReadsButNeverMigrates) {
  {
    auto cat = MustOpen(location_);
    ASSERT_TRUE(cat);
    ASSERT_TRUE(cat->AddSource("apur", "/srv/apur", 1).ok());
  }
  CatalogueOptions ro;
  ro.read_only = true;
  {
    auto cat = OpenCatalogue(location_, ro);
    ASSERT_TRUE(cat.ok()) << cat.status().ToString();
    auto sources = (*cat)->ListSources();
    ASSERT_TRUE(sources.ok());
    EXPECT_EQ(sources->size(), 1u);
    auto add = (*cat)->AddSource("urbanisme", "/srv/urbanisme", 0);
    ASSERT_FALSE(add.ok());
    EXPECT_NE(add.status().message().find("read-only"), std::string::npos)
        << add.status().message();
  }
  ASSERT_TRUE(RawExec(location_, "UPDATE meta SET value = '4' WHERE key = 'schema_version'"));
  auto old = OpenCatalogue(location_, ro);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(old.status().message().find("schema version 4"), std::string::npos)
      << old.status().message();
  EXPECT_NE(old.status().message().find("init`"), std::string::npos) << old.status().message();
  EXPECT_EQ(RawQuery(location_, "SELECT value FROM meta WHERE key = 'schema_version'"), "4");
}

TEST_P(CatalogueTest, AuditTrailIsAppendOnly) {
  const std::string db = location_;
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
  EXPECT_FALSE(RawExec(db, "UPDATE events SET outcome = 'success'"));
  EXPECT_FALSE(RawExec(db, "DELETE FROM events"));
  if (Pg()) {
    EXPECT_FALSE(RawExec(db, "TRUNCATE events"));
  }
  cat = MustOpen(db);
  EXPECT_EQ(cat->ListEvents(all)->size(), 2u);
}

TEST_P(CatalogueTest, ReviewDecisionsKeepHistoryAndAudit) {
  auto cat = MustOpen(location_);
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
