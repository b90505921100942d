// The upload gate against hostile clients (issue 15): each test is one class
// of attack found against an earlier build, over a real loopback socket with a
// real catalogue and real pictures. See docs/security.md, "Upload gate".
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "doppel/catalogue.h"
#include "doppel/fingerprint.h"
#include "doppel/gate.h"
#include "doppel/rendition.h"
#include "server/server.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::MakeImage;
using testing::ReadFile;
using testing::RunDoppel;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

class HostileServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(InitImaging().ok()); }

  void SetUp() override {
    db_ = (tmp_ / "doppel.db").string();
    fs::create_directories(tmp_ / "apur");
    MakeImage(tmp_ / "apur" / "facade.jpg", 1200, 900, 1, "[Q=92]");
    ASSERT_EQ(RunDoppel({"--db", db_, "init"}).exit_code, 0);
    ASSERT_EQ(RunDoppel({"--db", db_, "source", "add", "apur", (tmp_ / "apur").string()}).exit_code,
              0);
  }
  // Scans, then makes the keys.
  void Catalogue() {
    auto scan = RunDoppel({"--db", db_, "scan"});
    ASSERT_EQ(scan.exit_code, 0) << scan.err;
    auto cat = OpenCatalogue(db_, {});
    ASSERT_TRUE(cat.ok());
    for (auto [role, slot] : {std::pair{"uploader", &uploader_}, {"reviewer", &reviewer_}}) {
      auto k = CreateApiKey(**cat, "apur", role, role);
      ASSERT_TRUE(k.ok()) << k.status().ToString();
      *slot = k->token;
    }
  }

  void TearDown() override { StopServer(); }

  server::ServerOptions Options() {
    server::ServerOptions o;
    o.catalogue = db_;
    o.port = 0;
    o.max_body_bytes = 16 << 20;
    o.read_timeout_s = 1;
    o.decode_slots = 2;
    o.http_threads = 8;
    o.refresh_seconds = 0;
    o.gate.held_dir = (tmp_ / "held").string();
    return o;
  }
  void StartServer(const server::ServerOptions& o) {
    auto s = server::Server::Create(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    ASSERT_TRUE(server_->Bind().ok());
    thread_ = std::thread([this] { EXPECT_TRUE(server_->Run().ok()); });
  }
  void StopServer() {
    if (!server_) return;
    server_->Stop();
    thread_.join();
    server_.reset();
  }

  httplib::Client Client(int read_timeout_s = 30) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(read_timeout_s, 0);
    return c;
  }
  httplib::Headers Auth(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }
  httplib::Result Upload(const std::string& bytes,
                         const std::vector<std::pair<std::string, std::string>>& fields = {}) {
    httplib::MultipartFormDataItems items = {{"image", bytes, "photo.jpg", "image/jpeg"}};
    for (const auto& [k, v] : fields) items.push_back({k, v, "", ""});
    return Client().Post("/api/v1/uploads", Auth(uploader_), items);
  }
  void ExpectHealthy() {
    auto r = Client().Get("/healthz");
    ASSERT_TRUE(r) << "server not answering";
    EXPECT_EQ(r->status, 200);
  }
  static json Body(const httplib::Result& r) { return json::parse(r->body, nullptr, false); }
  static void ExpectError(const httplib::Result& r, int status, const std::string& code) {
    ASSERT_TRUE(r) << "no answer";
    EXPECT_EQ(r->status, status) << r->body;
    json b = Body(r);
    ASSERT_TRUE(b.contains("error")) << r->body;
    EXPECT_EQ(b["error"]["code"], code) << r->body;
  }
  int Connect() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(server_->port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }
  static void Send(int fd, const std::string& s) {
    EXPECT_EQ(send(fd, s.data(), s.size(), MSG_NOSIGNAL), ssize_t(s.size()));
  }
  // What arrives on `fd` within `seconds`, up to the end of the first response.
  static std::string Receive(int fd, int seconds) {
    timeval tv{seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) {
      got.append(buf, size_t(n));
      const size_t end = got.find("\r\n\r\n");
      const size_t cl = got.find("Content-Length: ");
      if (end != std::string::npos && cl != std::string::npos && cl < end &&
          got.size() >= end + 4 + std::stoul(got.substr(cl + 16)))
        break;
    }
    return got;
  }
  int64_t FileCount() {
    auto cat = OpenCatalogue(db_, {});
    return int64_t((*cat)->ListFiles(FileStatus::kOk, "", 0)->size());
  }
  // Regular files anywhere under `dir` (none if it does not exist).
  static int FilesUnder(const fs::path& dir) {
    int n = 0;
    std::error_code ec;
    if (!fs::exists(dir, ec)) return 0;
    for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::end(it); it.increment(ec))
      if (it->is_regular_file(ec)) ++n;
    return n;
  }
  std::string NewPicture(const std::string& name, int seed) {
    MakeImage(tmp_ / name, 900, 700, seed, "[Q=90]");
    return ReadFile(tmp_ / name);
  }

  TempDir tmp_;
  std::string db_;
  std::string uploader_, reviewer_;
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
};

// 1. A number from a request drives arithmetic only after a range check: a
// cluster page near 2^63 overflowed the page offset and crashed the gate.
TEST_F(HostileServerTest, NumbersFromRequestsAreRangeCheckedNotOverflowed) {
  Catalogue();
  StartServer(Options());
  auto c = Client();
  for (const char* q : {"page=500000000000000000", "page=461168601842738791&per_page=100",
                        "page=999999999999999999", "page=1000000001", "page=0", "page=-1",
                        "per_page=101", "per_page=0", "page=1e3", "page=%2B1"})
    ExpectError(c.Get(std::string("/api/v1/clusters?") + q, Auth(reviewer_)), 400,
                "invalid_argument");
  // The largest page allowed is an empty page, not a crash.
  auto last = c.Get("/api/v1/clusters?page=1000000000&per_page=100", Auth(reviewer_));
  ASSERT_TRUE(last);
  ASSERT_EQ(last->status, 200) << last->body;
  EXPECT_EQ(Body(last)["clusters"].size(), 0u);
  // Numbers in JSON bodies: out of range or not integers.
  const std::string zero_pdq(64, '0');
  for (const std::string radius : {"18446744073709551615", "-1", "3.5", "1e400"})
    ExpectError(
        c.Post("/api/v1/lookup", Auth(reviewer_),
               R"({"pdq":")" + zero_pdq + R"(","radius":)" + radius + "}", "application/json"),
        400, "invalid_pdq");
  ExpectError(c.Post("/api/v1/clusters/1/decisions", Auth(reviewer_),
                     R"({"decision":"choose_master","master_id":18446744073709551615})",
                     "application/json"),
              400, "invalid_argument");
  ExpectHealthy();
}

// 2a. Slow clients: one header line (or body byte) every 300 ms is within the
// per-read timeout, but the whole headers (body) must arrive by a deadline;
// two workers held by three such clients must not starve /healthz.
TEST_F(HostileServerTest, TricklingClientsAreCutOffAtTheDeadline) {
  Catalogue();
  auto o = Options();
  o.http_threads = 2;
  o.header_timeout_s = 2;
  o.body_timeout_s = 2;
  o.max_connections_per_ip = 0;  // this test is about the deadlines
  StartServer(o);
  constexpr auto kDrip = std::chrono::seconds(14);
  std::atomic<int> cut_off{0};
  auto trickle = [&](std::string head, bool body) {
    const int fd = Connect();
    if (body) {
      Send(fd, head);
      head = std::string(100000, 'x');
    }
    const auto until = Clock::now() + kDrip;
    for (size_t i = 0; i < head.size() && Clock::now() < until; ++i) {
      // Line by line (or byte by byte for the body), each well within the
      // 1 s read timeout.
      const size_t n = body ? 1 : head.find('\n', i) - i + 1;
      if (send(fd, head.data() + i, n, MSG_NOSIGNAL) < 0) {
        ++cut_off;
        break;
      }
      i += n - 1;
      pollfd p{fd, POLLIN, 300};
      if (poll(&p, 1, 300) > 0) {  // an answer (408) or the end of the connection
        ++cut_off;
        break;
      }
    }
    close(fd);
  };
  std::string many_headers = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 200; ++i) many_headers += "X-Slow-" + std::to_string(i) + ": y\r\n";
  const std::string upload_head =
      "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + uploader_ +
      "\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 100000\r\n\r\n";
  std::vector<std::thread> ts;
  ts.emplace_back(trickle, many_headers, false);
  ts.emplace_back(trickle, many_headers, false);
  ts.emplace_back(trickle, upload_head, true);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let them take the workers
  // Served once the deadlines free a worker, long before the trickle ends.
  auto r = Client(/*read_timeout_s=*/8).Get("/healthz");
  EXPECT_TRUE(r) << "/healthz starved by trickling clients";
  if (r) {
    EXPECT_EQ(r->status, 200);
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(cut_off.load(), 3);
}

// 2b. One client address cannot take every worker: connections beyond
// --max-connections-per-ip are answered 503 without being read.
TEST_F(HostileServerTest, ConnectionsPerClientAddressAreLimited) {
  Catalogue();
  auto o = Options();
  o.max_connections_per_ip = 2;
  StartServer(o);
  // Two connections held open (keep-alive) after a first request each.
  std::vector<int> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(Connect());
    Send(held.back(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(Receive(held.back(), 10).rfind("HTTP/1.1 200", 0), 0u);
  }
  const int third = Connect();
  const std::string reply = Receive(third, 10);
  close(third);
  EXPECT_EQ(reply.rfind("HTTP/1.1 503", 0), 0u) << reply;
  EXPECT_NE(reply.find("too_many_connections"), std::string::npos) << reply;
  for (int fd : held) close(fd);
  // Served again once they are gone (the count is per connection open).
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto r = Client().Get("/healthz");
    if (r && r->status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ExpectHealthy();
}

// 2c. Without a key, nothing outside /api/ takes a body: a POST there is
// refused before its body is read (it used to be read in full, then 404).
TEST_F(HostileServerTest, PostOutsideTheApiIsRefusedBeforeItsBody) {
  Catalogue();
  auto o = Options();
  o.read_timeout_s = 20;  // a server that waits for the body would not answer in time
  StartServer(o);
  const int fd = Connect();
  Send(fd,
       "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
       "Content-Length: 1000000\r\n\r\n");
  const std::string reply = Receive(fd, 5);  // the body is never sent
  close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 404", 0), 0u) << reply;
  EXPECT_NE(reply.find("Connection: close"), std::string::npos) << reply;
  ExpectHealthy();
}

// 3. Two gates on one port: the second must fail to bind, naming the address,
// not share the port (SO_REUSEPORT) and take half the connections.
TEST_F(HostileServerTest, SecondServerOnTheSamePortFailsNamingTheAddress) {
  Catalogue();
  StartServer(Options());
  const int port = server_->port();
  auto o = Options();
  o.port = port;
  auto second = server::Server::Create(o);
  ASSERT_TRUE(second.ok());
  Status bound = (*second)->Bind();
  ASSERT_FALSE(bound.ok()) << "a second server bound 127.0.0.1:" << port;
  EXPECT_NE(bound.message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << bound.message();
  // The command line says so and exits non-zero.
  auto cli = RunDoppel({"--db", db_, "serve", "--listen", "127.0.0.1:" + std::to_string(port),
                        "--refresh-seconds", "0"});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_NE(cli.err.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << cli.err;
  ExpectHealthy();
}

// 4. A request that fails validation writes nothing: a field name that is not
// UTF-8 got 500 after the picture was stored, leaving an orphan per retry.
TEST_F(HostileServerTest, InvalidFieldNameIsRefusedBeforeAnythingIsWritten) {
  Catalogue();
  StartServer(Options());
  const std::string bytes = NewPicture("new.jpg", 7);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto r = Upload(bytes, {{std::string("ti\xff\xfetle"), "x"}});
    ExpectError(r, 400, "invalid_field");
  }
  ExpectError(Upload(bytes, {{std::string("a\x01"
                                          "b"),
                              "x"}}),
              400, "invalid_field");
  EXPECT_EQ(FilesUnder(tmp_ / "apur" / "uploads"), 0);
  EXPECT_EQ(FileCount(), 1);
  auto cat = OpenCatalogue(db_, {});
  EventFilter f;
  f.type = "upload";
  EXPECT_EQ((*cat)->ListEvents(f)->size(), 0u);
  // The same picture with proper fields is then accepted, once.
  auto ok = Upload(bytes, {{"title", "caf\xc3\xa9"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 201) << ok->body;
  EXPECT_EQ(FilesUnder(tmp_ / "apur" / "uploads"), 1);
}

// 5. A symbolic link planted inside the Source is never followed by a write.
TEST_F(HostileServerTest, UploadsDoNotFollowLinksPlantedInsideTheSource) {
  Catalogue();
  StartServer(Options());
  fs::create_directories(tmp_ / "elsewhere");
  // uploads itself a link.
  fs::create_directory_symlink(tmp_ / "elsewhere", tmp_ / "apur" / "uploads");
  auto r = Upload(NewPicture("a.jpg", 8));
  ASSERT_TRUE(r);
  EXPECT_NE(r->status, 201) << r->body;
  EXPECT_NE(r->body.find("symbolic link"), std::string::npos) << r->body;
  // A link deeper down: uploads/YEAR (the gate's own UTC year).
  fs::remove(tmp_ / "apur" / "uploads");
  fs::create_directories(tmp_ / "apur" / "uploads");
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  fs::create_directory_symlink(tmp_ / "elsewhere",
                               tmp_ / "apur" / "uploads" / std::to_string(1900 + tm.tm_year));
  auto r2 = Upload(NewPicture("b.jpg", 9));
  ASSERT_TRUE(r2);
  EXPECT_NE(r2->status, 201) << r2->body;
  EXPECT_EQ(FilesUnder(tmp_ / "elsewhere"), 0);
  EXPECT_EQ(FileCount(), 1);
  ExpectHealthy();
}

// 6. A PDQ-hash lookup is no way to list the catalogue: the radius is at most
// the near threshold, and the matches are capped.
TEST_F(HostileServerTest, HashLookupRadiusAndResultCountAreCapped) {
  // Two near copies of one picture in the catalogue.
  RenditionOptions ro;
  ro.max_side = 700;
  auto small = RenderFile((tmp_ / "apur" / "facade.jpg").string(), ro);
  ASSERT_TRUE(small.ok());
  testing::WriteFile(tmp_ / "apur" / "facade-small.jpg", *EncodeJpeg(*small, 85));
  Catalogue();
  auto o = Options();
  o.max_lookup_matches = 1;
  StartServer(o);
  auto c = Client();
  httplib::MultipartFormDataItems items = {
      {"image", ReadFile(tmp_ / "apur" / "facade.jpg"), "f.jpg", "image/jpeg"}};
  auto probe = c.Post("/api/v1/lookup", Auth(uploader_), items);
  ASSERT_TRUE(probe);
  ASSERT_EQ(probe->status, 200) << probe->body;
  const std::string pdq = Body(probe)["pdq"];
  for (int radius : {128, 64, 32})
    ExpectError(c.Post("/api/v1/lookup", Auth(uploader_),
                       json{{"pdq", pdq}, {"radius", radius}}.dump(), "application/json"),
                400, "invalid_pdq");
  httplib::MultipartFormDataItems wide = {{"pdq", pdq, "", ""}, {"radius", "128", "", ""}};
  ExpectError(c.Post("/api/v1/lookup", Auth(uploader_), wide), 400, "invalid_pdq");
  auto capped =
      c.Post("/api/v1/lookup", Auth(uploader_), json{{"pdq", pdq}}.dump(), "application/json");
  ASSERT_TRUE(capped);
  ASSERT_EQ(capped->status, 200) << capped->body;
  ASSERT_EQ(Body(capped)["matches"].size(), 1u) << capped->body;
  EXPECT_EQ(Body(capped)["matches"][0]["distance"], 0);
}

// 7. The review page runs no inline script and cannot be framed.
TEST_F(HostileServerTest, ReviewPageHasAStrictContentSecurityPolicy) {
  Catalogue();
  StartServer(Options());
  auto c = Client();
  auto page = c.Get("/review");
  ASSERT_TRUE(page);
  ASSERT_EQ(page->status, 200);
  const std::string csp = page->get_header_value("Content-Security-Policy");
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  const size_t script_src = csp.find("script-src");
  ASSERT_NE(script_src, std::string::npos) << csp;
  const std::string scripts = csp.substr(script_src, csp.find(';', script_src) - script_src);
  EXPECT_EQ(scripts.find("unsafe-inline"), std::string::npos) << csp;
  EXPECT_EQ(scripts.find("unsafe-eval"), std::string::npos) << csp;
  // No inline script element and no inline event handler attribute.
  EXPECT_FALSE(std::regex_search(page->body, std::regex("<script(?![^>]*\\bsrc=)")));
  EXPECT_FALSE(
      std::regex_search(page->body, std::regex("<[^>]*\\son[a-z]+\\s*=", std::regex::icase)));
  auto js = c.Get("/review.js");
  ASSERT_TRUE(js);
  ASSERT_EQ(js->status, 200);
  EXPECT_EQ(js->get_header_value("Content-Type").rfind("text/javascript", 0), 0u);
  EXPECT_NE(js->body.find("sessionStorage"), std::string::npos);
  EXPECT_EQ(js->body.find(".onclick"), std::string::npos);
}

}  // namespace
}  // namespace doppel
