// Replacing duplicates: policy, consolidated metadata, plans, apply under a
// journal with fault injection at every step and a real kill -9, undo,
// audit and releases. Real images, a real scan, a real SQLite catalogue.
#include "doppel/replace.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <vips/vips.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "doppel/catalogue.h"
#include "doppel/policy.h"
#include "doppel/release.h"
#include "replace/replace_int.h"
#include "test_util.h"
#include "util/sha256.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::MakeImage;
using testing::RunDoppel;
using testing::TempDir;

// ---------------------------------------------------------------- policy

Candidate Cand(int64_t id, const std::string& source, int priority, const std::string& format,
               int w, int h, int64_t size, const std::string& capture = "") {
  Candidate c;
  c.file_id = id;
  c.source = source;
  c.source_priority = priority;
  c.path = "p" + std::to_string(id) + "." + format;
  c.record.info.format = format;
  c.record.info.width = w;
  c.record.info.height = h;
  c.record.info.bit_depth = 8;
  c.record.file_size = size;
  c.record.metadata.capture_time = capture;
  return c;
}

TEST(ReplacePolicy, DefaultsRankSourceThenOriginalAndSayWhy) {
  MasterPolicy p;  // built-in: Source.priority decides first
  std::vector<Candidate> c = {Cand(3, "apur", 1, "jpeg", 1600, 1067, 400000),
                              Cand(1, "archives", 5, "tiff", 6000, 4000, 72000000),
                              Cand(2, "urbanisme", 2, "jpeg", 1600, 1067, 500000)};
  MasterChoice m = ChooseMaster(c, p);
  EXPECT_EQ(c[m.index].file_id, 1);
  EXPECT_NE(m.reason.find("kept archives/p1.tiff: it holds more of the picture: it has more "
                          "pixels (6000×4000 against 1600×1067)"),
            std::string::npos)
      << m.reason;
  // Between copies that hold the same, the department decides.
  std::vector<Candidate> peers = {Cand(3, "apur", 1, "jpeg", 1600, 1067, 400000),
                                  Cand(2, "urbanisme", 2, "jpeg", 1600, 1067, 400000)};
  m = ChooseMaster(peers, p);
  EXPECT_EQ(peers[m.index].file_id, 2);
  EXPECT_NE(m.reason.find("kept urbanisme/p2.jpeg: source 'urbanisme' has priority 2"),
            std::string::npos)
      << m.reason;
  EXPECT_EQ(m.warning, "");
  // Same source: the original (more pixels) beats the export.
  std::vector<Candidate> same = {Cand(7, "apur", 1, "jpeg", 800, 600, 90000),
                                 Cand(8, "apur", 1, "jpeg", 1600, 1200, 300000)};
  m = ChooseMaster(same, p);
  EXPECT_EQ(same[m.index].file_id, 8);
  EXPECT_NE(m.reason.find("more pixels (1600×1200 against 800×600)"), std::string::npos)
      << m.reason;
  // Same size: lossless over lossy, then less recompression, then earlier
  // capture, then lowest id.
  std::vector<Candidate> lossless = {Cand(4, "a", 0, "jpeg", 100, 100, 9000),
                                     Cand(5, "a", 0, "png", 100, 100, 5000)};
  EXPECT_EQ(lossless[ChooseMaster(lossless, p).index].file_id, 5);
  std::vector<Candidate> recompressed = {Cand(4, "a", 0, "jpeg", 100, 100, 3000),
                                         Cand(5, "a", 0, "jpeg", 100, 100, 9000)};
  m = ChooseMaster(recompressed, p);
  EXPECT_EQ(recompressed[m.index].file_id, 5);
  EXPECT_NE(m.reason.find("less compressed (0.90 bytes per pixel against 0.30)"), std::string::npos)
      << m.reason;
  std::vector<Candidate> dated = {Cand(4, "a", 0, "jpeg", 100, 100, 9000, "2001-05-01T10:00:00"),
                                  Cand(5, "a", 0, "jpeg", 100, 100, 9000, "1998-05-01T10:00:00")};
  EXPECT_EQ(dated[ChooseMaster(dated, p).index].file_id, 5);
  std::vector<Candidate> tie = {Cand(9, "a", 0, "jpeg", 100, 100, 9000),
                                Cand(6, "a", 0, "jpeg", 100, 100, 9000)};
  m = ChooseMaster(tie, p);
  EXPECT_EQ(tie[m.index].file_id, 6);
  EXPECT_NE(m.reason.find("lowest file id (6)"), std::string::npos) << m.reason;
}

TEST(ReplacePolicy, TomlFileOrdersDepartmentsAndRulesAndRefusesTypos) {
  auto p = ParsePolicy(R"(
version = 1
rules = ["source", "capture_date", "original"]
[sources]
order = ["archives", "urbanisme"]
)",
                       "policy.toml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->rules.size(), 4u);  // file_id appended
  EXPECT_EQ(p->rules.back(), PolicyRule::kFileId);
  // Listed sources rank above unlisted ones whatever their priority.
  std::vector<Candidate> c = {Cand(1, "apur", 9, "tiff", 6000, 4000, 1),
                              Cand(2, "archives", 0, "jpeg", 10, 10, 1)};
  MasterChoice m = ChooseMaster(c, *p);
  EXPECT_EQ(c[m.index].file_id, 2);
  EXPECT_NE(m.reason.find("source 'archives' ranks above 'apur' in the policy"), std::string::npos)
      << m.reason;
  // capture_date before original: the earlier dated small copy wins.
  std::vector<Candidate> d = {Cand(1, "x", 0, "tiff", 6000, 4000, 1, "2010-01-01T00:00:00"),
                              Cand(2, "x", 0, "jpeg", 10, 10, 1, "1990-01-01T00:00:00")};
  EXPECT_EQ(d[ChooseMaster(d, *p).index].file_id, 2);

  auto typo = ParsePolicy("version = 1\nrules = [\"sourse\"]\n", "p.toml");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("unknown rule 'sourse'"), std::string::npos);
  auto newer = ParsePolicy("version = 9\n", "p.toml");
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("upgrade doppel"), std::string::npos);
  auto broken = ParsePolicy("version = = 1\n", "p.toml");
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("p.toml: line 1"), std::string::npos)
      << broken.status().message();
  auto key = ParsePolicy("version = 1\nsource_order = []\n", "p.toml");
  EXPECT_FALSE(key.ok());
  // The documented example parses.
  std::ifstream doc(std::string(DOPPEL_SOURCE_DIR) + "/docs/policy.md");
  std::stringstream ss;
  ss << doc.rdbuf();
  const std::string md = ss.str();
  const size_t a = md.find("```toml\n"), b = md.find("```", a + 8);
  ASSERT_NE(a, std::string::npos);
  EXPECT_TRUE(ParsePolicy(md.substr(a + 8, b - a - 8), "docs/policy.md").ok());
}

TEST(ReplaceMetadata, ConsolidationKeepsProvenanceEarliestDateAndListsConflicts) {
  Candidate a = Cand(1, "archives", 3, "tiff", 6000, 4000, 1, "1998-06-02T10:00:00");
  a.record.metadata.title = "Pont Neuf";
  a.record.metadata.keywords = {"pont", "seine"};
  Candidate b = Cand(2, "urbanisme", 2, "jpeg", 1600, 1067, 1, "1998-06-01T09:00:00");
  b.record.metadata.title = "Pont-Neuf, vue générale";
  b.record.metadata.keywords = {"seine", "patrimoine"};
  b.record.metadata.gps_latitude = 48.8566;
  b.record.metadata.gps_longitude = 2.3412;
  Candidate c = Cand(3, "apur", 1, "jpeg", 1600, 1067, 1, "1998-06-02T10:00:00");
  c.record.metadata.artist = "APUR";
  c.record.metadata.gps_latitude = 48.8600;
  c.record.metadata.gps_longitude = 2.3500;
  ConsolidatedMetadata m = Consolidate(4, {a, b, c}, 0);
  ASSERT_EQ(m.held_by.size(), 3u);
  EXPECT_TRUE(m.held_by[0].master);
  EXPECT_EQ(m.held_by[2].source, "apur");
  EXPECT_EQ(m.fields["capture_time"].value, "1998-06-01T09:00:00");  // earliest
  EXPECT_EQ(m.fields["capture_time"].from_file_id, 2);
  EXPECT_EQ(m.fields["title"].value, "Pont Neuf");  // the master's
  EXPECT_EQ(m.fields["artist"].from_file_id, 3);
  EXPECT_EQ(m.keywords, (std::vector<std::string>{"pont", "seine", "patrimoine"}));
  EXPECT_EQ(m.keyword_from["seine"], (std::vector<int64_t>{1, 2}));
  std::set<std::string> conflicts;
  for (const auto& x : m.conflicts) conflicts.insert(x.field);
  EXPECT_EQ(conflicts, (std::set<std::string>{"capture_time", "gps", "title"}));
  auto back = ConsolidatedFromJson(ConsolidatedToJson(m));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->keywords, m.keywords);
  EXPECT_EQ(back->conflicts.size(), 3u);
  const std::string xmp = ConsolidatedToXmp(m);
  EXPECT_NE(xmp.find("<rdf:li>patrimoine</rdf:li>"), std::string::npos);
  EXPECT_NE(xmp.find("urbanisme/p2.jpeg"), std::string::npos);
}

// ---------------------------------------------------------------- fixture

// Writes a derivative of an image (resized, re-encoded) like a department's
// export.
void Derive(const fs::path& from, const fs::path& to, double scale, const std::string& options) {
  fs::create_directories(to.parent_path());
  VipsImage* in = vips_image_new_from_file(from.c_str(), nullptr);
  ASSERT_TRUE(in) << vips_error_buffer();
  VipsImage* out = nullptr;
  ASSERT_EQ(vips_resize(in, &out, scale, nullptr), 0) << vips_error_buffer();
  ASSERT_EQ(vips_image_write_to_file(out, (to.string() + options).c_str(), nullptr), 0)
      << vips_error_buffer();
  g_object_unref(out);
  g_object_unref(in);
}

struct TreeEntry {
  std::string sha;
  int64_t mtime_ns = 0;
  bool symlink = false;
  bool operator==(const TreeEntry& o) const {
    return sha == o.sha && mtime_ns == o.mtime_ns && symlink == o.symlink;
  }
};
std::ostream& operator<<(std::ostream& os, const TreeEntry& s) {
  return os << s.sha.substr(0, 12) << " mtime " << s.mtime_ns << (s.symlink ? " symlink" : "");
}

// Every file under dir: SHA-256 of its bytes, mtime and whether it is a link.
std::map<std::string, TreeEntry> Snapshot(const fs::path& dir) {
  std::map<std::string, TreeEntry> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_directory() && !e.is_symlink()) continue;
    struct stat st {};
    lstat(e.path().c_str(), &st);
    TreeEntry s;
    s.symlink = S_ISLNK(st.st_mode);
    s.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    std::string bytes =
        s.symlink ? fs::read_symlink(e.path()).string() : testing::ReadFile(e.path());
    s.sha = DigestHex(Sha256::Of(bytes.data(), bytes.size()));
    out[e.path().lexically_relative(dir).string()] = s;  // not fs::relative: it follows links
  }
  return out;
}

// Three departments. The Archives hold the originals; Urbanisme and APUR hold
// JPEG exports (near copies: need a person's confirmation) and exact copies.
class ReplaceFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = tmp_.path() / "src";
    db_ = (tmp_ / "c.db").string();
    MakeImage(src_ / "archives" / "vue_0311.tif", 1200, 900, 11);
    MakeImage(src_ / "archives" / "pont.png", 640, 480, 12);
    MakeImage(src_ / "urbanisme" / "unique.jpg", 640, 480, 13, "[Q=90]");
    Derive(src_ / "archives" / "vue_0311.tif", src_ / "urbanisme" / "IMG_0311.jpg", 0.5, "[Q=85]");
    Derive(src_ / "archives" / "vue_0311.tif", src_ / "apur" / "export" / "vue.jpg", 0.75,
           "[Q=80]");
    testing::CopyFile(src_ / "archives" / "pont.png", src_ / "urbanisme" / "pont.png");
    testing::CopyFile(src_ / "archives" / "pont.png", src_ / "apur" / "pont copie.png");
    ASSERT_EQ(RunDoppel({"--db", db_, "init"}).exit_code, 0);
    int priority = 3;
    for (const char* s : {"archives", "urbanisme", "apur"})
      ASSERT_EQ(RunDoppel({"--db", db_, "source", "add", s, (src_ / s).string(), "--priority",
                           std::to_string(priority--)})
                    .exit_code,
                0);
    auto scan = RunDoppel({"--db", db_, "scan"});
    ASSERT_EQ(scan.exit_code, 0) << scan.err;
    auto match = RunDoppel({"--db", db_, "match"});
    ASSERT_EQ(match.exit_code, 0) << match.err;
    auto cat = OpenCatalogue(db_, {});
    ASSERT_TRUE(cat.ok()) << cat.status().ToString();
    cat_ = std::move(*cat);
    auto clusters = cat_->LoadClusters();
    ASSERT_TRUE(clusters.ok());
    auto files = cat_->ListFiles(std::nullopt, "", 0);
    for (const FileEntry& f : *files) id_[f.source + "/" + f.path] = f.id;
    for (const Cluster& c : *clusters)
      for (const ClusterMember& m : c.members) cluster_of_[m.file_id] = c.id;
    ASSERT_EQ(clusters->size(), 2u) << "the fixture should make one near and one exact cluster";
    before_ = Snapshot(src_);
  }

  int64_t Id(const std::string& name) { return id_.at(name); }
  int64_t ClusterOf(const std::string& name) { return cluster_of_.at(Id(name)); }

  void Confirm(const std::string& any_member, const std::string& decision = "confirm",
               int64_t master = 0) {
    ReviewDecision d;
    d.cluster_id = ClusterOf(any_member);
    d.decision = decision;
    d.master_file_id = master;
    d.reviewer = "claire";
    ASSERT_TRUE(cat_->RecordDecision(d).ok());
  }

  Plan MakeTestPlan(bool include_unconfirmed = false) {
    PlanOptions o;
    o.include_unconfirmed = include_unconfirmed;
    auto p = MakePlan(*cat_, o);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *p : Plan{};
  }

  std::vector<std::string> JournalFiles() {
    std::vector<std::string> out;
    const fs::path dir = db_ + ".replace/journal";
    if (fs::exists(dir))
      for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    return out;
  }

  TempDir tmp_;
  fs::path src_;
  std::string db_;
  std::unique_ptr<Catalogue> cat_;
  std::map<std::string, int64_t> id_;
  std::map<int64_t, int64_t> cluster_of_;
  std::map<std::string, TreeEntry> before_;
};

TEST_F(ReplaceFixture, PlanTakesExactCopiesAndConfirmedClustersOnly) {
  Plan p = MakeTestPlan();
  ASSERT_EQ(p.clusters.size(), 1u);  // the exact copies of pont.png
  EXPECT_EQ(p.clusters[0].master, "archives/pont.png");
  EXPECT_EQ(p.actions.size(), 2u);
  ASSERT_EQ(p.skipped.size(), 1u);
  EXPECT_NE(p.skipped[0].reason.find("--include-unconfirmed"), std::string::npos);
  for (const PlannedAction& a : p.actions) {
    EXPECT_EQ(a.relation, "exact");
    EXPECT_NE(a.reason.find("which is kept: source 'archives' has priority 3"), std::string::npos)
        << a.reason;
  }
  // Wider: the near copies too, with the TIFF kept.
  Plan wide = MakeTestPlan(true);
  EXPECT_EQ(wide.clusters.size(), 2u);
  EXPECT_EQ(wide.actions.size(), 4u);
  // A person's confirmation plans the near cluster without the flag.
  Confirm("urbanisme/IMG_0311.jpg");
  Plan confirmed = MakeTestPlan();
  ASSERT_EQ(confirmed.clusters.size(), 2u);
  const PlannedCluster& near = confirmed.clusters[0].master == "archives/vue_0311.tif"
                                   ? confirmed.clusters[0]
                                   : confirmed.clusters[1];
  EXPECT_EQ(near.master, "archives/vue_0311.tif");
  EXPECT_NE(near.basis.find("confirmed by claire"), std::string::npos);
  EXPECT_EQ(near.metadata.held_by.size(), 3u);
  // choose_master overrides the policy; a member-level reject leaves a file
  // out.
  Confirm("urbanisme/IMG_0311.jpg", "choose_master", Id("apur/export/vue.jpg"));
  ReviewDecision not_dup;
  not_dup.cluster_id = ClusterOf("urbanisme/IMG_0311.jpg");
  not_dup.file_id = Id("urbanisme/IMG_0311.jpg");
  not_dup.decision = "reject";
  not_dup.reviewer = "claire";
  ASSERT_TRUE(cat_->RecordDecision(not_dup).ok());
  Plan chosen = MakeTestPlan();
  bool seen = false;
  for (const PlannedCluster& c : chosen.clusters)
    if (c.cluster_id == ClusterOf("urbanisme/IMG_0311.jpg")) {
      seen = true;
      EXPECT_EQ(c.master, "apur/export/vue.jpg");
      EXPECT_NE(c.reason.find("chosen by claire in review"), std::string::npos) << c.reason;
    }
  EXPECT_TRUE(seen);
  for (const PlannedAction& a : chosen.actions) EXPECT_NE(a.file_id, Id("urbanisme/IMG_0311.jpg"));
  // Plans round-trip through their file format; a newer version is refused.
  auto back = PlanFromJson(PlanToJson(chosen), "plan.json");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->actions.size(), chosen.actions.size());
  json j = json::parse(PlanToJson(chosen));
  j["version"] = 99;
  auto newer = PlanFromJson(j.dump(), "plan.json");
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("plan.json: plan version 99 is newer"),
            std::string::npos);
  // A damaged plan (cut short, not JSON, an action missing a field) names the file.
  const std::string text = PlanToJson(chosen);
  for (const std::string& bad :
       {text.substr(0, text.size() / 2), std::string("not a plan"),
        std::string("{\"format\":\"doppel-plan\",\"version\":1,\"actions\":[{}]}")}) {
    auto broken = PlanFromJson(bad, "plan.json");
    ASSERT_FALSE(broken.ok()) << bad.substr(0, 40);
    EXPECT_NE(broken.status().message().find("plan.json"), std::string::npos)
        << broken.status().ToString();
  }
  // Every plan is an audit event.
  EventFilter f;
  f.type = "plan";
  EXPECT_EQ(cat_->ListEvents(f)->size(), 4u);
}

TEST_F(ReplaceFixture, EachActionKindAppliesThenUndoRestoresEveryByteAndMtime) {
  Plan p = MakeTestPlan(true);
  ASSERT_EQ(p.actions.size(), 4u);
  for (ActionKind kind : {ActionKind::kQuarantine, ActionKind::kHardlink, ActionKind::kSymlink,
                          ActionKind::kDelete, ActionKind::kRedirectOnly}) {
    SCOPED_TRACE(ActionKindName(kind));
    ApplyOptions o;
    o.action = kind;
    o.quarantine_dir = (tmp_ / "quarantine").string();
    auto r = ApplyPlan(*cat_, p, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->complete);
    EXPECT_EQ(r->applied, 4);
    const fs::path dup = src_ / "urbanisme" / "pont.png";
    switch (kind) {
      case ActionKind::kQuarantine:
        EXPECT_FALSE(fs::exists(dup));
        EXPECT_TRUE(fs::exists(tmp_ / "quarantine" / r->operation_id / "urbanisme" / "pont.png"));
        break;
      case ActionKind::kHardlink:
        EXPECT_TRUE(fs::equivalent(dup, src_ / "archives" / "pont.png"));
        break;
      case ActionKind::kSymlink:
        EXPECT_TRUE(fs::is_symlink(dup));
        EXPECT_EQ(fs::read_symlink(dup), src_ / "archives" / "pont.png");
        break;
      case ActionKind::kDelete:
        EXPECT_FALSE(fs::exists(dup));
        EXPECT_TRUE(fs::exists(db_ + ".replace/trash/" + r->operation_id + "/urbanisme/pont.png"));
        break;
      case ActionKind::kRedirectOnly:
        EXPECT_EQ(Snapshot(src_), before_);
        EXPECT_EQ(r->reclaimed_bytes, 0);
        break;
    }
    EXPECT_EQ(RetiredFiles(*cat_)->size(), 4u);
    // The masters are untouched.
    EXPECT_EQ(Snapshot(src_)["archives/vue_0311.tif"], before_["archives/vue_0311.tif"]);
    auto u = Undo(*cat_, r->operation_id, o);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    EXPECT_TRUE(u->complete);
    EXPECT_EQ(Snapshot(src_), before_);
    EXPECT_TRUE(JournalFiles().empty());
    EXPECT_TRUE(RetiredFiles(*cat_)->empty());
    EXPECT_FALSE(Undo(*cat_, r->operation_id, o).ok());  // already undone
  }
}

TEST_F(ReplaceFixture, RefusesToActOnAFileChangedSinceTheScanOrAMissingMaster) {
  Plan p = MakeTestPlan(true);
  // An editor touched one export after the scan; the near cluster's master
  // vanished.
  testing::WriteFile(src_ / "urbanisme" / "pont.png", "edited");
  fs::rename(src_ / "archives" / "vue_0311.tif", tmp_ / "vue_0311.tif");
  const auto changed = Snapshot(src_);
  ApplyOptions o;
  o.action = ActionKind::kDelete;
  auto r = ApplyPlan(*cat_, p, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->applied, 1);  // apur's copy of pont.png
  EXPECT_EQ(r->skipped, 3);
  std::string messages;
  for (const auto& x : r->outcomes) messages += x.message + "\n";
  EXPECT_NE(messages.find("urbanisme/pont.png changed since the scan"), std::string::npos)
      << messages;
  EXPECT_NE(messages.find("the last copy of a picture is never removed"), std::string::npos)
      << messages;
  EXPECT_TRUE(fs::exists(src_ / "urbanisme" / "IMG_0311.jpg"));
  EventFilter f;
  f.type = "apply";
  f.operation = r->operation_id;
  int warnings = 0;
  auto events = cat_->ListEvents(f);
  ASSERT_TRUE(events.ok());
  for (const Event& e : *events) warnings += e.outcome == "warning";
  EXPECT_EQ(warnings, 3);
  ASSERT_TRUE(Undo(*cat_, r->operation_id, o).ok());
  EXPECT_EQ(Snapshot(src_), changed);
}

TEST_F(ReplaceFixture, UndoLeavesAFileThatTookARetiredPlaceAndCanBeRunAgain) {
  Plan p = MakeTestPlan();
  ApplyOptions o;
  o.action = ActionKind::kQuarantine;
  auto r = ApplyPlan(*cat_, p, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->applied, 2);
  // Someone saved a new picture under a retired name meanwhile.
  testing::WriteFile(src_ / "urbanisme" / "pont.png", "a new picture");
  auto u = Undo(*cat_, r->operation_id, o);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_FALSE(u->complete);
  EXPECT_EQ(testing::ReadFile(src_ / "urbanisme" / "pont.png"),
            "a new picture");                  // left alone
  EXPECT_EQ(JournalFiles().size(), 1u);        // kept for another try
  EXPECT_EQ(RetiredFiles(*cat_)->size(), 1u);  // the other file is back
  fs::remove(src_ / "urbanisme" / "pont.png");
  {
    // One apply or undo at a time per catalogue.
    auto held = Env::Default()->LockFile(db_ + ".replace/lock");
    ASSERT_TRUE(held.ok());
    auto busy = Undo(*cat_, r->operation_id, o);
    ASSERT_FALSE(busy.ok());
    EXPECT_EQ(busy.status().code(), StatusCode::kBusy);
  }
  EXPECT_EQ(Undo(*cat_, "../../etc/passwd", o).status().code(), StatusCode::kInvalidArgument);
  auto again = Undo(*cat_, r->operation_id, o);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->complete);
  EXPECT_EQ(Snapshot(src_), before_);
  EXPECT_TRUE(JournalFiles().empty());
  EXPECT_TRUE(RetiredFiles(*cat_)->empty());
}

// An Env that fails its k-th mutation, before or after doing it (a crash
// between a step and its journal record), and can pretend the catalogue's
// folder is another file system (renames across it fail with EXDEV).
class FaultEnv : public EnvWrapper {
 public:
  FaultEnv(int fail_at, bool after, std::string tree)
      : fail_at_(fail_at), after_(after), tree_(std::move(tree)) {}
  bool fired() const { return fired_; }

  Status Rename(const std::string& a, const std::string& b) override {
    if (!tree_.empty() && InTree(a) != InTree(b))
      return Mutate([] { return Unsupported("EXDEV (test)"); });
    return Mutate([&] { return target()->Rename(a, b); });
  }
  Status CopyFile(const std::string& a, const std::string& b) override {
    return Mutate([&] { return target()->CopyFile(a, b); });
  }
  Status Link(const std::string& t, const std::string& at) override {
    return Mutate([&] { return target()->Link(t, at); });
  }
  Status Symlink(const std::string& t, const std::string& at) override {
    return Mutate([&] { return target()->Symlink(t, at); });
  }
  Status Remove(const std::string& p) override {
    return Mutate([&] { return target()->Remove(p); });
  }
  Status SetMtime(const std::string& p, int64_t t) override {
    return Mutate([&] { return target()->SetMtime(p, t); });
  }
  Status CreateDirs(const std::string& p) override {
    return Mutate([&] { return target()->CreateDirs(p); });
  }
  // Durability is not what this Env tests (the kill -9 test uses the real
  // one): skipping fsync keeps hundreds of runs fast.
  Status SyncDir(const std::string&) override {
    return Mutate([] { return Status::OK(); });
  }
  Status AppendDurably(const std::string& p, const std::string& bytes) override {
    // A failing append leaves half a record behind, as a crash mid-write would.
    if (n_ == fail_at_ && !after_) {
      ++n_;
      fired_ = true;
      (void)Append(p, bytes.substr(0, bytes.size() / 2));
      return IOError(p + ": injected failure");
    }
    return Mutate([&] { return Append(p, bytes); });
  }
  Status WriteFileDurably(const std::string& p, const std::string& b) override {
    return Mutate([&] { return target()->WriteFileDurably(p, b); });
  }

 private:
  static Status Append(const std::string& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::app);
    out << bytes;
    return out ? Status::OK() : IOError(p + ": cannot append");
  }
  bool InTree(const std::string& p) const { return p.compare(0, tree_.size(), tree_) == 0; }
  template <typename F>
  Status Mutate(F f) {
    if (n_++ != fail_at_) return f();
    fired_ = true;
    if (after_) {
      Status s = f();
      (void)s;
    }
    return IOError("injected failure at mutation " + std::to_string(fail_at_));
  }
  int fail_at_;
  bool after_;
  std::string tree_;
  int n_ = 0;
  bool fired_ = false;
};

TEST_F(ReplaceFixture, AFailureAtEveryStepOfApplyIsResumedThenUndoneExactly) {
  // Two actions (the exact copies) cover every step of every kind; more only
  // make the loop longer.
  Plan p = MakeTestPlan();
  ASSERT_EQ(p.actions.size(), 2u);
  struct Case {
    ActionKind kind;
    bool cross_device;
  };
  for (Case c : {Case{ActionKind::kQuarantine, true}, Case{ActionKind::kHardlink, false},
                 Case{ActionKind::kSymlink, true}, Case{ActionKind::kDelete, false}}) {
    for (bool after : {false, true}) {
      int steps = 0;
      for (int k = 0;; ++k) {
        SCOPED_TRACE(std::string(ActionKindName(c.kind)) + (after ? " after" : " before") +
                     " step " + std::to_string(k));
        const std::string tree = c.cross_device ? src_.string() : "";
        FaultEnv faulty(k, after, tree);
        ApplyOptions o;
        o.action = c.kind;
        o.env = &faulty;
        auto r = ApplyPlan(*cat_, p, o);
        if (!faulty.fired()) {
          ASSERT_TRUE(r.ok()) << r.status().ToString();
          ASSERT_TRUE(r->complete);
          steps = k;
        } else {
          ASSERT_FALSE(r.ok() && r->complete && !after) << "an injected failure went unnoticed";
        }
        FaultEnv clean(-1, false, tree);
        o.env = &clean;
        auto pending = PendingOperations(*cat_, &clean);
        ASSERT_TRUE(pending.ok()) << pending.status().ToString();
        std::string op = r.ok() ? r->operation_id : "";
        if (op.empty() && JournalFiles().size() == 1) {
          op = JournalFiles()[0];
          op = op.substr(0, op.size() - std::string(".journal").size());
        }
        if (!pending->empty()) {
          auto resumed = ResumeApply(*cat_, "", o);
          ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
          ASSERT_TRUE(resumed->complete);
          op = resumed->operation_id;
        }
        if (!op.empty() && fs::exists(db_ + ".replace/journal/" + op + ".journal")) {
          auto journal = ReadJournal(clean, db_ + ".replace/journal/" + op + ".journal");
          ASSERT_TRUE(journal.ok()) << journal.status().ToString();
          if (journal->ready) {
            EXPECT_EQ(RetiredFiles(*cat_)->size(), 2u);
            auto u = Undo(*cat_, op, o);
            ASSERT_TRUE(u.ok()) << u.status().ToString();
            EXPECT_TRUE(u->complete);
          }
        }
        ASSERT_EQ(Snapshot(src_), before_);
        ASSERT_TRUE(PendingOperations(*cat_, &clean)->empty());
        ASSERT_TRUE(JournalFiles().empty());
        ASSERT_TRUE(RetiredFiles(*cat_)->empty());
        if (!faulty.fired()) break;
      }
      EXPECT_GE(steps, 16) << "every action should take several journaled steps";
    }
  }
}

TEST_F(ReplaceFixture, AFailureAtEveryStepOfUndoIsFinishedByRunningUndoAgain) {
  Plan p = MakeTestPlan();
  ASSERT_EQ(p.actions.size(), 2u);
  for (ActionKind kind : {ActionKind::kQuarantine, ActionKind::kSymlink}) {
    for (bool after : {false, true}) {
      for (int k = 0;; ++k) {
        SCOPED_TRACE(std::string(ActionKindName(kind)) + (after ? " after" : " before") + " step " +
                     std::to_string(k));
        const std::string tree = src_.string();  // the trash is "another file system"
        FaultEnv clean(-1, false, tree);
        ApplyOptions o;
        o.action = kind;
        o.env = &clean;
        auto r = ApplyPlan(*cat_, p, o);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        FaultEnv faulty(k, after, tree);
        o.env = &faulty;
        auto u = Undo(*cat_, r->operation_id, o);
        if (!faulty.fired()) {
          ASSERT_TRUE(u.ok()) << u.status().ToString();
          ASSERT_TRUE(u->complete);
        } else {
          o.env = &clean;
          auto again = Undo(*cat_, r->operation_id, o);
          if (again.ok()) {
            ASSERT_TRUE(again->complete);
          } else {
            // The failure came after the journal was consumed: nothing left to do.
            ASSERT_NE(again.status().message().find("was already undone"), std::string::npos)
                << again.status().ToString();
          }
        }
        ASSERT_EQ(Snapshot(src_), before_);
        ASSERT_TRUE(JournalFiles().empty());
        ASSERT_TRUE(RetiredFiles(*cat_)->empty());
        if (!faulty.fired()) break;
      }
    }
  }
}

TEST_F(ReplaceFixture, KillDashNineMidApplyThenResumeThenUndoRestoresTheTree) {
  Confirm("urbanisme/IMG_0311.jpg");
  const std::string plan = (tmp_ / "plan.json").string();
  auto pr = RunDoppel({"--db", db_, "plan", "-o", plan});
  ASSERT_EQ(pr.exit_code, 0) << pr.err;
  EXPECT_NE(pr.out.find("kept archives/vue_0311.tif"), std::string::npos) << pr.out;
  const std::string journal_dir = db_ + ".replace/journal";
  setenv("DOPPEL_TEST_APPLY_PAUSE_MS", "150", 1);
  int pid = testing::SpawnDoppel({"--db", db_, "apply", plan, "--action", "hardlink"});
  unsetenv("DOPPEL_TEST_APPLY_PAUSE_MS");
  // Wait until the apply is in the middle of its work (a few steps done), then
  // kill it.
  bool mid_way = false;
  for (int i = 0; i < 2000 && !mid_way; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!fs::exists(journal_dir)) continue;
    for (const auto& e : fs::directory_iterator(journal_dir)) {
      std::string text = testing::ReadFile(e.path());
      size_t steps = 0;
      for (size_t at = text.find("\"state\":\"done\""); at != std::string::npos;
           at = text.find("\"state\":\"done\"", at + 1))
        ++steps;
      mid_way |= steps >= 4;
    }
  }
  ASSERT_TRUE(mid_way) << "the apply never got going";
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_NE(Snapshot(src_), before_);  // something was done
  // A new apply is refused while one is unfinished.
  auto refused = RunDoppel({"--db", db_, "apply", plan, "--action", "hardlink"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("--resume"), std::string::npos) << refused.err;
  auto resumed = RunDoppel({"--db", db_, "apply", "--resume", "--json"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  json rj = json::parse(resumed.out);
  const std::string op = rj["operation"];
  EXPECT_EQ(rj["done"], 4);
  EXPECT_TRUE(
      fs::equivalent(src_ / "apur" / "export" / "vue.jpg", src_ / "archives" / "vue_0311.tif"));
  auto undo = RunDoppel({"--db", db_, "undo", op});
  ASSERT_EQ(undo.exit_code, 0) << undo.err;
  EXPECT_EQ(Snapshot(src_), before_);
  EXPECT_TRUE(JournalFiles().empty());  // consumed
  // The audit trail tells the story: a plan, four applied actions, four undone.
  auto audit = RunDoppel({"--db", db_, "audit", "--format", "json"});
  ASSERT_EQ(audit.exit_code, 0);
  std::map<std::string, int> types;
  for (const auto& e : json::parse(audit.out)) {
    types[e["type"]]++;
    if (e["type"] == "apply") {
      EXPECT_EQ(e["operation"], op);
      EXPECT_EQ(e["detail"]["action"], "hardlink");
      EXPECT_EQ(e["detail"]["reclaimed_bytes"], e["detail"]["bytes"]);
    }
    if (e["type"] == "undo") {
      EXPECT_EQ(e["detail"]["undoes"], op);
    }
  }
  EXPECT_EQ(types["plan"], 1);
  EXPECT_EQ(types["apply"], 4);
  EXPECT_EQ(types["undo"], 4);
  auto csv = RunDoppel({"--db", db_, "audit", "--type", "undo", "--format", "csv"});
  EXPECT_EQ(std::count(csv.out.begin(), csv.out.end(), '\n'), 5);
}

TEST_F(ReplaceFixture, ReleasesAreNumberedImmutableAndListOnlyWhatChanged) {
  const std::string plan = (tmp_ / "plan.json").string();
  ASSERT_EQ(RunDoppel({"--db", db_, "plan", "--include-unconfirmed", "-o", plan}).exit_code, 0);
  auto applied = RunDoppel({"--db", db_, "apply", plan, "--action", "quarantine",
                            "--quarantine-dir", (tmp_ / "q").string(), "--json"});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  const std::string op = json::parse(applied.out)["operation"];
  auto r1 = RunDoppel({"--db", db_, "release", "1.0", "-o", (tmp_ / "r1").string()});
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  json m1 = json::parse(testing::ReadFile(tmp_ / "r1" / "manifest.json"));
  EXPECT_EQ(m1["format"], "doppel-release");
  EXPECT_EQ(m1["version"], kReleaseVersion);
  EXPECT_EQ(m1["changes"]["retired"].size(), 4u);
  EXPECT_EQ(m1["masters"].size(), 2u);
  EXPECT_EQ(m1["totals"]["retired_files"], 4);
  const std::string csv = testing::ReadFile(tmp_ / "r1" / "redirects.csv");
  EXPECT_EQ(csv.rfind("old_path,new_path\n", 0), 0u);
  EXPECT_NE(csv.find("apur/pont copie.png,archives/pont.png"), std::string::npos) << csv;
  EXPECT_NE(csv.find("urbanisme/IMG_0311.jpg,archives/vue_0311.tif"), std::string::npos) << csv;
  EXPECT_NE(testing::ReadFile(tmp_ / "r1" / "CHANGES.md").find("4 duplicate files retired"),
            std::string::npos);
  // Releases are immutable.
  auto again = RunDoppel({"--db", db_, "release", "1.0", "-o", (tmp_ / "r1b").string()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("immutable"), std::string::npos) << again.err;
  // Undo, then release 1.1: only the restored files.
  ASSERT_EQ(RunDoppel({"--db", db_, "undo", op}).exit_code, 0);
  EXPECT_EQ(Snapshot(src_), before_);
  ASSERT_EQ(RunDoppel({"--db", db_, "release", "1.1", "-o", (tmp_ / "r2").string()}).exit_code, 0);
  json m2 = json::parse(testing::ReadFile(tmp_ / "r2" / "manifest.json"));
  EXPECT_EQ(m2["previous_release"], "1.0");
  EXPECT_EQ(m2["changes"]["retired"].size(), 0u);
  EXPECT_EQ(m2["changes"]["restored"].size(), 4u);
  EXPECT_EQ(m2["totals"]["retired_files"], 0);
  auto reopened = OpenCatalogue(db_, {});  // a fresh connection sees the CLI's commits
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->ListReleases()->size(), 2u);
  // Metadata export and XMP sidecars beside the masters (the masters' bytes
  // unchanged).
  auto md = RunDoppel({"--db", db_, "metadata", "--format", "json", "--write-xmp"});
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_EQ(json::parse(md.out).size(), 2u);
  EXPECT_TRUE(fs::exists(src_ / "archives" / "vue_0311.tif.xmp"));
  EXPECT_EQ(Snapshot(src_)["archives/vue_0311.tif"], before_["archives/vue_0311.tif"]);
}

// redirects.csv as rows old_path -> new_path (the fixture's names hold no
// comma or quote).
std::map<std::string, std::string> Redirects(const fs::path& release_dir) {
  std::map<std::string, std::string> out;
  std::istringstream in(testing::ReadFile(release_dir / "redirects.csv"));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    const size_t comma = line.find(',');
    out[line.substr(0, comma)] = line.substr(comma + 1);
  }
  return out;
}

TEST_F(ReplaceFixture, EveryPublishedRedirectIsOneHopToALiveFileAcrossThreeReleases) {
  // Release 1.0: the Archives' copy is left out by a reviewer, so APUR's copy
  // is retired in favour of Urbanisme's.
  ReviewDecision leave_out;
  leave_out.cluster_id = ClusterOf("archives/pont.png");
  leave_out.file_id = Id("archives/pont.png");
  leave_out.decision = "reject";
  leave_out.reviewer = "claire";
  ASSERT_TRUE(cat_->RecordDecision(leave_out).ok());
  ApplyOptions o;
  o.action = ActionKind::kQuarantine;
  o.quarantine_dir = (tmp_ / "q").string();
  Plan p1 = MakeTestPlan();
  ASSERT_EQ(p1.actions.size(), 1u);
  ASSERT_EQ(p1.actions[0].master_path, "pont.png");
  ASSERT_EQ(p1.actions[0].master_source, "urbanisme");
  ASSERT_TRUE(ApplyPlan(*cat_, p1, o).ok());
  auto r1 = MakeRelease(*cat_, "1.0");
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();

  // Release 1.1: the reviewer takes the Archives' copy back; Urbanisme's,
  // the target of 1.0's redirect, is retired in its favour.
  ReviewDecision back = leave_out;
  back.decision = "confirm";
  ASSERT_TRUE(cat_->RecordDecision(back).ok());
  Plan p2 = MakeTestPlan();
  ASSERT_EQ(p2.actions.size(), 1u);
  ASSERT_EQ(p2.actions[0].source + "/" + p2.actions[0].path, "urbanisme/pont.png");
  auto op2 = ApplyPlan(*cat_, p2, o);
  ASSERT_TRUE(op2.ok()) << op2.status().ToString();
  auto r2 = MakeRelease(*cat_, "1.1");
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(r2->repointed, 1);

  // Release 1.2: the second operation is undone; Urbanisme's copy is live
  // again and its redirect is withdrawn.
  auto undone = Undo(*cat_, op2->operation_id, o);
  ASSERT_TRUE(undone.ok() && undone->complete) << undone.status().ToString();
  auto r3 = MakeRelease(*cat_, "1.2");
  ASSERT_TRUE(r3.ok()) << r3.status().ToString();
  EXPECT_EQ(r3->repointed, 1);
  EXPECT_EQ(r3->restored, 1);

  std::set<std::string> published;
  int n = 0;
  for (const ReleaseFiles* r : {&*r1, &*r2, &*r3}) {
    SCOPED_TRACE("release " + r->version);
    const fs::path dir = tmp_ / ("r" + std::to_string(++n));
    fs::create_directories(dir);
    testing::WriteFile(dir / "redirects.csv", r->redirects_csv);
    std::map<std::string, std::string> rows = Redirects(dir);
    for (const auto& [from, to] : rows) {
      published.insert(from);
      EXPECT_FALSE(rows.count(to)) << from << " -> " << to << " is a redirect to a retired path";
      EXPECT_TRUE(fs::is_regular_file(src_ / to)) << from << " -> " << to << " is not a live file";
    }
  }
  // 1.0 and 1.1 as an archivist reads them.
  EXPECT_EQ(r1->redirects_csv, "old_path,new_path\napur/pont copie.png,urbanisme/pont.png\n");
  EXPECT_EQ(r2->redirects_csv,
            "old_path,new_path\napur/pont copie.png,archives/pont.png\n"
            "urbanisme/pont.png,archives/pont.png\n");
  EXPECT_NE(r2->changes_md.find("## Repointed redirects"), std::string::npos) << r2->changes_md;
  EXPECT_NE(r2->changes_md.find("| apur/pont copie.png | urbanisme/pont.png | archives/pont.png |"),
            std::string::npos)
      << r2->changes_md;
  // After the undo: the restored file has no redirect; the one still
  // retired points at the live copy it was retired for.
  EXPECT_EQ(r3->redirects_csv, "old_path,new_path\napur/pont copie.png,urbanisme/pont.png\n");
  EXPECT_NE(r3->changes_md.find("| apur/pont copie.png | archives/pont.png | urbanisme/pont.png |"),
            std::string::npos)
      << r3->changes_md;
  json m3 = json::parse(r3->manifest_json);
  EXPECT_EQ(m3["changes"]["repointed"].size(), 1u);
  EXPECT_EQ(m3["masters"].size(), 1u);
  EXPECT_EQ(m3["masters"][0]["path"], "pont.png");
  EXPECT_EQ(m3["masters"][0]["source"], "urbanisme");
  EXPECT_EQ(published.size(), 2u);
}

// ---------------------------------------------------------------- trash

// A catalogue and tree to return to: the trash tests retire files for good.
class TrashFixture : public ReplaceFixture {
 protected:
  void SetUp() override {
    ReplaceFixture::SetUp();
    if (HasFatalFailure()) return;
    plan_ = MakeTestPlan();  // the two exact copies of pont.png
    ASSERT_EQ(plan_.actions.size(), 2u);
    cat_.reset();
    for (const char* ext : {"", "-wal", "-shm"})
      if (fs::exists(db_ + ext)) fs::copy_file(db_ + ext, (tmp_ / "saved.db").string() + ext);
    Reopen();
  }

  // Back to the state right after the plan: catalogue, tree, no state folder.
  void Restore() {
    cat_.reset();
    for (const char* ext : {"", "-wal", "-shm"}) {
      fs::remove(db_ + ext);
      if (fs::exists((tmp_ / "saved.db").string() + ext))
        fs::copy_file((tmp_ / "saved.db").string() + ext, db_ + ext);
    }
    fs::remove_all(db_ + ".replace");
    for (const char* copy : {"urbanisme/pont.png", "apur/pont copie.png"})
      if (!fs::exists(src_ / copy)) testing::CopyFile(src_ / "archives" / "pont.png", src_ / copy);
    Reopen();
  }

  void Reopen() {
    auto cat = OpenCatalogue(db_, {});
    ASSERT_TRUE(cat.ok()) << cat.status().ToString();
    cat_ = std::move(*cat);
  }

  // Applies the plan with `delete` (the retired bytes go to the trash);
  // returns the operation and the Unix time it began.
  std::pair<std::string, int64_t> Delete() {
    ApplyOptions o;
    o.action = ActionKind::kDelete;
    const int64_t t = int64_t(std::time(nullptr));
    auto r = ApplyPlan(*cat_, plan_, o);
    EXPECT_TRUE(r.ok() && r->complete) << r.status().ToString();
    return {r.ok() ? r->operation_id : "", t};
  }

  std::vector<std::string> TrashFiles() {
    std::vector<std::string> out;
    const fs::path dir = db_ + ".replace/trash";
    if (fs::exists(dir))
      for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) out.push_back(e.path().string());
    return out;
  }

  Plan plan_;
};

TEST_F(TrashFixture, PurgeRespectsTheHoldPeriodThenUndoSaysWhatCannotBeRestored) {
  auto [op, t] = Delete();
  ASSERT_EQ(TrashFiles().size(), 2u);
  PurgeOptions po;
  po.older_than_days = 1;
  po.hold_days = 30;
  po.now_unix = t + 5 * 24 * 3600;  // five days later: inside the hold period
  auto held = PurgeTrash(*cat_, po);
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  EXPECT_EQ(held->files, 0);
  ASSERT_EQ(held->held.size(), 1u);
  EXPECT_NE(held->held[0].find(op + ": applied 5 days ago, inside the 30-day hold period"),
            std::string::npos)
      << held->held[0];
  EXPECT_EQ(TrashFiles().size(), 2u);
  // Not old enough for --older-than: neither purged nor reported.
  po.older_than_days = 40;
  po.now_unix = t + 35 * 24 * 3600;
  auto young = PurgeTrash(*cat_, po);
  ASSERT_TRUE(young.ok());
  EXPECT_EQ(young->files, 0);
  EXPECT_TRUE(young->held.empty());
  // Old enough for both.
  po.now_unix = t + 41 * 24 * 3600;
  auto purged = PurgeTrash(*cat_, po);
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(purged->files, 2);
  EXPECT_GT(purged->bytes, 0);
  EXPECT_TRUE(TrashFiles().empty());
  EventFilter f;
  f.type = "purge";
  EXPECT_EQ(cat_->ListEvents(f)->size(), 2u);
  // Purging again finds nothing to do.
  auto again = PurgeTrash(*cat_, po);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->files, 0);
  // Undo refuses, names what is gone, and changes nothing.
  const auto before_undo = Snapshot(src_);
  ApplyOptions o;
  auto u = Undo(*cat_, op, o);
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().message().find("2 retired files can no longer be restored"),
            std::string::npos)
      << u.status().message();
  EXPECT_NE(u.status().message().find("apur/pont copie.png"), std::string::npos);
  EXPECT_NE(u.status().message().find("urbanisme/pont.png"), std::string::npos);
  EXPECT_EQ(Snapshot(src_), before_undo);
  EXPECT_EQ(RetiredFiles(*cat_)->size(), 2u);
}

TEST_F(TrashFixture, AFailureAtEveryStepOfPurgeIsFinishedByPurgingAgain) {
  int steps = 0;
  for (bool after : {false, true}) {
    for (int k = 0;; ++k) {
      SCOPED_TRACE(std::string(after ? "after" : "before") + " step " + std::to_string(k));
      Restore();
      auto [op, t] = Delete();
      PurgeOptions po;
      po.older_than_days = 30;
      po.hold_days = 30;
      po.now_unix = t + 31 * 24 * 3600;
      FaultEnv faulty(k, after, "");
      po.env = &faulty;
      auto r = PurgeTrash(*cat_, po);
      if (!faulty.fired()) {
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        steps = k;
      } else if (r.ok()) {
        // Only the removal of the emptied trash folders is best effort (as
        // after an undo): the purge itself is complete and checked below.
        ASSERT_EQ(r->files, 2);
      } else {
        // Undo never runs on a half-purged operation.
        ApplyOptions o;
        auto u = Undo(*cat_, op, o);
        if (!u.ok() &&
            u.status().message().find("can no longer be restored") != std::string::npos) {
          // Refused before touching anything; purging again finishes the job.
        } else {
          // The failure came before the purge began: the trash is whole and
          // undo works; start the case over.
          ASSERT_TRUE(u.ok() && u->complete) << u.status().ToString();
          continue;
        }
        FaultEnv clean(-1, false, "");
        po.env = &clean;
        auto again = PurgeTrash(*cat_, po);
        ASSERT_TRUE(again.ok()) << again.status().ToString();
      }
      EXPECT_TRUE(TrashFiles().empty());
      EventFilter f;
      f.type = "purge";
      auto events = cat_->ListEvents(f);
      ASSERT_TRUE(events.ok());
      EXPECT_EQ(events->size(), 2u) << "each purged file is audited exactly once";
      auto u = Undo(*cat_, op, ApplyOptions{});
      ASSERT_FALSE(u.ok());
      EXPECT_NE(u.status().message().find("2 retired files can no longer be restored"),
                std::string::npos)
          << u.status().message();
      if (!faulty.fired()) break;
    }
  }
  EXPECT_GE(steps, 6) << "a purge should take several journaled steps";
}

TEST(ReplaceCli, CommandsHaveHelpWithExamples) {
  for (const char* cmd : {"plan", "apply", "undo", "audit", "metadata", "release", "trash"}) {
    auto r = RunDoppel({cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("Example"), std::string::npos) << cmd;
  }
}

}  // namespace
}  // namespace doppel

namespace doppel {
namespace {

TEST(ReplaceJournal, TornTailIsIgnoredDamageInTheMiddleIsCorruption) {
  TempDir tmp;
  const std::string path = (tmp / "op.journal").string();
  Env& env = *Env::Default();
  const std::string begin =
      JournalLine({{"type", "begin"}, {"journal_version", 1}, {"action", "delete"}});
  const std::string ready = JournalLine({{"type", "ready"}, {"actions", 0}});
  const std::string commit = JournalLine({{"type", "commit"}});
  testing::WriteFile(path, begin + ready + commit.substr(0, commit.size() / 2));
  auto torn = ReadJournal(env, path);
  ASSERT_TRUE(torn.ok()) << torn.status().ToString();
  EXPECT_TRUE(torn->ready);
  EXPECT_FALSE(torn->committed);
  EXPECT_TRUE(torn->torn_tail);
  ASSERT_TRUE(RepairJournal(env, path, *torn).ok());
  EXPECT_EQ(testing::ReadFile(path), begin + ready);
  // A flipped byte in a record followed by intact ones: the journal cannot be
  // trusted.
  std::string damaged = begin + ready + commit;
  damaged[begin.size() + 12] ^= 1;
  testing::WriteFile(path, damaged);
  auto bad = ReadJournal(env, path);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find("record 2 is damaged"), std::string::npos)
      << bad.status().message();
  // A journal from a newer doppel is refused.
  testing::WriteFile(path, JournalLine({{"type", "begin"}, {"journal_version", 7}}));
  auto newer = ReadJournal(env, path);
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("upgrade doppel"), std::string::npos);
}

}  // namespace
}  // namespace doppel
