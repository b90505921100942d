// The CLI as a user meets it: help with examples, exit codes, output formats.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using testing::MakeImage;
using testing::RunDoppel;
using testing::TempDir;

// The subcommands a help text lists (CLI11's "Subcommands:" section).
std::vector<std::string> ListedSubcommands(const std::string& help) {
  std::vector<std::string> out;
  const size_t at = help.find("\nSubcommands:\n");
  if (at == std::string::npos) return out;
  std::istringstream in(help.substr(at + 14));
  for (std::string line; std::getline(in, line) && !line.empty();) {
    std::istringstream words(line);
    std::string name;
    if (words >> name) out.push_back(name);
  }
  return out;
}

// Walks the whole command tree from `doppel --help`, so a command added
// later is covered without touching this test.
TEST(Cli, EveryCommandHasHelpWithExamples) {
  std::vector<std::vector<std::string>> todo = {{}};
  size_t seen = 0;
  while (!todo.empty()) {
    std::vector<std::string> cmd = todo.back();
    todo.pop_back();
    std::vector<std::string> args = cmd;
    args.push_back("--help");
    auto r = RunDoppel(args);
    std::string name = "doppel";
    for (const auto& c : cmd) name += " " + c;
    ++seen;
    EXPECT_EQ(r.exit_code, 0) << name;
    EXPECT_NE(r.out.find("Example"), std::string::npos)
        << "no examples in the help of `" << name << "`:\n"
        << r.out;
    for (const auto& sub : ListedSubcommands(r.out)) {
      auto next = cmd;
      next.push_back(sub);
      todo.push_back(next);
    }
  }
  // The walk itself must work: the tree has well over 20 commands.
  EXPECT_GE(seen, 25u)
      << "the help walk found too few commands: is the Subcommands section parsed?";
}

TEST(Cli, ExitCodesAndMessagesNameTheProblem) {
  TempDir tmp;
  const std::string db = (tmp / "c.db").string();
  auto usage = RunDoppel({"scan", "--no-such-flag"});
  EXPECT_EQ(usage.exit_code, 2);
  auto missing = RunDoppel({"--db", db, "stats"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("doppel init"), std::string::npos) << missing.err;
  ASSERT_EQ(RunDoppel({"--db", db, "init"}).exit_code, 0);
  auto bad_dir = RunDoppel({"--db", db, "source", "add", "x", (tmp / "nope").string()});
  EXPECT_EQ(bad_dir.exit_code, 2);
  EXPECT_NE(bad_dir.err.find("does not exist"), std::string::npos);
  auto bad_name = RunDoppel({"--db", db, "source", "add", "a b", tmp.str()});
  EXPECT_EQ(bad_name.exit_code, 2);
  EXPECT_EQ(RunDoppel({"--db", db, "scan"}).exit_code, 1);  // no sources yet
  auto unknown = RunDoppel({"--db", db, "scan", "nosuch"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no source named 'nosuch'"), std::string::npos) << unknown.err;
  // Not a catalogue: refused, not overwritten.
  testing::WriteFile(tmp / "notes.db", "hello");
  auto notdb = RunDoppel({"--db", (tmp / "notes.db").string(), "stats"});
  EXPECT_EQ(notdb.exit_code, 1);
  EXPECT_EQ(testing::ReadFile(tmp / "notes.db"), "hello");
}

TEST(Cli, SourcesAreIdempotentButNamesAreUnique) {
  TempDir tmp;
  const std::string db = (tmp / "c.db").string();
  fs::create_directories(tmp / "a");
  fs::create_directories(tmp / "b");
  ASSERT_EQ(RunDoppel({"--db", db, "init"}).exit_code, 0);
  EXPECT_EQ(RunDoppel({"--db", db, "source", "add", "urb", (tmp / "a").string(), "--priority", "3"})
                .exit_code,
            0);
  EXPECT_EQ(RunDoppel({"source", "add", "urb", (tmp / "a").string(), "--priority", "3", "--db", db})
                .exit_code,
            0);
  auto clash = RunDoppel({"--db", db, "source", "add", "urb", (tmp / "b").string()});
  EXPECT_EQ(clash.exit_code, 1);
  EXPECT_NE(clash.err.find("already registered"), std::string::npos) << clash.err;
  auto list = RunDoppel({"--db", db, "source", "list", "--json"});
  auto j = nlohmann::json::parse(list.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["priority"], 3);
}

TEST(Cli, HashPrintsTheReferenceFormatAndJson) {
  TempDir tmp;
  MakeImage(tmp / "one.jpg", 640, 480, 1);
  MakeImage(tmp / "two, with comma.png", 640, 480, 2);
  testing::WriteFile(tmp / "bad.jpg", "nope");
  auto r = RunDoppel({"hash", "--jobs", "2", (tmp / "one.jpg").string(), (tmp / "bad.jpg").string(),
                      (tmp / "two, with comma.png").string()});
  EXPECT_EQ(r.exit_code, 3);
  std::regex line("^[0-9a-f]{64},[0-9]{1,3},.+$");
  std::vector<std::string> lines;
  std::stringstream ss(r.out);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_TRUE(std::regex_match(lines[0], line)) << lines[0];
  EXPECT_TRUE(lines[0].ends_with("one.jpg"));
  EXPECT_TRUE(lines[1].ends_with("two, with comma.png"));  // argument order kept
  EXPECT_NE(r.err.find("bad.jpg"), std::string::npos);

  auto js = RunDoppel({"hash", "--json", (tmp / "one.jpg").string()});
  ASSERT_EQ(js.exit_code, 0);
  auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["format"], "jpeg");
  EXPECT_EQ(j["width"], 640);
  EXPECT_EQ(j["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(j["dihedral"].size(), 7u);
  EXPECT_EQ(j["pdq"].get<std::string>().substr(0, 64), lines[0].substr(0, 64));
}

TEST(Cli, ScanStatsExactAndFilesOutputs) {
  TempDir tmp;
  const std::string db = (tmp / "c.db").string();
  MakeImage(tmp / "a" / "x.jpg", 500, 400, 1);
  MakeImage(tmp / "a" / "y.jpg", 500, 400, 2);
  testing::CopyFile(tmp / "a" / "x.jpg", tmp / "b" / "copy of x.jpg");
  testing::WriteFile(tmp / "b" / "broken.jpg", "not really");
  ASSERT_EQ(RunDoppel({"--db", db, "init"}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db, "source", "add", "a", (tmp / "a").string()}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db, "source", "add", "b", (tmp / "b").string()}).exit_code, 0);
  auto scan = RunDoppel({"--db", db, "scan", "--json"});
  EXPECT_EQ(scan.exit_code, 3) << scan.err;
  auto sj = nlohmann::json::parse(scan.out);
  EXPECT_EQ(sj["problems_total"], 1);
  EXPECT_EQ(sj["problems"][0]["path"], "broken.jpg");

  auto stats = nlohmann::json::parse(RunDoppel({"--db", db, "stats", "--json"}).out);
  EXPECT_EQ(stats["exact_duplicates"]["groups"], 1);
  EXPECT_EQ(stats["exact_duplicates"]["redundant_files"], 1);
  EXPECT_EQ(stats["errors"]["unsupported"], 1);

  auto csv = RunDoppel({"--db", db, "exact", "--format", "csv"});
  EXPECT_EQ(csv.exit_code, 0);
  EXPECT_EQ(csv.out.substr(0, csv.out.find('\n')),
            "group,kind,digest,source,path,size,format,width,height,capture_time");
  EXPECT_NE(csv.out.find(",copy of x.jpg,"), std::string::npos) << csv.out;

  auto files = RunDoppel({"--db", db, "files", "--status", "error", "--format", "json"});
  auto fj = nlohmann::json::parse(files.out);
  ASSERT_EQ(fj.size(), 1u);
  EXPECT_EQ(fj[0]["path"], "broken.jpg");
  EXPECT_EQ(fj[0]["error_kind"], "unsupported");
}

}  // namespace
}  // namespace doppel

namespace doppel {
namespace {

TEST(Cli, MatchHashesPrintsPairsWithIdsAndSkipsBadLines) {
  TempDir tmp;
  const std::string a = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22";
  std::string b = a;
  b[63] = '3';  // 1 bit away (2 -> 3)
  std::string c = a;
  for (int i = 0; i < 16; ++i) c[i] = c[i] == '0' ? 'f' : '0';  // far away
  testing::WriteFile(tmp / "list.txt", "# a comment\n" + a + ",orig\n" + c + "\nnot-a-hash\n" + b +
                                           ",copy, with comma\n");
  auto r = RunDoppel({"match-hashes", (tmp / "list.txt").string(), "--radius", "4"});
  EXPECT_EQ(r.exit_code, 3);  // one line skipped
  EXPECT_EQ(r.out, "orig,\"copy, with comma\",1\n");
  EXPECT_NE(r.err.find("list.txt:4: not a PDQ hash"), std::string::npos) << r.err;
  for (const char* method : {"mih", "brute"}) {
    auto m =
        RunDoppel({"match-hashes", (tmp / "list.txt").string(), "-r", "4", "--method", method});
    EXPECT_EQ(m.out, r.out) << method;
  }
  auto none = RunDoppel({"match-hashes", (tmp / "absent.txt").string()});
  EXPECT_EQ(none.exit_code, 1);
}

}  // namespace
}  // namespace doppel

namespace doppel {
namespace {

TEST(Cli, CalibrateReportsPrecisionAndRecallPerThreshold) {
  TempDir tmp;
  MakeImage(tmp / "a.jpg", 800, 600, 1, "[Q=95]");
  MakeImage(tmp / "a-q60.jpg", 800, 600, 1, "[Q=60]");
  MakeImage(tmp / "b.jpg", 800, 600, 2, "[Q=95]");
  testing::WriteFile(
      tmp / "labels.csv",
      "path_a,path_b,same\na.jpg,a-q60.jpg,1\n\"a.jpg\",b.jpg,0\nb.jpg,a.jpg,maybe\n");
  auto r = RunDoppel({"calibrate", "--pairs", (tmp / "labels.csv").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("labels.csv:4"), std::string::npos) << r.err;  // the bad row is named
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["pairs"], 2);
  EXPECT_EQ(j["meets_precision_goal"], true);
  const int t = j["recommended"];
  EXPECT_EQ(j["thresholds"][t]["recall"], 1.0);
  EXPECT_EQ(j["thresholds"][t]["precision"], 1.0);
  EXPECT_EQ(j["thresholds"].size(), 65u);
}

}  // namespace
}  // namespace doppel

namespace doppel {
namespace {

TEST(Cli, ExplainNamesAnUnreadableFile) {
  TempDir tmp;
  MakeImage(tmp / "a.jpg", 320, 240, 1);
  testing::WriteFile(tmp / "broken.jpg", "not an image");
  auto r = RunDoppel({"explain", (tmp / "a.jpg").string(), (tmp / "broken.jpg").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("broken.jpg"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not a recognised image"), std::string::npos) << r.err;
  auto missing = RunDoppel({"--db", (tmp / "none.db").string(), "clusters"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("doppel init"), std::string::npos);
}

}  // namespace
}  // namespace doppel
