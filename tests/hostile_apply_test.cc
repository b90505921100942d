// Hostile input to the destructive path (issue 15): edited plan files, a
// temporary link removed between a crash and the resume, malformed plans.
// Real images, a real scan, a real SQLite catalogue, the real file system.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "doppel/catalogue.h"
#include "doppel/replace.h"
#include "test_util.h"
#include "util/sha256.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::MakeImage;
using testing::RunDoppel;
using testing::TempDir;

// Every entry under dir (files and symlinks, not folders): SHA-256 of the bytes
// (or of the link's target) and the mtime; the catalogue's database is left out.
std::map<std::string, std::string> Tree(const fs::path& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_directory() && !e.is_symlink()) continue;
    struct stat st {};
    lstat(e.path().c_str(), &st);
    const bool link = S_ISLNK(st.st_mode);
    const std::string bytes =
        link ? "-> " + fs::read_symlink(e.path()).string() : testing::ReadFile(e.path());
    const std::string rel = e.path().lexically_relative(dir).string();
    // The catalogue's own files change when it is read; its lock is made by
    // every apply.
    if ((rel.rfind("c.db", 0) == 0 && rel.rfind("c.db.replace/", 0) != 0) ||
        rel == "c.db.replace/lock")
      continue;
    out[rel] = DigestHex(Sha256::Of(bytes.data(), bytes.size())) + " " +
               std::to_string(int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
  }
  return out;
}

// Three Sources holding one picture: the Archives' original and two exact
// copies, which a plan retires without review.
class HostileApply : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = tmp_.path() / "src";
    db_ = (tmp_ / "c.db").string();
    MakeImage(src_ / "archives" / "pont.png", 320, 240, 12);
    MakeImage(src_ / "archives" / "other.png", 320, 240, 13);
    testing::CopyFile(src_ / "archives" / "pont.png", src_ / "urbanisme" / "sub" / "pont.png");
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
    auto plan = MakePlan(*cat_, PlanOptions{});
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
    ASSERT_EQ(plan_.actions.size(), 2u);
    ASSERT_EQ(plan_.actions[0].master_path, "pont.png");
    // A byte-identical copy outside every Source: what an edited plan aims at.
    testing::CopyFile(src_ / "archives" / "pont.png", tmp_ / "outside" / "victim.png");
    before_ = Tree(tmp_.path());
  }

  std::vector<std::string> Journals() {
    std::vector<std::string> out;
    const fs::path dir = db_ + ".replace/journal";
    if (fs::exists(dir))
      for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename());
    return out;
  }

  // The action retiring this Source's copy.
  PlannedAction& ActionOf(Plan& p, const std::string& source) {
    for (PlannedAction& a : p.actions)
      if (a.source == source) return a;
    throw std::runtime_error("no action for " + source);
  }

  TempDir tmp_;
  fs::path src_;
  std::string db_;
  std::unique_ptr<Catalogue> cat_;
  Plan plan_;
  std::map<std::string, std::string> before_;
};

// ---------------------------------------------------------------- 1. paths

TEST_F(HostileApply, EditedPlanPathsAreRefusedBeforeAnyWrite) {
  const std::string victim = (tmp_ / "outside" / "victim.png").string();
  struct Case {
    std::string name;
    ActionKind kind;
    std::function<void(Plan&)> edit;
  };
  const std::vector<Case> cases = {
      // SHA-256 checks alone let these through: the victim has the same bytes.
      {"a file outside every Source", ActionKind::kQuarantine,
       [&](Plan& p) { ActionOf(p, "apur").abs_path = victim; }},
      {"a master outside every Source", ActionKind::kHardlink,
       [&](Plan& p) { ActionOf(p, "apur").master_abs_path = victim; }},
      {"a source name that climbs out of the quarantine", ActionKind::kQuarantine,
       [&](Plan& p) { ActionOf(p, "apur").source = "../../escape"; }},
      {"a relative path that climbs out of the Source", ActionKind::kDelete,
       [&](Plan& p) { ActionOf(p, "apur").path = "../../outside/victim.png"; }},
      {"another catalogued file under this file's id", ActionKind::kDelete,
       [&](Plan& p) {
         PlannedAction& a = ActionOf(p, "apur");
         a.source = "archives";
         a.path = "other.png";
         a.abs_path = (src_ / "archives" / "other.png").string();
       }},
      {"a file that is also the master", ActionKind::kDelete, [&](Plan& p) {
         PlannedAction& a = ActionOf(p, "apur");
         PlannedAction m = a;
         std::swap(m.file_id, m.master_file_id);
         std::swap(m.source, m.master_source);
         std::swap(m.path, m.master_path);
         std::swap(m.abs_path, m.master_abs_path);
         p.actions.push_back(m);
       }}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Plan p = plan_;
    c.edit(p);
    ApplyOptions o;
    o.action = c.kind;
    o.quarantine_dir = (tmp_ / "q").string();
    auto r = ApplyPlan(*cat_, p, o);
    ASSERT_FALSE(r.ok()) << "an edited plan was applied";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("plan entry "), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("nothing was changed"), std::string::npos)
        << r.status().message();
    EXPECT_EQ(Tree(tmp_.path()), before_);  // no byte moved, no folder made, no journal
    EXPECT_TRUE(Journals().empty());
  }
  // A folder of a Source swapped for a symlink to a folder outside after the
  // scan: the plan matches the catalogue, only resolving the path shows where
  // it leads.
  fs::rename(src_ / "urbanisme" / "sub", tmp_ / "outside" / "sub");
  fs::create_directory_symlink(tmp_ / "outside" / "sub", src_ / "urbanisme" / "sub");
  const auto swapped = Tree(tmp_.path());
  ApplyOptions o;
  o.action = ActionKind::kQuarantine;
  auto r = ApplyPlan(*cat_, plan_, o);
  ASSERT_FALSE(r.ok()) << "a file outside the Sources was quarantined through a symlink";
  EXPECT_NE(r.status().message().find("outside its Source urbanisme"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(Tree(tmp_.path()), swapped);
  EXPECT_TRUE(Journals().empty());
  fs::remove(src_ / "urbanisme" / "sub");
  fs::rename(tmp_ / "outside" / "sub", src_ / "urbanisme" / "sub");
  // Through the command line: an edited plan file is refused, the error names
  // the entry, and the genuine plan still applies.
  json j = json::parse(PlanToJson(plan_));
  for (auto& a : j["actions"])
    if (a["source"] == "apur") a["abs_path"] = victim;
  const std::string edited = (tmp_ / "edited.json").string();
  testing::WriteFile(edited, j.dump(2));
  before_ = Tree(tmp_.path());
  auto cli = RunDoppel({"--db", db_, "apply", edited, "--action", "delete"});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_NE(cli.err.find("plan entry 1 (file "), std::string::npos) << cli.err;
  EXPECT_NE(cli.err.find("nothing was changed"), std::string::npos) << cli.err;
  EXPECT_EQ(Tree(tmp_.path()), before_);
  ApplyOptions ok;
  ok.action = ActionKind::kQuarantine;
  auto good = ApplyPlan(*cat_, plan_, ok);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->applied, 2);
}

// ---------------------------------------------------------------- 2. resume

// An Env that fails its k-th mutation, before or after doing it: the apply
// stops there as if killed between a step and its journal record.
class CrashEnv : public EnvWrapper {
 public:
  CrashEnv(int fail_at, bool after) : fail_at_(fail_at), after_(after) {}
  bool fired() const { return fired_; }

  Status Rename(const std::string& a, const std::string& b) override {
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
  Status SyncDir(const std::string& d) override {
    return Mutate([&] { return target()->SyncDir(d); });
  }
  Status AppendDurably(const std::string& p, const std::string& b) override {
    return Mutate([&] { return target()->AppendDurably(p, b); });
  }
  Status WriteFileDurably(const std::string& p, const std::string& b) override {
    return Mutate([&] { return target()->WriteFileDurably(p, b); });
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

// Removes every `*.doppel-link` under dir (a clean-up script, a person);
// returns how many.
int RemoveTemporaryLinks(const fs::path& dir) {
  std::vector<fs::path> links;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".doppel-link") != std::string::npos)
      links.push_back(e.path());
  for (const fs::path& p : links) fs::remove(p);
  return int(links.size());
}

TEST_F(HostileApply, ALinkActionCrashedAtEveryStepResumesAfterItsTemporaryLinkVanished) {
  for (ActionKind kind : {ActionKind::kHardlink, ActionKind::kSymlink}) {
    for (bool after : {false, true}) {
      int removed_total = 0;
      for (int k = 0;; ++k) {
        SCOPED_TRACE(std::string(ActionKindName(kind)) + (after ? " after" : " before") +
                     " mutation " + std::to_string(k));
        CrashEnv crash(k, after);
        ApplyOptions o;
        o.action = kind;
        o.env = &crash;
        auto r = ApplyPlan(*cat_, plan_, o);
        removed_total += RemoveTemporaryLinks(src_);
        o.env = Env::Default();
        auto pending = PendingOperations(*cat_);
        ASSERT_TRUE(pending.ok()) << pending.status().ToString();
        std::string op = r.ok() ? r->operation_id : "";
        if (!pending->empty()) {
          auto resumed = ResumeApply(*cat_, "", o);
          ASSERT_TRUE(resumed.ok()) << "stuck: " << resumed.status().ToString();
          ASSERT_TRUE(resumed->complete);
          EXPECT_EQ(resumed->applied, 2);  // the master is intact: finished, not rolled back
          op = resumed->operation_id;
        }
        if (op.empty() && Journals().size() == 1) {
          op = Journals()[0];
          op.resize(op.size() - std::string(".journal").size());
        }
        if (!op.empty() && fs::exists(db_ + ".replace/journal/" + op + ".journal")) {
          // A new apply is no longer refused, and undo is allowed.
          auto u = Undo(*cat_, op, o);
          ASSERT_TRUE(u.ok()) << u.status().ToString();
          EXPECT_TRUE(u->complete);
        }
        ASSERT_EQ(Tree(tmp_.path()), before_);
        ASSERT_TRUE(Journals().empty());
        ASSERT_TRUE(RetiredFiles(*cat_)->empty());
        if (!crash.fired()) break;
      }
      EXPECT_GE(removed_total, 2) << "the crash points never left a temporary link to remove";
    }
  }
}

// Crashes at the first rename of a prepared link over its file: that file's
// bytes are then only in the trash.
class CrashBeforePutLink : public CrashEnv {
 public:
  CrashBeforePutLink() : CrashEnv(-1, false) {}
  Status Rename(const std::string& a, const std::string& b) override {
    if (a.size() > 12 && a.compare(a.size() - 12, 12, ".doppel-link") == 0)
      return IOError("injected crash before " + a);
    return CrashEnv::Rename(a, b);
  }
};

TEST_F(HostileApply, AVanishedLinkWhoseMasterChangedIsPutBackFromTheTrash) {
  CrashBeforePutLink crash;
  ApplyOptions o;
  o.action = ActionKind::kHardlink;
  o.env = &crash;
  ASSERT_FALSE(ApplyPlan(*cat_, plan_, o).ok());
  const PlannedAction& first = plan_.actions[0];
  ASSERT_FALSE(fs::exists(first.abs_path));  // its bytes are in the trash
  ASSERT_EQ(RemoveTemporaryLinks(src_), 1);
  // The master changed meanwhile: linking the file to it now would swap
  // the picture, so the resume puts the file back instead.
  const std::string original = testing::ReadFile(first.master_abs_path);
  testing::WriteFile(first.master_abs_path, "the master was edited meanwhile");
  o.env = Env::Default();
  auto resumed = ResumeApply(*cat_, "", o);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_TRUE(resumed->complete);
  EXPECT_EQ(resumed->skipped, 2);  // this one put back; the other fails its master check
  std::string messages;
  for (const auto& x : resumed->outcomes) messages += x.message + "\n";
  EXPECT_NE(messages.find("the file was put back, skipped"), std::string::npos) << messages;
  for (const PlannedAction& a : plan_.actions) {
    EXPECT_EQ(testing::ReadFile(a.abs_path), original) << a.abs_path;
    EXPECT_FALSE(fs::exists(a.abs_path + ".doppel-link"));
  }
  EXPECT_TRUE(RetiredFiles(*cat_)->empty());
  EXPECT_TRUE(PendingOperations(*cat_)->empty());
}

// ---------------------------------------------------------------- 3. plans

TEST_F(HostileApply, AMalformedPlanIsRefusedWithAnErrorNamingTheFile) {
  const std::string good = PlanToJson(plan_);
  auto edit = [&](const std::function<void(json&)>& f) {
    json j = json::parse(good);
    f(j);
    return j.dump();
  };
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"format of the wrong type", edit([](json& j) { j["format"] = 7; })},
      {"version as a string", edit([](json& j) { j["version"] = "1"; })},
      {"actions not an array", edit([](json& j) { j["actions"] = 5; })},
      {"odd hex path", edit([](json& j) {
         j["actions"][0]["path"] = {{"hex", "616"}};
       })},
      {"non-hex path", edit([](json& j) {
         j["actions"][0]["path"] = {{"hex", "zz"}};
       })},
      {"NUL byte in a path", edit([](json& j) {
         j["actions"][0]["abs_path"] = {{"hex", "2f6100"}};
       })},
      {"path climbing out", edit([](json& j) { j["actions"][0]["path"] = "a/../../x.png"; })},
      {"absolute relative path", edit([](json& j) { j["actions"][0]["path"] = "/etc/passwd"; })},
      {"source with a slash", edit([](json& j) { j["actions"][0]["source"] = "../x"; })},
      {"negative bytes", edit([](json& j) { j["actions"][0]["bytes"] = -1; })},
      {"bytes adding past int64", edit([](json& j) {
         for (auto& a : j["actions"]) a["bytes"] = int64_t(1) << 56;
         for (int i = 0; i < 200; ++i) j["actions"].push_back(j["actions"][0]);
       })},
      {"short SHA-256", edit([](json& j) { j["actions"][0]["sha256"] = "abc"; })},
      {"file its own master",
       edit([](json& j) { j["actions"][0]["master_file_id"] = j["actions"][0]["file_id"]; })},
      {"nested too deeply", std::string(5000, '[') + std::string(5000, ']')},
      {"cut short", good.substr(0, good.size() / 3)},
  };
  const fs::path file = tmp_ / "hostile-plan.json";
  for (const auto& [what, text] : bad) {
    SCOPED_TRACE(what);
    auto p = PlanFromJson(text, file.string());
    ASSERT_FALSE(p.ok()) << "accepted";
    EXPECT_EQ(p.status().message().rfind(file.string() + ": ", 0), 0u) << p.status().message();
  }
  // The command line says the same, and changes nothing.
  testing::WriteFile(file, bad[0].second);
  before_ = Tree(tmp_.path());
  auto cli = RunDoppel({"--db", db_, "apply", file.string(), "--action", "delete"});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_NE(cli.err.find("hostile-plan.json: "), std::string::npos) << cli.err;
  EXPECT_EQ(Tree(tmp_.path()), before_);
  EXPECT_TRUE(Journals().empty());
  // The genuine plan still reads.
  EXPECT_TRUE(PlanFromJson(good, file.string()).ok());
}

}  // namespace
}  // namespace doppel
