// Hostile input at the command line: file names and metadata written by
// uploaders that a spreadsheet would run as formulas, a symbolic link planted
// where a sidecar goes, a catalogue the user may not write, an empty one.
// Real images, a real scan, a real SQLite file, the real binary.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <exiv2/exiv2.hpp>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "doppel/catalogue.h"
#include "doppel/policy.h"
#include "doppel/replace.h"
#include "test_util.h"
#include "util/csv.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::MakeImage;
using testing::RunDoppel;
using testing::TempDir;

// ---------------------------------------------------------------- the CSV writer

TEST(CsvWriter, NeutralisesFormulasButNotNumbersOrHashes) {
  EXPECT_EQ(CsvCell("=1+2"), "'=1+2");
  EXPECT_EQ(CsvCell("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(CsvCell("+cmd"), "'+cmd");
  EXPECT_EQ(CsvCell("-A1"), "'-A1");
  EXPECT_EQ(CsvCell("\tx"), "'\tx");
  EXPECT_EQ(CsvCell("\rx"), "\"'\rx\"");
  EXPECT_EQ(CsvCell("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
  // Numbers a spreadsheet only displays, and hex digests, are never touched.
  for (const char* kept : {"-3", "+1.5", "-0.25", "42", "", "-",
                           "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"})
    EXPECT_EQ(CsvCell(kept), kept) << kept;
  // Raw mode: RFC 4180 quoting only.
  EXPECT_EQ(CsvCell("=1+2", CsvMode::kRaw), "=1+2");
  EXPECT_EQ(CsvCell("a,b", CsvMode::kRaw), "\"a,b\"");
  EXPECT_EQ(CsvLine({"=x", "-2", "a\"b"}), "'=x,-2,\"a\"\"b\"\n");
  EXPECT_EQ(SplitCsvLine(CsvLine({"=x,y", "-A1"})), (std::vector<std::string>{"'=x,y", "'-A1"}));
}

// True when a spreadsheet opening the cell would evaluate it.
bool Dangerous(const std::string& cell) {
  if (cell.empty() || std::string("=+-@\t\r").find(cell[0]) == std::string::npos) return false;
  if (cell.size() > 1 && cell.find_first_not_of("0123456789.", 1) == std::string::npos)
    return false;
  return true;
}

// Every cell of a CSV text that a spreadsheet would run.
std::vector<std::string> DangerousCells(const std::string& csv) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < csv.size()) {
    size_t end = csv.find('\n', start);
    if (end == std::string::npos) end = csv.size();
    for (const std::string& c : SplitCsvLine(csv.substr(start, end - start)))
      if (Dangerous(c)) out.push_back(c);
    start = end + 1;
  }
  return out;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "[" + x + "] ";
  return s;
}

void SetArtistAndTitle(const fs::path& p, const std::string& artist, const std::string& title) {
  static bool init = [] {
    Exiv2::XmpParser::initialize();
    return true;
  }();
  (void)init;
  auto img = Exiv2::ImageFactory::open(p.string());
  img->readMetadata();
  img->exifData()["Exif.Image.Artist"] = artist;
  img->xmpData()["Xmp.dc.title"] = "lang=\"x-default\" " + title;
  img->writeMetadata();
}

// Two departments holding byte-identical copies (exact clusters, planned
// without review). The uploader chose the file names, the department name
// "-A1" and the EXIF artist / XMP title: each is a formula.
class HostileArchive : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = (tmp_ / "c.db").string();
    const fs::path a = tmp_ / "a", b = tmp_ / "-A1";
    MakeImage(a / kFormulaName, 320, 240, 41);
    MakeImage(a / "meta.jpg", 320, 240, 42, "[Q=90]");
    SetArtistAndTitle(a / "meta.jpg", "=1+2", "+SUM(1;2)");
    testing::CopyFile(a / kFormulaName, b / "@copy.png");
    testing::CopyFile(a / "meta.jpg", b / "meta.jpg");
    ASSERT_EQ(RunDoppel({"--db", db_, "init"}).exit_code, 0);
    auto add_a = RunDoppel({"--db", db_, "source", "add", "a", a.string(), "--priority", "2"});
    ASSERT_EQ(add_a.exit_code, 0) << add_a.err;
    auto add_b = RunDoppel({"--db", db_, "source", "add", "--", "-A1", b.string()});
    ASSERT_EQ(add_b.exit_code, 0) << add_b.err;
    auto scan = RunDoppel({"--db", db_, "scan"});
    ASSERT_EQ(scan.exit_code, 0) << scan.err;
    auto match = RunDoppel({"--db", db_, "match", "--no-geometry"});
    ASSERT_EQ(match.exit_code, 0) << match.err;
    plan_ = (tmp_ / "plan.json").string();
    auto plan = RunDoppel({"--db", db_, "plan", "-o", plan_});
    ASSERT_EQ(plan.exit_code, 0) << plan.err;
  }

  static constexpr const char* kFormulaName = "=HYPERLINK(\"http://evil.invalid\",\"open\").png";
  TempDir tmp_;
  std::string db_, plan_;
};

TEST_F(HostileArchive, NoCsvOutputRunsAFormulaUnlessRawIsAsked) {
  const std::vector<std::vector<std::string>> commands = {{"files", "--format", "csv"},
                                                          {"exact", "--format", "csv"},
                                                          {"clusters", "--format", "csv"},
                                                          {"pairs"},
                                                          {"metadata"},
                                                          {"audit", "--format", "csv"}};
  for (const auto& cmd : commands) {
    std::vector<std::string> args = {"--db", db_};
    args.insert(args.end(), cmd.begin(), cmd.end());
    auto r = RunDoppel(args);
    ASSERT_EQ(r.exit_code, 0) << cmd[0] << ": " << r.err;
    EXPECT_EQ(DangerousCells(r.out), std::vector<std::string>{})
        << cmd[0] << ": " << Joined(DangerousCells(r.out)) << "\n"
        << r.out;
  }
  // The values are all there, behind an apostrophe.
  auto files = RunDoppel({"--db", db_, "files", "--format", "csv"});
  EXPECT_NE(files.out.find("'-A1,'@copy.png"), std::string::npos) << files.out;
  auto md = RunDoppel({"--db", db_, "metadata"});
  EXPECT_NE(md.out.find(",'=1+2,"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find(",'+SUM(1;2),"), std::string::npos) << md.out;
  // --csv-raw: cells exactly as stored, for programs.
  auto raw = RunDoppel({"--db", db_, "--csv-raw", "files", "--format", "csv"});
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  EXPECT_NE(raw.out.find(",-A1,@copy.png,"), std::string::npos) << raw.out;

  // redirects.csv of a release.
  auto apply = RunDoppel({"--db", db_, "apply", plan_, "--action", "redirect-only"});
  ASSERT_EQ(apply.exit_code, 0) << apply.err;
  auto rel = RunDoppel({"--db", db_, "release", "1.0", "-o", (tmp_ / "rel").string()});
  ASSERT_EQ(rel.exit_code, 0) << rel.err;
  const std::string redirects = testing::ReadFile(tmp_ / "rel" / "redirects.csv");
  EXPECT_NE(redirects.find("'-A1/@copy.png,"), std::string::npos) << redirects;
  EXPECT_EQ(DangerousCells(redirects), std::vector<std::string>{}) << redirects;
}

TEST(HostileHashes, HashAndMatchHashesKeepThePdqFormatAndNeutraliseNames) {
  TempDir tmp;
  const std::string name = "=cmd|'/c calc'!A0.png";
  MakeImage(tmp / name, 320, 240, 7);
  auto hashed = RunDoppel({"hash", name}, tmp.str());
  ASSERT_EQ(hashed.exit_code, 0) << hashed.err;
  // HEX,QUALITY as the reference tool prints them; the name behind a '.
  ASSERT_GT(hashed.out.size(), 66u);
  const std::string hex = hashed.out.substr(0, 64);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << hashed.out;
  EXPECT_NE(hashed.out.find(",'=cmd|'/c calc'!A0.png\n"), std::string::npos) << hashed.out;
  auto raw = RunDoppel({"--csv-raw", "hash", name}, tmp.str());
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  EXPECT_EQ(raw.out, hashed.out.substr(0, hashed.out.find(",'")) + "," + name + "\n");

  // match-hashes: ids from the list are cells; numbers stay numbers.
  testing::WriteFile(tmp / "hashes.txt", hex + ",=HYPERLINK(1)\n" + hex + ",-5\n" + hex + ",@x\n");
  auto pairs = RunDoppel({"match-hashes", (tmp / "hashes.txt").string()});
  ASSERT_EQ(pairs.exit_code, 0) << pairs.err;
  EXPECT_EQ(pairs.out, "'=HYPERLINK(1),-5,0\n'=HYPERLINK(1),'@x,0\n-5,'@x,0\n");
  auto raw_pairs = RunDoppel({"--csv-raw", "match-hashes", (tmp / "hashes.txt").string()});
  EXPECT_EQ(raw_pairs.out, "=HYPERLINK(1),-5,0\n=HYPERLINK(1),@x,0\n-5,@x,0\n");
}

// ---------------------------------------------------------------- XMP sidecars

TEST_F(HostileArchive, SidecarsNeverFollowALinkAndAreInTheAuditTrail) {
  // A dangling link where the master's sidecar goes, pointing out of the archive.
  const fs::path outside = tmp_ / "outside" / "planted.xmp";
  fs::create_directories(outside.parent_path());
  const fs::path sidecar = tmp_ / "a" / "meta.jpg.xmp";
  fs::create_symlink(outside, sidecar);
  auto r = RunDoppel({"--db", db_, "metadata", "--write-xmp"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(outside)) << "the sidecar was written through the link";
  EXPECT_TRUE(fs::is_symlink(sidecar));
  // The other master's sidecar was written, and both outcomes are recorded.
  const fs::path other = tmp_ / "a" / kFormulaName;
  EXPECT_NE(testing::ReadFile(other.string() + ".xmp").find("xmlns:doppel="), std::string::npos);
  auto audit = RunDoppel({"--db", db_, "audit", "--type", "sidecar", "--format", "json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  json ev = json::parse(audit.out);
  ASSERT_EQ(ev.size(), 2u) << audit.out;
  std::multiset<std::string> outcomes;
  for (const auto& e : ev) outcomes.insert(e["outcome"].get<std::string>());
  EXPECT_EQ(outcomes, (std::multiset<std::string>{"failure", "success"})) << audit.out;
  // No temporary file is left beside the masters.
  for (const auto& e : fs::directory_iterator(tmp_ / "a"))
    EXPECT_EQ(e.path().filename().string().find(".doppel-tmp-"), std::string::npos) << e.path();
}

// An Env whose new files fail at one step: half the bytes then an error
// (a full disk mid-write), or the fsync, the close, or the rename.
class FailingWriteEnv : public EnvWrapper {
 public:
  enum class Fail { kAppend, kSync, kClose, kRename };
  explicit FailingWriteEnv(Fail f) : fail_(f) {}

  Status Rename(const std::string& a, const std::string& b) override {
    if (fail_ == Fail::kRename) return IOError(a + ": injected rename failure");
    return target()->Rename(a, b);
  }

  class File : public WritableFile {
   public:
    File(std::unique_ptr<WritableFile> f, Fail fail) : f_(std::move(f)), fail_(fail) {}
    Status Append(const std::string& bytes) override {
      if (fail_ != Fail::kAppend) return f_->Append(bytes);
      (void)f_->Append(bytes.substr(0, bytes.size() / 2));
      return DiskFull("injected: no space left after " + std::to_string(bytes.size() / 2) +
                      " bytes");
    }
    Status Sync() override {
      return fail_ == Fail::kSync ? IOError("injected fsync failure") : f_->Sync();
    }
    Status Close() override {
      Status s = f_->Close();
      return fail_ == Fail::kClose ? IOError("injected close failure") : s;
    }

   private:
    std::unique_ptr<WritableFile> f_;
    Fail fail_;
  };
  Result<std::unique_ptr<WritableFile>> NewExclusiveFile(const std::string& p) override {
    DOPPEL_ASSIGN_OR_RETURN(auto f, target()->NewExclusiveFile(p));
    return std::unique_ptr<WritableFile>(new File(std::move(f), fail_));
  }

 private:
  Fail fail_;
};

TEST(Sidecar, AFailureAtAnyStepLeavesTheOldSidecarAndNoTemporaryFile) {
  TempDir tmp;
  const fs::path dir = tmp / "archives";
  MakeImage(dir / "vue.tif", 64, 48, 3);
  const std::string db = (tmp / "c.db").string();
  CatalogueOptions o;
  o.create_if_missing = true;
  auto cat = OpenCatalogue(db, o);
  ASSERT_TRUE(cat.ok()) << cat.status().ToString();
  ASSERT_TRUE((*cat)->AddSource("archives", dir.string(), 1).ok());
  ConsolidatedMetadata m;
  m.cluster_id = 7;
  m.master_file_id = 12;
  m.held_by.push_back({12, "archives", "vue.tif", true});
  m.fields["title"].value = std::string(20000, 'x');  // large enough to be cut in the middle
  const std::string old =
      "<x:xmpmeta xmlns:doppel=\"old\">the sidecar of the last plan</x:xmpmeta>\n";
  testing::WriteFile(dir / "vue.tif.xmp", old);
  auto listing = [&] {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
    return names;
  };
  const std::set<std::string> before = listing();
  using F = FailingWriteEnv::Fail;
  for (F f : {F::kAppend, F::kSync, F::kClose, F::kRename}) {
    FailingWriteEnv env(f);
    auto r = WriteXmpSidecar(**cat, m, &env);
    ASSERT_FALSE(r.ok()) << int(f);
    EXPECT_NE(r.status().message().find("left as it was"), std::string::npos)
        << r.status().message();
    EXPECT_EQ(testing::ReadFile(dir / "vue.tif.xmp"), old) << int(f);
    EXPECT_EQ(listing(), before) << int(f);
  }
  // Then with the real file system: replaced whole, and recorded.
  auto ok = WriteXmpSidecar(**cat, m);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(testing::ReadFile(*ok), ConsolidatedToXmp(m));
  EXPECT_EQ(listing(), before);
  EventFilter ef;
  ef.type = "sidecar";
  auto events = (*cat)->ListEvents(ef);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 5u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ((*events)[i].outcome, "failure");
  EXPECT_EQ(events->back().outcome, "success");
  EXPECT_EQ(events->back().object, "file:12");
  EXPECT_NE(events->back().detail.find("\"sha256\""), std::string::npos) << events->back().detail;
}

// ---------------------------------------------------------------- opening the catalogue

TEST(HostileCatalogue, ReadCommandsWorkOnAReadOnlyCatalogueAndWritesSayWhy) {
  TempDir tmp;
  const std::string db = (tmp / "c.db").string();
  fs::create_directories(tmp / "photos");
  ASSERT_EQ(RunDoppel({"--db", db, "init"}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db, "source", "add", "apur", (tmp / "photos").string()}).exit_code,
            0);
  // Owned by root, readable by all: another user may read but not write it,
  // nor create files beside it.
  fs::permissions(tmp.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(db, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                          fs::perms::others_read);
  const int nobody = 65534;
  for (const std::vector<std::string>& cmd : {std::vector<std::string>{"stats"},
                                              {"source", "list"},
                                              {"files", "--format", "csv"},
                                              {"audit"}}) {
    std::vector<std::string> args = {"--db", db};
    args.insert(args.end(), cmd.begin(), cmd.end());
    auto r = RunDoppel(args, "", nobody);
    EXPECT_EQ(r.exit_code, 0) << cmd[0] << ": " << r.err;
    EXPECT_EQ(r.err.find("readonly"), std::string::npos) << cmd[0] << ": " << r.err;
  }
  auto stats = RunDoppel({"--db", db, "stats"}, "", nobody);
  EXPECT_NE(stats.out.find("apur"), std::string::npos) << stats.out;
  auto write =
      RunDoppel({"--db", db, "source", "add", "urb", (tmp / "photos").string()}, "", nobody);
  EXPECT_EQ(write.exit_code, 1);
  EXPECT_NE(write.err.find("read-only for this user"), std::string::npos) << write.err;
}

TEST(HostileCatalogue, OnlyInitCreatesACatalogue) {
  TempDir tmp;
  const std::string db = (tmp / "empty.db").string();
  testing::WriteFile(db, "");
  for (const std::vector<std::string>& cmd : {std::vector<std::string>{"stats"},
                                              {"source", "add", "x", tmp.str()},
                                              {"scan"},
                                              {"files"}}) {
    std::vector<std::string> args = {"--db", db};
    args.insert(args.end(), cmd.begin(), cmd.end());
    auto r = RunDoppel(args);
    EXPECT_EQ(r.exit_code, 1) << cmd[0] << ": " << r.out;
    EXPECT_NE(r.err.find("no catalogue at " + db + "; create it with `doppel init`"),
              std::string::npos)
        << cmd[0] << ": " << r.err;
    EXPECT_EQ(fs::file_size(db), 0u) << cmd[0] << " initialised the empty file";
  }
  const std::string absent = (tmp / "absent.db").string();
  auto missing = RunDoppel({"--db", absent, "stats"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no catalogue at " + absent), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(absent));
  EXPECT_EQ(RunDoppel({"--db", db, "init"}).exit_code, 0);
  EXPECT_EQ(RunDoppel({"--db", db, "stats"}).exit_code, 0);
}

}  // namespace
}  // namespace doppel
