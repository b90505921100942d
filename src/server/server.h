// `doppel serve`: the HTTP front end of the upload gate and the review page
// (docs/api.md). A front end, not library: it owns sockets and threads, but it
// still never prints; request lines go to the `log` callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "doppel/gate.h"
#include "doppel/status.h"

namespace doppel::server {

class AdmissionQueue;

struct ServerOptions {
  std::string catalogue;  // path of the SQLite catalogue
  std::string host = "127.0.0.1";
  int port = 8080;                      // 0: any free port (see Server::port)
  int64_t max_body_bytes = 64ll << 20;  // larger requests: 413
  int64_t max_pixels = 100'000'000;     // larger pictures: 422 (before decoding)
  int decode_slots = 2;                 // concurrent decodes; more wait in line (FIFO)
  int decode_queue = -1;                // pictures that may wait; more: 503 at once (-1: 4 x slots)
  int decode_timeout_ms = 20000;        // checked between fingerprinting stages: 422
  int read_timeout_s = 10;              // any one wait for bytes from a client
  // Added to the nice value of the threads that decode (0-19): under load,
  // requests that need no decode get the cores first (DecodeThreads).
  int decode_nice = 10;
  // Totals, however slowly the bytes trickle in: a request's line and headers
  // within header_timeout_s of the server being ready for them (idle
  // keep-alive time included), its body within body_timeout_s after that.
  int header_timeout_s = 10;
  int body_timeout_s = 120;
  // Connections served at once per client address (0: no limit); more are
  // answered 503 unread. Behind a reverse proxy every client has the proxy's
  // address: raise it or set 0 there.
  int max_connections_per_ip = 8;
  // Workers besides one per decode slot and one per place in the decode
  // line; more than max_connections_per_ip, so one address cannot hold them all.
  int http_threads = 16;
  int thumbnail_cache = 512;  // thumbnails kept in memory (LRU)
  // A PDQ-hash lookup lists at most this many files (closest first); its
  // radius is at most gate.match.threshold.
  int max_lookup_matches = 20;
  int refresh_seconds = 30;  // look for a finished `doppel match` this often (0: never)
  GateOptions gate;
  // One line per request ("POST /api/v1/uploads 201 12.3 ms"); may be empty.
  std::function<void(const std::string&)> log;
};

class Server {
 public:
  // Opens the gate (loads the index) and sets up the routes; binds nothing yet.
  static Result<std::unique_ptr<Server>> Create(const ServerOptions& options);
  ~Server();

  // Binds the listening socket (kIOError if the address is taken).
  Status Bind();
  int port() const;  // after Bind
  // Serves until Stop() (from another thread or a signal handler's helper thread).
  Status Run();
  void Stop();
  Gate& gate();
  // The line for the decode slots (tests hold slots through it).
  AdmissionQueue& decode_queue();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The review page (HTML and CSS, served at /review) and its script (served at
// /review.js; no inline script, see the page's Content-Security-Policy).
const char* ReviewPageHtml();
const char* ReviewPageScript();

}  // namespace doppel::server
