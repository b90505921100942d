// Resolving metadata conflicts (docs/plan.md, "Conflicts"): decisions are
// audit events with their author; the latest per (cluster, field) is in force
// in plans, exports, XMP sidecars and releases. Real JPEG files whose tags
// differ (written with exiv2), a real SQLite catalogue built by the doppel
// binary, and a fault-injecting Env for the sidecars.
#include "doppel/conflicts.h"

#include <gtest/gtest.h>

#include <exiv2/exiv2.hpp>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "doppel/catalogue.h"
#include "doppel/release.h"
#include "doppel/replace.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using testing::RunDoppel;
using testing::TempDir;

void SetExif(const fs::path& p, const std::map<std::string, std::string>& tags) {
  std::unique_ptr<Exiv2::Image> img(Exiv2::ImageFactory::open(p.string()).release());
  img->readMetadata();
  for (const auto& [k, v] : tags) img->exifData()[k] = v;
  img->writeMetadata();
}

// One picture in three departments whose tags disagree: the archives' and
// urbanisme's copies say "Pont Neuf", apur's "Pont-Neuf, vue générale"; the
// capture dates of archives and apur are a day apart, urbanisme has none.
class ConflictsFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = tmp_.path() / "src";
    db_ = (tmp_ / "c.db").string();
    testing::MakeImage(src_ / "archives" / "pont.jpg", 640, 480, 21, "[Q=90]");
    testing::CopyFile(src_ / "archives" / "pont.jpg", src_ / "apur" / "pont copie.jpg");
    testing::CopyFile(src_ / "archives" / "pont.jpg", src_ / "urbanisme" / "pont.jpg");
    testing::MakeImage(src_ / "urbanisme" / "autre.jpg", 640, 480, 22, "[Q=90]");
    SetExif(src_ / "archives" / "pont.jpg",
            {{"Exif.Image.ImageDescription", "Pont Neuf"},
             {"Exif.Photo.DateTimeOriginal", "1998:06:02 10:00:00"}});
    SetExif(src_ / "apur" / "pont copie.jpg",
            {{"Exif.Image.ImageDescription", "Pont-Neuf, vue générale"},
             {"Exif.Photo.DateTimeOriginal", "1998:06:01 09:00:00"}});
    SetExif(src_ / "urbanisme" / "pont.jpg", {{"Exif.Image.ImageDescription", "Pont Neuf"}});
    ASSERT_EQ(RunDoppel({"--db", db_, "-q", "init"}).exit_code, 0);
    int priority = 3;
    for (const char* s : {"archives", "urbanisme", "apur"})
      ASSERT_EQ(RunDoppel({"--db", db_, "-q", "source", "add", s, (src_ / s).string(), "--priority",
                           std::to_string(priority--)})
                    .exit_code,
                0);
    auto scan = RunDoppel({"--db", db_, "-q", "scan"});
    ASSERT_EQ(scan.exit_code, 0) << scan.err;
    auto match = RunDoppel({"--db", db_, "-q", "match"});
    ASSERT_EQ(match.exit_code, 0) << match.err;
    auto cat = OpenCatalogue(db_, {});
    ASSERT_TRUE(cat.ok()) << cat.status().ToString();
    cat_ = std::move(*cat);
    auto files = cat_->ListFiles(std::nullopt, "", 0);
    ASSERT_TRUE(files.ok());
    for (const FileEntry& f : *files) id_[f.source + "/" + f.path] = f.id;
    auto clusters = cat_->LoadClusters();
    ASSERT_TRUE(clusters.ok());
    ASSERT_EQ(clusters->size(), 1u);
    cluster_ = (*clusters)[0].id;
    PlanOptions o;
    o.include_unconfirmed = true;
    auto plan = MakePlan(*cat_, o);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    ASSERT_EQ(plan->clusters.size(), 1u);
    ASSERT_EQ(plan->clusters[0].metadata.conflicts.size(), 2u);  // title, capture_time
  }

  int64_t Id(const std::string& name) { return id_.at(name); }
  size_t DecisionEvents() {
    EventFilter f;
    f.type = "metadata decision";
    return cat_->ListEvents(f)->size();
  }
  MetadataDecisionRequest Req(const std::string& field, const std::string& value,
                              const std::string& from, const std::string& author = "claire") {
    return {cluster_, field, value, from, author};
  }
  ConsolidatedMetadata InForce() {
    auto all = MetadataInForce(*cat_);
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    EXPECT_EQ(all->size(), 1u);
    return all->empty() ? ConsolidatedMetadata{} : all->front();
  }

  TempDir tmp_;
  fs::path src_;
  std::string db_;
  std::unique_ptr<Catalogue> cat_;
  std::map<std::string, int64_t> id_;
  int64_t cluster_ = 0;
};

TEST_F(ConflictsFixture, BadDecisionsAreRefusedAndRecordNothing) {
  struct Case {
    MetadataDecisionRequest req;
    StatusCode code;
    std::string says;
  };
  const std::string unique = std::to_string(Id("urbanisme/autre.jpg"));
  const std::vector<Case> cases = {
      {Req("title", "x", "", ""), StatusCode::kInvalidArgument, "needs its author"},
      {Req("title", "x", "", "a\nb"), StatusCode::kInvalidArgument, "needs its author"},
      {Req("colour", "red", ""), StatusCode::kInvalidArgument, "not a field"},
      {Req("title", "", ""), StatusCode::kInvalidArgument, "--value V"},
      {Req("title", "x", "1"), StatusCode::kInvalidArgument, "--value V"},
      {{cluster_ + 100, "title", "x", "", "claire"}, StatusCode::kNotFound, "no consolidated"},
      {Req("artist", "Atget", ""), StatusCode::kInvalidArgument, "'artist' is not in conflict"},
      {Req("title", "", unique), StatusCode::kInvalidArgument, "is not a copy of cluster"},
      {Req("title", "", "urbanisme/autre.jpg"), StatusCode::kInvalidArgument, "is not a copy"},
      {Req("title", "", "/etc/passwd"), StatusCode::kInvalidArgument, "is not a copy"},
      {Req("capture_time", "", "urbanisme/pont.jpg"), StatusCode::kInvalidArgument,
       "carries no capture_time"},
      {Req("capture_time", "1998-13-01", ""), StatusCode::kInvalidArgument, "not an ISO 8601"},
      {Req("capture_time", "yesterday", ""), StatusCode::kInvalidArgument, "not an ISO 8601"},
      {Req("title", "   ", ""), StatusCode::kInvalidArgument, "empty"},
      {Req("title", "a\x01z", ""), StatusCode::kInvalidArgument, "control characters"},
      {Req("title", "\xff\xfe", ""), StatusCode::kInvalidArgument, "UTF-8"},
      {Req("title", std::string(2001, 'x'), ""), StatusCode::kInvalidArgument, "at most 2000"},
  };
  for (const Case& c : cases) {
    auto r = ResolveConflict(*cat_, c.req);
    ASSERT_FALSE(r.ok()) << c.says;
    EXPECT_EQ(r.status().code(), c.code) << r.status().ToString();
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("nothing recorded"), std::string::npos)
        << r.status().message();
  }
  EXPECT_EQ(DecisionEvents(), 0u);
  EXPECT_EQ(OpenConflicts(*cat_)->size(), 2u);
  // Values that pass are stored as written (gps with six decimals).
  EXPECT_EQ(*CheckMetadataValue("gps", " 48.857, 2.341 "), "48.857000,2.341000");
  EXPECT_FALSE(CheckMetadataValue("gps", "91,2").ok());
  EXPECT_FALSE(CheckMetadataValue("gps", "48.8").ok());
  EXPECT_EQ(*CheckMetadataValue("capture_time", "1998-06-01"), "1998-06-01");
  EXPECT_EQ(*CheckMetadataValue("capture_time", "1998-06-01T09:00:00.25+02:00"),
            "1998-06-01T09:00:00.25+02:00");
  EXPECT_EQ(*CheckMetadataValue("title", "  Le Pont Neuf "), "Le Pont Neuf");
}

TEST_F(ConflictsFixture, TheLatestDecisionIsInForceEverywhereAndTheCatalogueKeepsTheConflict) {
  // From a copy named by its path: urbanisme's value is the same text as the
  // archives' (so the conflict lists it once, under the archives' file).
  auto r = ResolveConflict(*cat_, Req("title", "", "urbanisme/pont.jpg"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, "Pont Neuf");
  EXPECT_EQ(r->from_file_id, Id("urbanisme/pont.jpg"));
  EventFilter f;
  f.type = "metadata decision";
  auto events = cat_->ListEvents(f);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].agent, "person claire");
  EXPECT_EQ((*events)[0].object, "cluster:" + std::to_string(cluster_));
  auto detail = nlohmann::json::parse((*events)[0].detail);
  EXPECT_EQ(detail["field"], "title");
  EXPECT_EQ(detail["from_file_id"], Id("urbanisme/pont.jpg"));

  // Changed by someone else, from a copy named by its absolute path; and a
  // date typed in.
  const std::string apur_abs = (src_ / "apur" / "pont copie.jpg").string();
  ASSERT_TRUE(ResolveConflict(*cat_, Req("title", "", apur_abs, "marc")).ok());
  ASSERT_TRUE(ResolveConflict(*cat_, Req("capture_time", "1998-06-01T08:30:00", "", "marc")).ok());
  auto decisions = LoadMetadataDecisions(*cat_);
  ASSERT_TRUE(decisions.ok());
  ASSERT_EQ(decisions->InForce().size(), 2u);
  const MetadataDecision* title = decisions->For(cluster_, "title");
  ASSERT_NE(title, nullptr);
  EXPECT_EQ(title->author, "marc");
  EXPECT_EQ(title->value, "Pont-Neuf, vue générale");

  // Exports: the decided values, nothing open.
  ConsolidatedMetadata m = InForce();
  EXPECT_EQ(m.fields["title"].value, "Pont-Neuf, vue générale");
  EXPECT_EQ(m.fields["title"].from_file_id, Id("apur/pont copie.jpg"));
  EXPECT_EQ(m.fields["capture_time"].value, "1998-06-01T08:30:00");
  EXPECT_EQ(m.fields["capture_time"].from_file_id, 0);
  EXPECT_TRUE(m.conflicts.empty());
  EXPECT_TRUE(OpenConflicts(*cat_)->empty());
  // The catalogue keeps what the copies say, so a decision can be changed.
  auto stored = ConsolidatedFromJson(cat_->LoadConsolidatedMetadata()->front().document);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->conflicts.size(), 2u);
  EXPECT_EQ(stored->fields["title"].value, "Pont Neuf");

  // A new plan carries the decisions; the XMP sidecar too.
  PlanOptions o;
  o.include_unconfirmed = true;
  auto plan = MakePlan(*cat_, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->clusters[0].metadata.fields["title"].value, "Pont-Neuf, vue générale");
  EXPECT_TRUE(plan->clusters[0].metadata.conflicts.empty());
  auto sidecars = WriteXmpSidecars(*cat_);
  ASSERT_TRUE(sidecars.ok());
  ASSERT_EQ(sidecars->size(), 1u);
  ASSERT_TRUE((*sidecars)[0].status.ok()) << (*sidecars)[0].status.ToString();
  const std::string xmp = testing::ReadFile((*sidecars)[0].path);
  EXPECT_NE(xmp.find("x-default\">Pont-Neuf, vue générale</rdf:li>"), std::string::npos) << xmp;
  EXPECT_EQ(xmp, ConsolidatedToXmp(InForce()));
  // And the release manifest's masters, once the copies are retired.
  ApplyOptions ao;
  ao.action = ActionKind::kRedirectOnly;
  auto applied = ApplyPlan(*cat_, *plan, ao);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  ASSERT_EQ(applied->applied, 2);
  auto rel = MakeRelease(*cat_, "1.0");
  ASSERT_TRUE(rel.ok()) << rel.status().ToString();
  auto manifest = nlohmann::json::parse(rel->manifest_json);
  ASSERT_EQ(manifest["masters"].size(), 1u) << rel->manifest_json;
  const auto& md = manifest["masters"][0]["metadata"];
  EXPECT_EQ(md["fields"]["title"]["value"], "Pont-Neuf, vue générale");
  EXPECT_EQ(md["fields"]["capture_time"]["value"], "1998-06-01T08:30:00");
  EXPECT_TRUE(md["conflicts"].empty()) << md.dump();

  // Another cluster's metadata is untouched by these decisions.
  ConsolidatedMetadata other = *stored;
  other.cluster_id = cluster_ + 1;
  decisions->Apply(other);
  EXPECT_EQ(other.conflicts.size(), 2u);
  EXPECT_EQ(other.fields["title"].value, "Pont Neuf");
}

TEST_F(ConflictsFixture, TheCommandLineResolvesAndListsOpenConflictsAsTableJsonAndCsv) {
  const std::string cluster = std::to_string(cluster_);
  auto open = RunDoppel({"--db", db_, "metadata", "--conflicts", "--json"});
  ASSERT_EQ(open.exit_code, 0) << open.err;
  auto j = nlohmann::json::parse(open.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["field"], "title");
  EXPECT_EQ(j[1]["field"], "capture_time");
  auto csv = RunDoppel({"--db", db_, "metadata", "--conflicts", "--format", "csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(csv.out.rfind("cluster_id,master_file_id,field,file_id,value\n", 0), 0u) << csv.out;
  EXPECT_NE(csv.out.find(",title," + std::to_string(Id("apur/pont copie.jpg")) +
                         ",\"Pont-Neuf, vue générale\"\n"),
            std::string::npos)
      << csv.out;

  // Refused: the message says why and that nothing was recorded.
  auto bad = RunDoppel({"--db", db_, "metadata", "resolve", cluster, "title", "--from",
                        "urbanisme/autre.jpg", "--reviewer", "claire"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("nothing recorded"), std::string::npos) << bad.err;
  EXPECT_NE(RunDoppel({"--db", db_, "metadata", "resolve", cluster, "title", "--value", "x",
                       "--from", "1", "--reviewer", "claire"})
                .exit_code,
            0);
  EXPECT_EQ(DecisionEvents(), 0u);

  auto ok = RunDoppel({"--db", db_, "metadata", "resolve", cluster, "title", "--from",
                       std::to_string(Id("apur/pont copie.jpg")), "--reviewer", "claire"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("decided by claire"), std::string::npos) << ok.out;
  open = RunDoppel({"--db", db_, "metadata", "--conflicts", "--json"});
  j = nlohmann::json::parse(open.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["field"], "capture_time");
  auto table = RunDoppel({"--db", db_, "metadata", "--conflicts"});
  EXPECT_NE(table.out.find("1 conflicts open"), std::string::npos) << table.out;
  auto exported = RunDoppel({"--db", db_, "metadata", "--format", "json"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_EQ(nlohmann::json::parse(exported.out)[0]["fields"]["title"]["value"],
            "Pont-Neuf, vue générale");
  auto xmp = RunDoppel({"--db", db_, "-q", "metadata", "--write-xmp"});
  ASSERT_EQ(xmp.exit_code, 0) << xmp.err;
  const std::string sidecar = testing::ReadFile(src_ / "archives" / "pont.jpg.xmp");
  EXPECT_NE(sidecar.find("x-default\">Pont-Neuf, vue générale</rdf:li>"), std::string::npos)
      << sidecar;
  auto audit = RunDoppel({"--db", db_, "audit", "--type", "metadata decision", "--format", "json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  auto events = nlohmann::json::parse(audit.out);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["agent"], "person claire");
  EXPECT_EQ(events[0]["detail"]["from_file_id"], Id("apur/pont copie.jpg"));
}

// Fails the k-th file-system mutation of a sidecar write -- creating the
// temporary file, each append, fsync, close, the rename, the folder's fsync,
// a removal -- before or after doing it, as a crash there would. A sidecar
// write makes no other kind of mutation.
class SidecarCrashEnv : public EnvWrapper {
 public:
  SidecarCrashEnv(int fail_at, bool after) : fail_at_(fail_at), after_(after) {}
  bool fired() const { return fired_; }

  Status Rename(const std::string& a, const std::string& b) override {
    return Mutate([&] { return target()->Rename(a, b); });
  }
  Status Remove(const std::string& p) override {
    return Mutate([&] { return target()->Remove(p); });
  }
  Status SyncDir(const std::string& d) override {
    return Mutate([&] { return target()->SyncDir(d); });
  }

  class File : public WritableFile {
   public:
    File(std::unique_ptr<WritableFile> f, SidecarCrashEnv* env) : f_(std::move(f)), env_(env) {}
    Status Append(const std::string& bytes) override {
      // A crash in the middle of a write leaves part of it.
      if (env_->n_ == env_->fail_at_ && !env_->after_) {
        ++env_->n_;
        env_->fired_ = true;
        (void)f_->Append(bytes.substr(0, bytes.size() / 2));
        return IOError("injected crash in the middle of a write");
      }
      return env_->Mutate([&] { return f_->Append(bytes); });
    }
    Status Sync() override {
      return env_->Mutate([&] { return f_->Sync(); });
    }
    Status Close() override {
      return env_->Mutate([&] { return f_->Close(); });
    }

   private:
    std::unique_ptr<WritableFile> f_;
    SidecarCrashEnv* env_;
  };
  Result<std::unique_ptr<WritableFile>> NewExclusiveFile(const std::string& p) override {
    std::unique_ptr<WritableFile> f;
    Status s = Mutate([&] {
      auto r = target()->NewExclusiveFile(p);
      if (r.ok()) f = std::move(*r);
      return r.status();
    });
    if (!s.ok()) return s;
    return std::unique_ptr<WritableFile>(new File(std::move(f), this));
  }

 private:
  template <typename F>
  Status Mutate(F f) {
    if (n_++ != fail_at_) return f();
    fired_ = true;
    if (after_) (void)f();
    return IOError("injected crash at mutation " + std::to_string(fail_at_));
  }
  int fail_at_;
  bool after_;
  int n_ = 0;
  bool fired_ = false;
};

TEST_F(ConflictsFixture, ACrashWritingASidecarWithAResolvedValueIsFinishedByWritingAgain) {
  const fs::path dir = src_ / "archives";
  const fs::path sidecar = dir / "pont.jpg.xmp";
  auto listing = [&] {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
    return names;
  };
  int crashes = 0;
  for (bool after : {false, true}) {
    for (int k = 0;; ++k) {
      SCOPED_TRACE(std::string(after ? "after" : "before") + " mutation " + std::to_string(k));
      // The sidecar of the last plan (no decision yet), then a decision.
      if (fs::exists(sidecar)) fs::remove(sidecar);
      auto first = WriteXmpSidecars(*cat_);
      ASSERT_TRUE(first.ok() && (*first)[0].status.ok());
      const std::string old_xmp = testing::ReadFile(sidecar);
      const std::string decided_title = "x-default\">Pont-Neuf, vue générale</rdf:li>";
      ASSERT_EQ(old_xmp.find(decided_title), std::string::npos);
      const std::set<std::string> before = listing();
      auto d = ResolveConflict(*cat_, Req("title", "", std::to_string(Id("apur/pont copie.jpg"))));
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      const std::string new_xmp = ConsolidatedToXmp(InForce());
      ASSERT_NE(new_xmp.find(decided_title), std::string::npos) << new_xmp;

      SidecarCrashEnv crash(k, after);
      auto r = WriteXmpSidecars(*cat_, &crash);
      ASSERT_TRUE(r.ok()) << r.status().ToString();  // the catalogue is not the Env's
      // Whatever the crash point: the sidecar is the old one or the new one,
      // whole; the decision stands.
      const std::string now = testing::ReadFile(sidecar);
      EXPECT_TRUE(now == old_xmp || now == new_xmp) << now.size();
      EXPECT_EQ(LoadMetadataDecisions(*cat_)->For(cluster_, "title")->event_id, d->event_id);
      if (crash.fired()) {
        ++crashes;
        EXPECT_FALSE((*r)[0].status.ok());
      }
      // Writing again finishes: the new sidecar, nothing else left beside it.
      auto again = WriteXmpSidecars(*cat_);
      ASSERT_TRUE(again.ok());
      ASSERT_TRUE((*again)[0].status.ok()) << (*again)[0].status.ToString();
      EXPECT_EQ(testing::ReadFile(sidecar), new_xmp);
      EXPECT_EQ(listing(), before);
      // Back to no decision for the next round: a typed-in decision cannot be
      // withdrawn, so the next one restores the archives' title.
      ASSERT_TRUE(ResolveConflict(*cat_, Req("title", "", "archives/pont.jpg")).ok());
      if (!crash.fired()) break;
    }
  }
  EXPECT_GE(crashes, 10) << "the crash points did not cover the sidecar's steps";
  // Every attempt is in the audit trail, failures included.
  EventFilter f;
  f.type = "sidecar";
  int failures = 0;
  auto events = cat_->ListEvents(f);
  ASSERT_TRUE(events.ok());
  for (const Event& e : *events) failures += e.outcome == "failure";
  EXPECT_GT(failures, 0);
}

TEST(ConsolidatedFields, TheKnownFieldsAreExactlyTheOnesConsolidationFills) {
  Candidate a, b;
  a.file_id = 1;
  b.file_id = 2;
  for (Candidate* c : {&a, &b}) {
    ImageMetadata& md = c->record.metadata;
    const std::string s = std::to_string(c->file_id);
    md.title = "t" + s;
    md.artist = "a" + s;
    md.copyright = "c" + s;
    md.make = "m" + s;
    md.model = "o" + s;
    md.capture_time = "1998-06-0" + s + "T09:00:00";
    md.gps_latitude = 48.0 + c->file_id;
    md.gps_longitude = 2.0;
  }
  ConsolidatedMetadata m = Consolidate(7, {a, b}, 0);
  std::vector<std::string> filled, in_conflict;
  for (const auto& [k, v] : m.fields) filled.push_back(k);
  for (const MetadataConflict& c : m.conflicts) in_conflict.push_back(c.field);
  std::vector<std::string> known = ConsolidatedFieldNames();
  EXPECT_EQ(in_conflict, known);  // Consolidate's order
  std::sort(known.begin(), known.end());
  EXPECT_EQ(filled, known);
  for (const std::string& f : known)
    EXPECT_EQ(MetadataFieldValue(a.record.metadata, f), m.fields[f].value) << f;
}

}  // namespace
}  // namespace doppel
