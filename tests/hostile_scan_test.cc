// Hostile folders for the scan (issue 15): links that lead out of the
// Source, private bytes that must not reach the catalogue, pipes and sockets
// named like pictures, and a huge sparse file that is not a picture.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "doppel/catalogue.h"
#include "doppel/scan.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using testing::MakeImage;
using testing::TempDir;
using testing::WriteFile;

class HostileScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitImaging().ok());
    root_ = tmp_ / "dept";
    outside_ = tmp_ / "private";
    fs::create_directories(root_);
    fs::create_directories(outside_);
    CatalogueOptions co;
    co.create_if_missing = true;
    auto c = OpenCatalogue((tmp_ / "cat.db").string(), co);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cat_ = std::move(c).value();
    ASSERT_TRUE(cat_->AddSource("dept", root_.string(), 0).ok());
  }
  ScanSummary Scan(bool follow) {
    ScanOptions o;
    o.jobs = 2;
    o.follow_symlinks = follow;
    auto r = ScanSources(*cat_, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : ScanSummary{};
  }
  std::map<std::string, FileEntry> Files() {
    std::map<std::string, FileEntry> m;
    auto l = cat_->ListFiles(std::nullopt, "", 0);
    EXPECT_TRUE(l.ok());
    for (auto& f : *l) m[f.path] = f;
    return m;
  }
  static const FileProblem* Find(const ScanSummary& s, const std::string& path) {
    for (const auto& p : s.problems)
      if (p.path == path) return &p;
    return nullptr;
  }
  TempDir tmp_;
  fs::path root_, outside_;
  std::unique_ptr<Catalogue> cat_;
};

TEST_F(HostileScanTest, FollowedLinksStayInsideTheSource) {
  MakeImage(root_ / "sub" / "a.jpg", 320, 240, 1);
  MakeImage(outside_ / "holiday.jpg", 320, 240, 2);
  WriteFile(outside_ / "passwords.png", "PASSWORD=hunter2\n");
  fs::create_symlink("sub/a.jpg", root_ / "inside.jpg");                       // inside: followed
  fs::create_symlink(outside_ / "passwords.png", root_ / "leak.png");          // a private file
  fs::create_symlink(outside_, root_ / "elsewhere");                           // a folder outside
  fs::create_symlink("..", root_ / "up");                                      // the folder above
  fs::create_symlink("../../private/holiday.jpg", root_ / "sub" / "rel.jpg");  // relative, outside

  ScanSummary s = Scan(/*follow=*/true);
  ASSERT_EQ(s.sources.size(), 1u);
  EXPECT_EQ(s.sources[0].status, "completed");
  auto files = Files();
  EXPECT_EQ(files["sub/a.jpg"].status, FileStatus::kOk);
  EXPECT_EQ(files["inside.jpg"].status, FileStatus::kOk);
  for (const auto& [path, f] : files) {
    EXPECT_TRUE(path == "sub/a.jpg" || path == "inside.jpg") << "read outside the source: " << path;
    EXPECT_EQ(f.error.find("hunter2"), std::string::npos) << path;
  }
  for (const char* link : {"leak.png", "elsewhere", "up", "sub/rel.jpg"}) {
    const FileProblem* p = Find(s, link);
    ASSERT_NE(p, nullptr) << link << " was not reported";
    EXPECT_NE(p->message.find("outside the source"), std::string::npos)
        << link << ": " << p->message;
  }
}

TEST_F(HostileScanTest, ErrorTextNeverQuotesTheFilesBytes) {
  WriteFile(root_ / "notes.tif", "PASSWORD=hunter2, not a picture\n");
  WriteFile(root_ / "notes.webp", "PASSWORD=hunter2, not a picture\n");
  Scan(false);
  auto files = Files();
  for (const char* name : {"notes.tif", "notes.webp"}) {
    ASSERT_TRUE(files.count(name)) << name;
    const FileEntry& f = files[name];
    EXPECT_EQ(f.status, FileStatus::kError);
    EXPECT_NE(f.error.find("not a recognised image format"), std::string::npos) << f.error;
    // Neither the text nor its hex ("50 41 53 53" for "PASS").
    EXPECT_EQ(f.error.find("hunter2"), std::string::npos) << f.error;
    EXPECT_EQ(f.error.find("50 41"), std::string::npos) << f.error;
  }
}

TEST_F(HostileScanTest, PipesAndSocketsNamedLikePicturesAreRecordedNotOpened) {
  MakeImage(root_ / "ok.jpg", 320, 240, 1);
  ASSERT_EQ(mkfifo((root_ / "pipe.jpg").c_str(), 0644), 0);
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = (root_ / "socket.png").string();
  ASSERT_LT(sock_path.size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sock_path.c_str());
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);

  ScanSummary s = Scan(false);
  ::close(sock);
  EXPECT_EQ(s.sources[0].status, "completed");
  EXPECT_EQ(Files()["ok.jpg"].status, FileStatus::kOk);
  const FileProblem* pipe = Find(s, "pipe.jpg");
  ASSERT_NE(pipe, nullptr) << "the FIFO was skipped silently";
  EXPECT_NE(pipe->message.find("named pipe"), std::string::npos) << pipe->message;
  EXPECT_NE(pipe->message.find("without opening"), std::string::npos) << pipe->message;
  const FileProblem* socket = Find(s, "socket.png");
  ASSERT_NE(socket, nullptr) << "the socket was skipped silently";
  EXPECT_NE(socket->message.find("socket"), std::string::npos) << socket->message;
}

// AnalyseFile is handed a FIFO directly (a file replaced between listing and
// reading): refused from its type, never opened.
TEST_F(HostileScanTest, AnalyseRefusesAFifoWithoutOpeningIt) {
  ASSERT_EQ(mkfifo((root_ / "pipe.jpg").c_str(), 0644), 0);
  auto r = AnalyseFile((root_ / "pipe.jpg").string(), AnalyseOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("not opened"), std::string::npos) << r.status().message();
}

// A 1 GiB sparse file named .jpg: refused from its first bytes. The
// cancellation hook is consulted after each streamed megabyte (and asks to
// stop at once here), so a refusal that never consults it read nothing past
// the signature.
TEST_F(HostileScanTest, AHugeSparseFileIsRefusedBeforeItIsRead) {
  const fs::path p = root_ / "huge.jpg";
  WriteFile(p, "");
  fs::resize_file(p, uintmax_t(1) << 30);
  int polls = 0;
  AnalyseOptions o;
  o.cancelled = [&] {
    ++polls;
    return true;
  };
  auto r = AnalyseFile(p.string(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << r.status().ToString();
  EXPECT_EQ(polls, 0) << "the file was streamed before its format was checked";

  // The same with a JPEG signature and nothing behind it: the header is
  // checked before the bytes are hashed.
  std::string head = "\xFF\xD8\xFF\xE0";
  head += std::string(16, '\0');
  WriteFile(p, head);
  fs::resize_file(p, uintmax_t(1) << 30);
  polls = 0;
  r = AnalyseFile(p.string(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().code(), StatusCode::kCancelled) << r.status().ToString();
  EXPECT_EQ(polls, 0) << "the file was streamed before its header was checked: "
                      << r.status().ToString();
}

}  // namespace
}  // namespace doppel
