// The command line on a PostgreSQL catalogue gives what it gives on SQLite:
// the same collection is scanned and matched into both, and every listing
// compared (tests/pg_server.h starts the server).
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "pg_server.h"
#include "test_util.h"

namespace doppel {
namespace {

using json = nlohmann::json;
using testing::MakeImage;
using testing::RunDoppel;
using testing::TempDir;

// Drops what differs between two runs by nature: times, durations, the
// catalogue's location.
json Stable(const json& j) {
  if (j.is_array()) {
    json out = json::array();
    for (const auto& e : j) out.push_back(Stable(e));
    return out;
  }
  if (!j.is_object()) return j;
  json out = json::object();
  for (const auto& [k, v] : j.items()) {
    if (k == "catalogue" || k.find("_at") != std::string::npos ||
        k.find("seconds") != std::string::npos || k.find("elapsed") != std::string::npos ||
        k.find("duration") != std::string::npos || k == "last_scan" || k == "operation")
      continue;
    out[k] = Stable(v);
  }
  return out;
}

struct Outputs {
  json scan, stats, exact, files, match, clusters, pairs;
};

Outputs ScanAndMatch(const std::string& db, const TempDir& tmp) {
  Outputs o;
  EXPECT_EQ(RunDoppel({"--db", db, "init"}).exit_code, 0);
  EXPECT_EQ(RunDoppel({"--db", db, "source", "add", "a", (tmp / "a").string()}).exit_code, 0);
  EXPECT_EQ(RunDoppel({"--db", db, "source", "add", "b", (tmp / "b").string(), "--priority", "5"})
                .exit_code,
            0);
  // One reader: files get their ids in the walk's order on both backends.
  auto scan = RunDoppel({"--db", db, "scan", "--jobs", "1", "--json"});
  EXPECT_EQ(scan.exit_code, 3) << scan.err;  // one unreadable file
  o.scan = Stable(json::parse(scan.out, nullptr, false));
  o.stats = Stable(json::parse(RunDoppel({"--db", db, "stats", "--json"}).out, nullptr, false));
  o.exact =
      Stable(json::parse(RunDoppel({"--db", db, "exact", "--format", "json"}).out, nullptr, false));
  o.files =
      Stable(json::parse(RunDoppel({"--db", db, "files", "--format", "json"}).out, nullptr, false));
  auto match = RunDoppel({"--db", db, "match", "--json"});
  EXPECT_EQ(match.exit_code, 0) << match.err;
  o.match = Stable(json::parse(match.out, nullptr, false));
  o.clusters = Stable(
      json::parse(RunDoppel({"--db", db, "clusters", "--format", "json"}).out, nullptr, false));
  o.pairs =
      Stable(json::parse(RunDoppel({"--db", db, "pairs", "--format", "json"}).out, nullptr, false));
  return o;
}

TEST(PgCli, ScanAndMatchGiveWhatSqliteGives) {
  std::string pg;
  DOPPEL_REQUIRE_PG(pg);
  TempDir tmp;
  MakeImage(tmp / "a" / "x.jpg", 640, 480, 1);
  MakeImage(tmp / "a" / "y.jpg", 640, 480, 2);
  MakeImage(tmp / "a" / "z.png", 300, 300, 3);
  testing::CopyFile(tmp / "a" / "x.jpg", tmp / "b" / "copy of x.jpg");
  MakeImage(tmp / "b" / "y smaller.jpg", 320, 240, 2, "[Q=80]");  // a near copy of y
  testing::WriteFile(tmp / "b" / "broken.jpg", "not really");

  const Outputs lite = ScanAndMatch((tmp / "c.db").string(), tmp);
  const Outputs post = ScanAndMatch(pg, tmp);
  EXPECT_EQ(post.scan, lite.scan);
  EXPECT_EQ(post.stats, lite.stats);
  EXPECT_EQ(post.exact, lite.exact);
  EXPECT_EQ(post.files, lite.files);
  EXPECT_EQ(post.match, lite.match);
  EXPECT_EQ(post.clusters, lite.clusters);
  EXPECT_EQ(post.pairs, lite.pairs);
  // Something was found, so the comparisons above compare something.
  EXPECT_EQ(lite.stats["exact_duplicates"]["groups"], 1) << lite.stats.dump();
  EXPECT_FALSE(lite.pairs.empty()) << lite.pairs.dump();
  EXPECT_FALSE(lite.clusters.empty()) << lite.clusters.dump();

  // $DOPPEL_DB selects it too; a second scan reads nothing again.
  setenv("DOPPEL_DB", pg.c_str(), 1);
  auto again = RunDoppel({"scan", "--json"});
  unsetenv("DOPPEL_DB");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  auto aj = json::parse(again.out, nullptr, false);
  int64_t unchanged = 0, read = 0;
  for (const auto& s : aj["sources"]) {
    unchanged += s["files_unchanged"].get<int64_t>();
    read += s["files_read"].get<int64_t>();
  }
  EXPECT_EQ(unchanged, 6) << again.out;
  EXPECT_EQ(read, 0) << again.out;
}

TEST(PgCli, AnEmptyDatabaseIsNoCatalogueAndAPasswordIsNeverPrinted) {
  std::string pg;
  DOPPEL_REQUIRE_PG(pg);
  auto stats = RunDoppel({"--db", pg, "stats"});
  EXPECT_EQ(stats.exit_code, 1);
  EXPECT_NE(stats.err.find("no catalogue in"), std::string::npos) << stats.err;
  EXPECT_NE(stats.err.find("init`"), std::string::npos) << stats.err;
  // A wrong password (trust auth ignores it) is shown redacted.
  std::string with_password = pg;
  with_password.replace(with_password.find("doppel@"), 7, "doppel:s3cret@");
  auto init = RunDoppel({"--db", with_password, "init"});
  EXPECT_EQ(init.exit_code, 0) << init.err;
  EXPECT_EQ(init.out.find("s3cret"), std::string::npos) << init.out;
  EXPECT_NE(init.out.find("doppel:***@"), std::string::npos) << init.out;
}

}  // namespace
}  // namespace doppel
