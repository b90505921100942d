// Scanning real folders into a real SQLite catalogue: bad input of every
// kind, incremental rescans, moves, vanishing and changing files, a full
// disk, and a scan killed with SIGKILL then resumed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "doppel/catalogue.h"
#include "doppel/scan.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using testing::MakeImage;
using testing::ReadFile;
using testing::RunDoppel;
using testing::TempDir;
using testing::WriteFile;

class ScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitImaging().ok());
    root_ = tmp_ / "dept";
    fs::create_directories(root_);
    db_ = (tmp_ / "cat.db").string();
  }
  std::unique_ptr<Catalogue> Open(CatalogueOptions o = {}) {
    o.create_if_missing = true;
    auto c = OpenCatalogue(db_, o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  ScanSummary Scan(Catalogue& cat, ScanOptions o = {}) {
    if (o.jobs == 0) o.jobs = 2;
    auto r = ScanSources(cat, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : ScanSummary{};
  }
  std::map<std::string, FileEntry> Files(Catalogue& cat) {
    std::map<std::string, FileEntry> m;
    auto l = cat.ListFiles(std::nullopt, "", 0);
    EXPECT_TRUE(l.ok());
    for (auto& f : *l) m[f.path] = f;
    return m;
  }
  TempDir tmp_;
  fs::path root_;
  std::string db_;
};

TEST_F(ScanTest, BadInputIsRecordedAndTheScanGoesOn) {
  MakeImage(root_ / "good.jpg", 640, 480, 1);
  const std::string good = ReadFile(root_ / "good.jpg");
  WriteFile(root_ / "name with spaces.jpg", good);
  WriteFile(root_ / std::string("caf\xE9-latin1.jpg"), good);  // not UTF-8
  WriteFile(root_ / "empty.jpg", "");
  WriteFile(root_ / "truncated.jpg", good.substr(0, good.size() / 2));
  std::string corrupt = good;
  for (size_t i = corrupt.size() / 3; i < corrupt.size() - 2; i += 7) corrupt[i] = char(0xFF);
  WriteFile(root_ / "corrupt.jpg", corrupt);
  WriteFile(root_ / "notes.jpg", "These are meeting notes, not a photo.\n");
  WriteFile(root_ / "random.png", std::string(4096, '\x5A'));
  fs::create_directories(root_ / "folder.jpg");              // a folder with an image name
  ASSERT_EQ(mkfifo((root_ / "pipe.jpg").c_str(), 0644), 0);  // must not hang the scan
  fs::create_directories(root_ / "sub");
  fs::create_symlink("..", root_ / "sub" / "loop");  // a loop when links are followed
  fs::create_symlink("nowhere.jpg", root_ / "dangling.jpg");
  WriteFile(root_ / "readme.txt", "not an image extension: ignored");

  auto cat = Open();
  ASSERT_TRUE(cat->AddSource("dept", root_.string(), 0).ok());
  ScanOptions o;
  o.follow_symlinks = true;
  ScanSummary s = Scan(*cat, o);
  ASSERT_EQ(s.sources.size(), 1u);
  EXPECT_EQ(s.sources[0].status, "completed");
  auto files = Files(*cat);
  EXPECT_EQ(files["good.jpg"].status, FileStatus::kOk);
  EXPECT_EQ(files["name with spaces.jpg"].status, FileStatus::kOk);
  EXPECT_EQ(files[std::string("caf\xE9-latin1.jpg")].status, FileStatus::kOk);
  struct Want {
    const char* path;
    const char* kind;
    const char* words;
  } wants[] = {
      {"empty.jpg", "corrupt", "empty file"},
      {"truncated.jpg", "corrupt", "truncated"},
      {"corrupt.jpg", "corrupt", ""},
      {"notes.jpg", "unsupported", "not a recognised image"},
      {"random.png", "unsupported", "not a recognised image"},
  };
  for (const auto& w : wants) {
    ASSERT_TRUE(files.count(w.path)) << w.path;
    const FileEntry& f = files[w.path];
    EXPECT_EQ(f.status, FileStatus::kError) << w.path;
    EXPECT_EQ(f.error_kind, w.kind) << w.path << ": " << f.error;
    EXPECT_NE(f.error.find(w.words), std::string::npos) << w.path << ": " << f.error;
  }
  EXPECT_FALSE(files.count("folder.jpg"));
  EXPECT_FALSE(files.count("pipe.jpg"));
  // The loop and the dangling link are reported, not fatal.
  bool loop = false, dangling = false;
  for (const auto& p : s.problems) {
    loop |= p.path == "sub/loop" && p.message.find("loop") != std::string::npos;
    dangling |=
        p.path == "dangling.jpg" && p.message.find("broken symbolic link") != std::string::npos;
  }
  EXPECT_TRUE(loop);
  EXPECT_TRUE(dangling);
  EXPECT_EQ(s.sources[0].counts.files_failed, 5);
  EXPECT_EQ(s.sources[0].counts.files_read, 3);

  // Unchanged broken files are not retried unless asked.
  ScanSummary again = Scan(*cat, o);
  EXPECT_EQ(again.sources[0].counts.files_read + again.sources[0].counts.files_failed, 0);
  o.retry_errors = true;
  ScanSummary retry = Scan(*cat, o);
  EXPECT_EQ(retry.sources[0].counts.files_failed, 5);
}

TEST_F(ScanTest, UnreadableFilesAndFoldersAreReportedNotLost) {
  MakeImage(root_ / "ok.jpg", 320, 240, 1);
  MakeImage(root_ / "secret.jpg", 320, 240, 2);
  MakeImage(root_ / "locked" / "inside.jpg", 320, 240, 3);
  // Scan once with access to everything.
  auto r0 = RunDoppel({"--db", db_, "init"});
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  ASSERT_EQ(RunDoppel({"--db", db_, "source", "add", "dept", root_.string()}).exit_code, 0);
  ASSERT_EQ(RunDoppel({"--db", db_, "scan"}).exit_code, 0);
  // Then as an unprivileged user who cannot read one file and one folder.
  const int nobody = 65534;
  fs::permissions(tmp_.path(), fs::perms::all);
  for (auto& p : fs::recursive_directory_iterator(tmp_.path()))
    chown(p.path().c_str(), nobody, nobody);
  chown(tmp_.path().c_str(), nobody, nobody);
  fs::permissions(root_ / "secret.jpg", fs::perms::none);
  fs::permissions(root_ / "locked", fs::perms::none);
  fs::last_write_time(root_ / "secret.jpg", fs::file_time_type::clock::now());  // force a re-read
  auto r = RunDoppel({"--db", db_, "scan", "--json"}, "", nobody);
  ASSERT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("Permission denied"), std::string::npos) << r.out;
  auto cat = Open();
  auto files = Files(*cat);
  EXPECT_EQ(files["secret.jpg"].status, FileStatus::kError);
  EXPECT_EQ(files["secret.jpg"].error_kind, "io_error");
  // The unreadable folder's file keeps its last known state: not "missing".
  EXPECT_EQ(files["locked/inside.jpg"].status, FileStatus::kOk);
  EXPECT_EQ(files["ok.jpg"].status, FileStatus::kOk);
}

TEST_F(ScanTest, RescansAreIncrementalAndRecogniseMoves) {
  for (int i = 0; i < 6; ++i) MakeImage(root_ / ("img" + std::to_string(i) + ".jpg"), 400, 300, i);
  auto cat = Open();
  ASSERT_TRUE(cat->AddSource("dept", root_.string(), 0).ok());
  ScanSummary s1 = Scan(*cat);
  EXPECT_EQ(s1.sources[0].counts.files_read, 6);
  auto before = Files(*cat);

  ScanSummary s2 = Scan(*cat);
  EXPECT_EQ(s2.sources[0].counts.files_unchanged, 6);
  EXPECT_EQ(s2.sources[0].counts.files_read, 0);

  // Change one, delete one, rename one into a sub-folder, add one.
  MakeImage(root_ / "img0.jpg", 400, 300, 100);
  fs::last_write_time(root_ / "img0.jpg",
                      fs::file_time_type::clock::now() + std::chrono::seconds(5));
  fs::remove(root_ / "img1.jpg");
  fs::create_directories(root_ / "moved");
  fs::rename(root_ / "img2.jpg", root_ / "moved" / "renamed.jpg");
  MakeImage(root_ / "new.jpg", 400, 300, 200);
  ScanSummary s3 = Scan(*cat);
  const auto& c = s3.sources[0].counts;
  EXPECT_EQ(c.files_unchanged, 3);
  EXPECT_EQ(c.files_read, 3);     // img0 (changed), renamed, new
  EXPECT_EQ(c.files_missing, 2);  // img1 and img2's old path, before the move is seen
  EXPECT_EQ(c.files_moved, 1);
  auto after = Files(*cat);
  EXPECT_EQ(after["img1.jpg"].status, FileStatus::kMissing);  // marked, never deleted
  EXPECT_FALSE(after.count("img2.jpg"));
  EXPECT_EQ(after["moved/renamed.jpg"].id, before["img2.jpg"].id);  // same record, new path
  EXPECT_EQ(after["moved/renamed.jpg"].status, FileStatus::kOk);
  EXPECT_EQ(after["img0.jpg"].id, before["img0.jpg"].id);
  auto st = cat->Stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->sources[0].files_ok, 6);
  EXPECT_EQ(st->sources[0].files_missing, 1);

  // A file that comes back is found again.
  MakeImage(root_ / "img1.jpg", 400, 300, 1);
  ScanSummary s4 = Scan(*cat);
  EXPECT_EQ(Files(*cat)["img1.jpg"].status, FileStatus::kOk);
  EXPECT_EQ(s4.sources[0].counts.files_read, 1);
}

TEST_F(ScanTest, AnUnmountedSourceMarksNothingMissing) {
  MakeImage(root_ / "a.jpg", 320, 240, 1);
  auto cat = Open();
  ASSERT_TRUE(cat->AddSource("dept", root_.string(), 0).ok());
  Scan(*cat);
  fs::rename(root_, tmp_ / "elsewhere");
  ScanSummary s = Scan(*cat);
  EXPECT_EQ(s.sources[0].status, "failed");
  EXPECT_NE(s.sources[0].error.find("does not exist"), std::string::npos) << s.sources[0].error;
  EXPECT_EQ(Files(*cat)["a.jpg"].status, FileStatus::kOk);
}

TEST_F(ScanTest, FilesThatVanishOrChangeDuringTheScan) {
  for (int i = 0; i < 4; ++i) MakeImage(root_ / ("f" + std::to_string(i) + ".jpg"), 320, 240, i);
  auto cat = Open();
  ASSERT_TRUE(cat->AddSource("dept", root_.string(), 0).ok());
  ScanOptions o;
  o.jobs = 1;
  o.test_before_read = [&](const std::string& rel) {
    if (rel == "f1.jpg") fs::remove(root_ / rel);
  };
  o.analyse.test_after_read = [&](const std::string& path) {
    if (path.ends_with("f2.jpg")) {
      std::ofstream(path, std::ios::app) << "appended while being read";
    }
  };
  ScanSummary s = Scan(*cat, o);
  EXPECT_EQ(s.sources[0].counts.files_vanished, 1);
  EXPECT_EQ(s.sources[0].counts.files_failed, 1);
  auto files = Files(*cat);
  EXPECT_FALSE(files.count("f1.jpg"));
  EXPECT_EQ(files["f2.jpg"].status, FileStatus::kError);
  EXPECT_EQ(files["f2.jpg"].error_kind, "changed");
  // The changed file is read again next time (the appended bytes are after EOI: fine).
  ScanSummary again = Scan(*cat);
  EXPECT_EQ(again.sources[0].counts.files_read, 1);
  EXPECT_EQ(Files(*cat)["f2.jpg"].status, FileStatus::kOk);
}

TEST_F(ScanTest, AFullCatalogueDiskStopsCleanlyAndKeepsWhatWasCommitted) {
  for (int i = 0; i < 40; ++i) MakeImage(root_ / ("f" + std::to_string(i) + ".png"), 64, 48, i);
  {
    auto cat = Open();
    ASSERT_TRUE(cat->AddSource("dept", root_.string(), 0).ok());
  }
  CatalogueOptions small;
  small.sqlite_max_pages = 14;  // a few pages past the empty schema
  auto cat = Open(small);
  auto r = ScanSources(*cat, ScanOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDiskFull) << r.status().ToString();
  EXPECT_NE(r.status().message().find("committed work is kept"), std::string::npos);
  cat.reset();
  // Consistent afterwards, and a scan with room finishes the job.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
  sqlite3_finalize(st);
  sqlite3_close(db);
  auto roomy = Open();
  ScanSummary s = Scan(*roomy);
  EXPECT_EQ(s.sources[0].status, "completed");
  EXPECT_EQ(roomy->Stats()->sources[0].files_ok, 40);
}

std::string QueryText(const std::string& db_path, const char* sql) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

int64_t CountRows(const std::string& db_path, const char* sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return -1;
  }
  sqlite3_busy_timeout(db, 2000);
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

// Registers root_ holding `files` JPEGs (a few distinct pictures copied to
// many paths: the scan reads every path), starts `doppel scan --jobs 1` in the
// background and returns its pid once at least `min_committed` files are
// committed (0 if that never happened).
int StartSlowScan(const fs::path& tmp, const fs::path& root, const std::string& db, int files,
                  int min_committed) {
  for (int i = 0; i < 4; ++i)
    MakeImage(tmp / ("seed" + std::to_string(i) + ".jpg"), 1600, 1200, i, "[Q=95]");
  for (int i = 0; i < files; ++i)
    testing::CopyFile(tmp / ("seed" + std::to_string(i % 4) + ".jpg"),
                      root / ("p" + std::to_string(i) + ".jpg"));
  if (RunDoppel({"--db", db, "init"}).exit_code != 0) return 0;
  if (RunDoppel({"--db", db, "source", "add", "dept", root.string()}).exit_code != 0) return 0;
  int pid = testing::SpawnDoppel({"--db", db, "scan", "--jobs", "1"});
  for (int i = 0; i < 600; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (CountRows(db, "SELECT count(*) FROM files WHERE status = 'ok'") >= min_committed)
      return pid;
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return 0;
}

TEST_F(ScanTest, KillNineMidScanThenResume) {
  const int kFiles = 120;
  // Kill without warning once part of the work is committed.
  int pid = StartSlowScan(tmp_.path(), root_, db_, kFiles, 10);
  ASSERT_NE(pid, 0) << "scan never committed anything";
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  const int64_t kept = CountRows(db_, "SELECT count(*) FROM files WHERE status = 'ok'");
  ASSERT_LT(kept, kFiles) << "the scan finished before it could be killed; make it slower";
  EXPECT_EQ(CountRows(db_, "SELECT count(*) FROM files WHERE status != 'ok'"), 0);
  EXPECT_EQ(CountRows(db_, "SELECT count(*) FROM fingerprints"), kept);  // no half-written file

  auto r = RunDoppel({"--db", db_, "scan", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\"files_unchanged\": " + std::to_string(kept)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"files_read\": " + std::to_string(kFiles - kept)), std::string::npos)
      << r.out;
  EXPECT_EQ(CountRows(db_, "SELECT count(*) FROM files WHERE status = 'ok'"), kFiles);
  EXPECT_EQ(CountRows(db_, "SELECT count(*) FROM scans WHERE status = 'interrupted'"), 1);
  EXPECT_EQ(QueryText(db_, "PRAGMA integrity_check"), "ok");
  std::printf("[ kill -9  ] killed after %lld of %d files; resume read the other %lld\n",
              (long long)kept, kFiles, (long long)(kFiles - kept));
}

}  // namespace
}  // namespace doppel

namespace doppel {
namespace {

// Ctrl-C (SIGINT) stops a scan cleanly: exit 130, the scan is recorded as
// cancelled, nothing half-done is stored, and the same command resumes.
TEST_F(ScanTest, CtrlCStopsCleanlyAndTheSameCommandResumes) {
  const int kFiles = 120;
  int pid = StartSlowScan(tmp_.path(), root_, db_, kFiles, 5);
  ASSERT_NE(pid, 0) << "scan never committed anything";
  ASSERT_EQ(kill(pid, SIGINT), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  const int64_t kept = CountRows(db_, "SELECT count(*) FROM files");
  EXPECT_LT(kept, kFiles);
  EXPECT_EQ(CountRows(db_, "SELECT count(*) FROM files WHERE status != 'ok'"),
            0);  // no cancelled file recorded as an error
  EXPECT_EQ(QueryText(db_, "SELECT status FROM scans ORDER BY id DESC LIMIT 1"), "cancelled");
  auto r = RunDoppel({"--db", db_, "scan"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(CountRows(db_, "SELECT count(*) FROM files WHERE status = 'ok'"), kFiles);
}

}  // namespace
}  // namespace doppel
