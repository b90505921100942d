// The upload gate over HTTP: a real server on a loopback port, a real SQLite
// catalogue filled by the real `doppel` binary, real pictures, httplib's
// client and raw sockets for the misbehaving clients.
#include "server/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "doppel/catalogue.h"
#include "doppel/fingerprint.h"
#include "doppel/gate.h"
#include "doppel/rendition.h"
#include "server/admission.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::MakeImage;
using testing::ReadFile;
using testing::RunDoppel;
using testing::TempDir;

// A smaller copy of a picture, re-encoded: what a "resized copy" upload is.
std::string ResizedJpeg(const fs::path& p, int max_side) {
  RenditionOptions ro;
  ro.max_side = max_side;
  auto r = RenderFile(p.string(), ro);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  auto j = EncodeJpeg(*r, 85);
  EXPECT_TRUE(j.ok());
  return *j;
}

// A PNG that is only a header: IHDR claims width x height, then IEND.
std::string PngHeaderOnly(uint32_t width, uint32_t height) {
  auto be32 = [](uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    std::string td = type + data;
    uLong crc = crc32(0, reinterpret_cast<const Bytef*>(td.data()), uInt(td.size()));
    return be32(uint32_t(data.size())) + td + be32(uint32_t(crc));
  };
  std::string ihdr = be32(width) + be32(height) + std::string{8, 2, 0, 0, 0};  // 8-bit RGB
  const std::string idat("\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 9);           // a few zlib bytes
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", idat) +
         chunk("IEND", "");
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(InitImaging().ok()); }

  void SetUp() override {
    db_ = (tmp_ / "doppel.db").string();
    fs::create_directories(tmp_ / "apur");
    fs::create_directories(tmp_ / "urb");
    MakeImage(tmp_ / "apur" / "facade.jpg", 1200, 900, 1, "[Q=92]");
    MakeImage(tmp_ / "urb" / "bridge.png", 800, 600, 2);
    ASSERT_EQ(RunDoppel({"--db", db_, "init"}).exit_code, 0);
    ASSERT_EQ(RunDoppel({"--db", db_, "source", "add", "apur", (tmp_ / "apur").string()}).exit_code,
              0);
    ASSERT_EQ(RunDoppel({"--db", db_, "source", "add", "urb", (tmp_ / "urb").string()}).exit_code,
              0);
    auto scan = RunDoppel({"--db", db_, "scan"});
    ASSERT_EQ(scan.exit_code, 0) << scan.err;
    auto cat = OpenCatalogue(db_, {});
    ASSERT_TRUE(cat.ok());
    for (auto [source, role, slot] : {std::tuple{"apur", "uploader", &uploader_},
                                      {"urb", "uploader", &urb_uploader_},
                                      {"apur", "reviewer", &reviewer_},
                                      {"apur", "admin", &admin_}}) {
      auto k = CreateApiKey(**cat, source, role, std::string(role) + " in test");
      ASSERT_TRUE(k.ok()) << k.status().ToString();
      *slot = k->token;
    }
  }

  void TearDown() override { StopServer(); }

  void StartServer(int64_t max_body = 16 << 20) {
    server::ServerOptions o;
    o.catalogue = db_;
    o.port = 0;
    o.max_body_bytes = max_body;
    o.max_pixels = 50'000'000;
    o.read_timeout_s = 1;
    o.decode_slots = 4;
    o.http_threads = 12;
    o.max_connections_per_ip = 32;  // the concurrency tests come from one address
    o.gate.held_dir = (tmp_ / "held").string();
    o.log = [this](const std::string& line) {
      std::lock_guard lk(log_mu_);
      log_.push_back(line);
    };
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

  httplib::Client Client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(30, 0);
    return c;
  }
  httplib::Result Upload(const std::string& token, const std::string& bytes,
                         const std::string& source = "apur",
                         const std::string& name = "photo.jpg") {
    auto c = Client();
    httplib::MultipartFormDataItems items = {{"image", bytes, name, "image/jpeg"},
                                             {"source", source, "", ""},
                                             {"title", "Quai de la Tournelle", "", ""}};
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    return c.Post("/api/v1/uploads", h, items);
  }
  void ExpectHealthy() {
    auto c = Client();
    auto r = c.Get("/healthz");
    ASSERT_TRUE(r) << "server not answering";
    EXPECT_EQ(r->status, 200);
  }
  static json Body(const httplib::Result& r) { return json::parse(r->body, nullptr, false); }
  static void ExpectError(const httplib::Result& r, int status, const std::string& code) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    json b = Body(r);
    ASSERT_TRUE(b.contains("error")) << r->body;
    EXPECT_EQ(b["error"]["code"], code) << r->body;
    EXPECT_FALSE(b["error"]["message"].get<std::string>().empty());
  }
  // Sends raw bytes on a fresh connection, half-closes, returns what comes back.
  // (httplib writes nothing to a peer that already half-closed: `half_close`
  // false keeps our side open and waits for the server to close.)
  std::string RawExchange(const std::string& bytes, bool half_close = true) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(server_->port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), ssize_t(bytes.size()));
    if (half_close) shutdown(fd, SHUT_WR);
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) {
      got.append(buf, size_t(n));
      // Stop at the end of the first response (Content-Length), not at the
      // server's keep-alive timeout.
      const size_t end = got.find("\r\n\r\n");
      const size_t cl = got.find("Content-Length: ");
      if (end != std::string::npos && cl != std::string::npos && cl < end &&
          got.size() >= end + 4 + std::stoul(got.substr(cl + 16)))
        break;
    }
    close(fd);
    return got;
  }
  int64_t FileCount() {
    auto cat = OpenCatalogue(db_, {});
    auto files = (*cat)->ListFiles(FileStatus::kOk, "", 0);
    return int64_t(files->size());
  }

  TempDir tmp_;
  std::string db_;
  std::string uploader_, urb_uploader_, reviewer_, admin_;
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
  std::mutex log_mu_;
  std::vector<std::string> log_;  // the access log
};

TEST_F(ServerTest, AcceptsANewPhotoAndRefusesItsResizedCopyAtOnce) {
  StartServer();
  MakeImage(tmp_ / "new.jpg", 1000, 750, 7, "[Q=90]");
  auto r = Upload(uploader_, ReadFile(tmp_ / "new.jpg"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  json b = Body(r);
  const int64_t id = b["id"];
  EXPECT_EQ(b["outcome"], "accepted");
  const std::string path = b["path"];
  // Stored under the source's root, at a path made from the day and the bytes.
  EXPECT_EQ(path.rfind("uploads/", 0), 0u) << path;
  EXPECT_NE(path.find(b["sha256"].get<std::string>()), std::string::npos);
  EXPECT_EQ(ReadFile(tmp_ / "apur" / path), ReadFile(tmp_ / "new.jpg"));
  // The next request already sees it (live index), without a restart.
  auto dup = Upload(uploader_, ResizedJpeg(tmp_ / "new.jpg", 500));
  ASSERT_TRUE(dup);
  ASSERT_EQ(dup->status, 409) << dup->body;
  json d = Body(dup);
  EXPECT_EQ(d["master_id"], id);
  EXPECT_EQ(d["kind"], "near");
  EXPECT_EQ(d["outcome"], "rejected");
  EXPECT_LE(d["distance"].get<int>(), 31);
  EXPECT_FALSE(d["reason"].get<std::string>().empty());
  // A resized copy of a scanned file: the scanned file is the master.
  auto dup2 = Upload(urb_uploader_, ResizedJpeg(tmp_ / "apur" / "facade.jpg", 600), "urb");
  ASSERT_EQ(dup2->status, 409) << dup2->body;
  EXPECT_EQ(Body(dup2)["master"]["path"], "facade.jpg");
  // The exact bytes again: "exact".
  auto again = Upload(uploader_, ReadFile(tmp_ / "new.jpg"));
  ASSERT_EQ(again->status, 409);
  EXPECT_EQ(Body(again)["kind"], "exact");
  // The image resource and its thumbnail.
  auto c = Client();
  auto img =
      c.Get("/api/v1/images/" + std::to_string(id), {{"Authorization", "Bearer " + uploader_}});
  ASSERT_EQ(img->status, 200) << img->body;
  EXPECT_EQ(Body(img)["width"], 1000);
  auto th = c.Get("/api/v1/images/" + std::to_string(id) + "/thumbnail",
                  {{"Authorization", "Bearer " + reviewer_}});
  ASSERT_EQ(th->status, 200);
  EXPECT_EQ(th->get_header_value("Content-Type"), "image/jpeg");
  EXPECT_EQ(th->body.substr(0, 2), "\xff\xd8");
  // Audit trail: one event per upload decision.
  auto cat = OpenCatalogue(db_, {});
  EventFilter f;
  f.type = "upload";
  auto events = (*cat)->ListEvents(f);
  ASSERT_EQ(events->size(), 4u);
  EXPECT_EQ(events->at(0).object, "file:" + std::to_string(id));
  EXPECT_EQ(json::parse(events->at(1).detail)["outcome"], "rejected");
}

TEST_F(ServerTest, KeysAndRolesAreChecked) {
  StartServer();
  MakeImage(tmp_ / "p.jpg", 640, 480, 11);
  const std::string bytes = ReadFile(tmp_ / "p.jpg");
  ExpectError(Upload("", bytes), 401, "unauthenticated");
  ExpectError(Upload("dpl_0000", bytes), 401, "unauthenticated");
  ExpectError(Upload(reviewer_, bytes), 403, "forbidden");              // wrong role
  ExpectError(Upload(urb_uploader_, bytes, "apur"), 403, "forbidden");  // other source
  // Without a key the body is never read: the answer comes before it is sent.
  std::string reply = RawExchange(
      "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
      "boundary=B\r\nContent-Length: 100000000\r\n\r\n",
      /*half_close=*/false);
  EXPECT_EQ(reply.rfind("HTTP/1.1 401", 0), 0u) << reply;
  auto c = Client();
  ExpectError(c.Get("/api/v1/clusters", {{"Authorization", "Bearer " + uploader_}}), 403,
              "forbidden");
  auto ok = c.Get("/api/v1/clusters", {{"Authorization", "Bearer " + reviewer_}});
  EXPECT_EQ(ok->status, 200);
  // Admins may upload anywhere; a revoked key stops working at once.
  EXPECT_EQ(Upload(admin_, bytes, "urb")->status, 201);
  auto cat = OpenCatalogue(db_, {});
  auto keys = (*cat)->ListApiKeys();
  ASSERT_TRUE((*cat)->RevokeApiKey(keys->at(0).id).ok());
  ExpectError(Upload(uploader_, bytes), 401, "unauthenticated");
  // Tokens are stored hashed: the token never appears in the catalogue file.
  EXPECT_EQ(ReadFile(db_).find(uploader_), std::string::npos);
  ExpectHealthy();
}

TEST_F(ServerTest, MalformedRequestsGetJsonErrorsAndTheServerStaysUp) {
  StartServer(/*max_body=*/2 << 20);
  auto c = Client();
  const httplib::Headers auth = {{"Authorization", "Bearer " + uploader_}};
  // Wrong content type.
  ExpectError(c.Post("/api/v1/uploads", auth, "hello", "application/octet-stream"), 415,
              "unsupported_media_type");
  ExpectHealthy();
  // Malformed multipart: a boundary that never appears.
  ExpectError(c.Post("/api/v1/uploads", auth, "garbage without boundaries",
                     "multipart/form-data; boundary=XYZ"),
              400, "bad_request");
  ExpectHealthy();
  // No picture in the form.
  httplib::MultipartFormDataItems only_source = {{"source", "apur", "", ""}};
  ExpectError(c.Post("/api/v1/uploads", auth, only_source), 400, "missing_image");
  // Not a picture.
  ExpectError(Upload(uploader_, std::string(5000, 'x')), 422, "unsupported_format");
  // A truncated JPEG.
  MakeImage(tmp_ / "t.jpg", 800, 600, 5);
  const std::string jpeg = ReadFile(tmp_ / "t.jpg");
  auto trunc = Upload(uploader_, jpeg.substr(0, jpeg.size() / 3));
  ASSERT_TRUE(trunc);
  EXPECT_EQ(trunc->status, 422) << trunc->body;
  ExpectHealthy();
  // A body cut off before its announced length: the connection ends, no crash.
  std::string head =
      "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + uploader_ +
      "\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 100000\r\n\r\n--B\r\n";
  const int files_before = FileCount();
  std::string reply = RawExchange(head);
  // Either the connection just ends or the server says the request was bad;
  // never a success, and nothing is stored.
  EXPECT_TRUE(reply.empty() || reply.rfind("HTTP/1.1 4", 0) == 0) << reply;
  EXPECT_EQ(FileCount(), files_before);
  ExpectHealthy();
  // Too large a body: 413 with a JSON error.
  ExpectError(Upload(uploader_, std::string(3 << 20, 'x')), 413, "body_too_large");
  ExpectHealthy();
  // A PNG header claiming 100000 x 100000 pixels: refused before decoding.
  auto huge = Upload(uploader_, PngHeaderOnly(100000, 100000), "apur", "huge.png");
  ExpectError(huge, 422, "too_many_pixels");
  ExpectHealthy();
  // Nothing was stored by any of these.
  EXPECT_EQ(FileCount(), 2);
}

TEST_F(ServerTest, SlowClientIsCutOffWhileOthersAreServed) {
  StartServer();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(server_->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string part = "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Le";
  ASSERT_EQ(send(fd, part.data(), part.size(), MSG_NOSIGNAL), ssize_t(part.size()));
  ExpectHealthy();  // served while the slow client stalls
  // The server gives up on the stalled request (read timeout 1 s): the
  // connection is closed without a response to our half-sent request.
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  // httplib may say 400 before closing; it must never process the request.
  std::string got;
  char buf[256];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, size_t(n));
  EXPECT_EQ(n, 0) << "the server never cut off the slow client";
  EXPECT_TRUE(got.empty() || got.rfind("HTTP/1.1 400", 0) == 0) << got;
  close(fd);
  ExpectHealthy();
}

TEST_F(ServerTest, ConcurrentUploadsOfOnePictureAcceptExactlyOne) {
  StartServer();
  MakeImage(tmp_ / "same.jpg", 900, 700, 21, "[Q=88]");
  const std::string bytes = ReadFile(tmp_ / "same.jpg");
  constexpr int kThreads = 8;
  std::atomic<int> created{0}, conflicts{0}, other{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; ++i)
    ts.emplace_back([&] {
      auto r = Upload(uploader_, bytes);
      if (r && r->status == 201)
        ++created;
      else if (r && r->status == 409)
        ++conflicts;
      else
        ++other;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(conflicts.load(), kThreads - 1);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(FileCount(), 3);
  ExpectHealthy();
}

TEST_F(ServerTest, PolicyAliasRecordsAndHoldKeepsBytesAside) {
  ASSERT_EQ(RunDoppel({"--db", db_, "source", "policy", "apur", "alias"}).exit_code, 0);
  auto shown = RunDoppel({"--db", db_, "source", "policy", "apur"});
  EXPECT_EQ(shown.out, "alias\n");
  StartServer();
  const std::string copy = ResizedJpeg(tmp_ / "apur" / "facade.jpg", 700);
  auto alias = Upload(uploader_, copy);
  ASSERT_EQ(alias->status, 409) << alias->body;
  EXPECT_EQ(Body(alias)["outcome"], "alias");
  EXPECT_GT(Body(alias)["upload_id"].get<int64_t>(), 0);
  ASSERT_EQ(RunDoppel({"--db", db_, "source", "policy", "apur", "hold"}).exit_code, 0);
  auto held = Upload(uploader_, ResizedJpeg(tmp_ / "apur" / "facade.jpg", 650));
  ASSERT_EQ(held->status, 409) << held->body;
  EXPECT_EQ(Body(held)["outcome"], "held");
  const std::string sha = Body(held)["sha256"];
  EXPECT_TRUE(fs::exists(tmp_ / "held" / "apur" / sha.substr(0, 2) / (sha + ".jpg")));
  auto c = Client();
  auto list = c.Get("/api/v1/uploads?outcome=held", {{"Authorization", "Bearer " + reviewer_}});
  ASSERT_EQ(list->status, 200);
  ASSERT_EQ(Body(list)["uploads"].size(), 1u);
  EXPECT_EQ(Body(list)["uploads"][0]["fields"]["title"], "Quai de la Tournelle");
  EXPECT_EQ(FileCount(), 2);  // neither became a file of the source
}

TEST_F(ServerTest, LookupFindsWithoutStoringAndRestartReloads) {
  StartServer();
  auto c = Client();
  const httplib::Headers auth = {{"Authorization", "Bearer " + uploader_}};
  httplib::MultipartFormDataItems items = {
      {"image", ResizedJpeg(tmp_ / "urb" / "bridge.png", 400), "b.jpg", "image/jpeg"}};
  auto r = c.Post("/api/v1/lookup", auth, items);
  ASSERT_EQ(r->status, 200) << r->body;
  json b = Body(r);
  EXPECT_TRUE(b["duplicate"].get<bool>());
  ASSERT_GE(b["matches"].size(), 1u);
  EXPECT_EQ(b["matches"][0]["path"], "bridge.png");
  // By PDQ hash.
  auto by_hash = c.Post("/api/v1/lookup", auth, json{{"pdq", b["pdq"]}}.dump(), "application/json");
  ASSERT_EQ(by_hash->status, 200) << by_hash->body;
  EXPECT_EQ(Body(by_hash)["matches"][0]["path"], "bridge.png");
  ExpectError(c.Post("/api/v1/lookup", auth, R"({"pdq":"xyz"})", "application/json"), 400,
              "invalid_pdq");
  EXPECT_EQ(FileCount(), 2);
  // An accepted upload is there after a restart (reloaded from the catalogue).
  MakeImage(tmp_ / "late.jpg", 800, 800, 33);
  auto up = Upload(uploader_, ReadFile(tmp_ / "late.jpg"));
  ASSERT_EQ(up->status, 201);
  StopServer();
  StartServer();
  EXPECT_EQ(server_->gate().size(), 3u);
  EXPECT_EQ(Upload(uploader_, ReadFile(tmp_ / "late.jpg"))->status, 409);
}

TEST_F(ServerTest, ReviewDecisionsPersistAndMetricsCount) {
  // A cluster: the bridge copied into apur, then matched by the CLI.
  testing::WriteFile(tmp_ / "apur" / "bridge-copy.jpg",
                     ResizedJpeg(tmp_ / "urb" / "bridge.png", 640));
  ASSERT_EQ(RunDoppel({"--db", db_, "scan"}).exit_code, 0);
  auto m = RunDoppel({"--db", db_, "match"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  StartServer();
  auto c = Client();
  const httplib::Headers auth = {{"Authorization", "Bearer " + reviewer_}};
  auto page = c.Get("/api/v1/clusters?page=1", auth);
  ASSERT_EQ(page->status, 200) << page->body;
  json p = Body(page);
  ASSERT_EQ(p["total"], 1);
  const int64_t cid = p["clusters"][0]["id"];
  auto one = c.Get("/api/v1/clusters/" + std::to_string(cid), auth);
  ASSERT_EQ(one->status, 200);
  ASSERT_EQ(Body(one)["members"].size(), 2u);
  const int64_t other = Body(one)["members"][1]["id"];
  auto dec =
      c.Post("/api/v1/clusters/" + std::to_string(cid) + "/decisions", auth,
             json{{"decision", "choose_master"}, {"master_id", other}}.dump(), "application/json");
  ASSERT_EQ(dec->status, 201) << dec->body;
  ExpectError(c.Post("/api/v1/clusters/" + std::to_string(cid) + "/decisions", auth,
                     R"({"decision":"maybe"})", "application/json"),
              400, "invalid_argument");
  ExpectError(c.Post("/api/v1/clusters/" + std::to_string(cid) + "/decisions", auth,
                     R"({"decision":"choose_master","master_id":999})", "application/json"),
              422, "not_a_member");
  auto cat = OpenCatalogue(db_, {});
  auto ds = (*cat)->ListDecisions(cid);
  ASSERT_EQ(ds->size(), 1u);
  EXPECT_EQ(ds->at(0).decision, "choose_master");
  EXPECT_EQ(ds->at(0).master_file_id, other);
  auto html = c.Get("/review");
  ASSERT_EQ(html->status, 200);
  EXPECT_NE(html->body.find("/review.js"), std::string::npos);
  auto script = c.Get("/review.js");
  ASSERT_EQ(script->status, 200);
  EXPECT_NE(script->body.find("sessionStorage"), std::string::npos);
  auto metrics = c.Get("/metrics");
  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(
      metrics->body.find(
          R"(doppel_http_requests_total{route="/api/v1/clusters/{id}/decisions",method="POST",code="201"} 1)"),
      std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("doppel_index_files 3"), std::string::npos);
  EXPECT_NE(metrics->body.find("doppel_http_request_duration_seconds_bucket"), std::string::npos);
}

TEST_F(ServerTest, KeyCommandsPrintTheTokenOnceAndListWithoutIt) {
  auto add =
      RunDoppel({"--db", db_, "key", "add", "urb", "--role", "reviewer", "--label", "desk 2"});
  ASSERT_EQ(add.exit_code, 0) << add.err;
  const std::string token = add.out.substr(0, add.out.find('\n'));
  EXPECT_EQ(token.rfind("dpl_", 0), 0u);
  EXPECT_EQ(token.size(), 68u);
  auto list = RunDoppel({"--db", db_, "key", "list", "--json"});
  ASSERT_EQ(list.exit_code, 0);
  EXPECT_EQ(list.out.find(token), std::string::npos);
  json keys = json::parse(list.out);
  ASSERT_EQ(keys.size(), 5u);
  EXPECT_EQ(keys[4]["label"], "desk 2");
  EXPECT_EQ(RunDoppel({"--db", db_, "key", "revoke", "5"}).exit_code, 0);
  EXPECT_EQ(RunDoppel({"--db", db_, "key", "revoke", "99"}).exit_code, 1);
  EXPECT_EQ(RunDoppel({"--db", db_, "key", "add", "urb", "--role", "king"}).exit_code, 2);
  EXPECT_EQ(RunDoppel({"--db", db_, "serve", "--help"}).exit_code, 0);
}

// Issue 12: the decode slots are a FIFO line with a bound. While every slot is
// held and the line is full, a hash lookup (no decode) is still answered, and
// a picture is refused at once with Retry-After; once the slots free up, the
// waiting requests are served and the line's numbers show in /metrics and the
// access log.
TEST_F(ServerTest, HashLookupsPassAFullDecodeLineAndPicturesAreRefusedAtOnce) {
  StartServer();  // 4 decode slots, a line of 16 (the default: 4 x slots)
  auto c = Client();
  const httplib::Headers auth = {{"Authorization", "Bearer " + uploader_}};
  const httplib::MultipartFormDataItems picture = {
      {"image", ResizedJpeg(tmp_ / "urb" / "bridge.png", 400), "b.jpg", "image/jpeg"}};
  auto first = c.Post("/api/v1/lookup", auth, picture);
  ASSERT_EQ(first->status, 200) << first->body;
  const std::string pdq = Body(first)["pdq"];

  server::AdmissionQueue& q = server_->decode_queue();
  std::vector<server::AdmissionQueue::Slot> held;
  for (int i = 0; i < 4; ++i) {
    auto s = q.Enter(nullptr);
    ASSERT_TRUE(s);
    held.push_back(std::move(*s));
  }
  // Sixteen pictures wait in line (as requests would, through the same queue).
  std::atomic<int> served{0};
  std::vector<std::thread> waiters;
  struct Cleanup {  // a failed ASSERT must not leave the waiters blocked
    std::vector<server::AdmissionQueue::Slot>& held;
    std::vector<std::thread>& threads;
    ~Cleanup() {
      held.clear();
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } cleanup{held, waiters};
  for (int i = 0; i < 16; ++i) {
    waiters.emplace_back([&] {
      if (q.Enter(nullptr)) ++served;
    });
    while (q.snapshot().waiting != i + 1) std::this_thread::yield();
  }

  auto by_hash = c.Post("/api/v1/lookup", auth, json{{"pdq", pdq}}.dump(), "application/json");
  ASSERT_TRUE(by_hash);
  EXPECT_EQ(by_hash->status, 200) << by_hash->body;
  EXPECT_EQ(Body(by_hash)["matches"][0]["path"], "bridge.png");

  auto refused = c.Post("/api/v1/lookup", auth, picture);
  ExpectError(refused, 503, "busy");
  ASSERT_TRUE(refused->has_header("Retry-After")) << refused->body;
  EXPECT_GE(std::stoi(refused->get_header_value("Retry-After")), 1);
  EXPECT_NE(refused->body.find("--decode-queue"), std::string::npos) << refused->body;
  auto up = Upload(uploader_, ReadFile(tmp_ / "apur" / "facade.jpg"));
  ExpectError(up, 503, "busy");
  EXPECT_TRUE(up->has_header("Retry-After"));
  EXPECT_EQ(q.snapshot().waiting, 16);  // the refusals did not join the line

  auto m = Client().Get("/metrics");
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("doppel_decode_refused_total 2\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("doppel_decode_queue_waiting 16\n"), std::string::npos);
  EXPECT_NE(m->body.find("doppel_decodes_in_flight 4\n"), std::string::npos);
  EXPECT_NE(m->body.find("doppel_decode_queue_limit 16\n"), std::string::npos);

  held.clear();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(served.load(), 16);
  auto again = Client().Post("/api/v1/lookup", auth, picture);
  ASSERT_EQ(again->status, 200) << again->body;

  m = Client().Get("/metrics");
  // The two lookups that were decoded: wait, depth and service recorded.
  EXPECT_NE(m->body.find("doppel_decode_queue_wait_seconds_count 2\n"), std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find("doppel_decode_service_seconds_count 2\n"), std::string::npos);
  EXPECT_NE(m->body.find("doppel_decode_queue_depth_bucket{le=\"0\"} 2\n"), std::string::npos);
  EXPECT_NE(m->body.find("doppel_decode_service_seconds_bucket{le=\"+Inf\"} 2\n"),
            std::string::npos);
  StopServer();  // the access log is complete
  int decoded = 0, refusals = 0;
  for (const auto& line : log_) {
    if (line.find("POST /api/v1/lookup 200") != std::string::npos &&
        line.find(" decode: ahead=0 wait=") != std::string::npos)
      ++decoded;
    if (line.find(" 503 ") != std::string::npos &&
        line.find("decode: refused position=17 retry-after=") != std::string::npos)
      ++refusals;
  }
  EXPECT_EQ(decoded, 2);
  EXPECT_EQ(refusals, 2);
}

}  // namespace
}  // namespace doppel
