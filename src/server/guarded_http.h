// httplib's server with limits it does not have itself (Debian 12 ships
// cpp-httplib 0.11, whose timeouts apply to each read: a client sending one
// header line every few seconds held a worker for ever):
//  - a total deadline for a request's line and headers, and another for its
//    body, however the bytes trickle in;
//  - at most N connections served at once per client address.
//
// How: httplib hands every accepted socket to the virtual
// process_and_close_socket(); this class overrides it with its own
// keep-alive loop over a Stream whose reads wait only until the current
// deadline, and calls httplib's own (protected) process_request for the HTTP
// itself. Everything else -- routing, handlers, multipart -- is httplib's.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace doppel::server {

struct ConnectionLimits {
  int header_timeout_ms = 10'000;  // request line + headers, from when the server is ready for them
  int body_timeout_ms = 120'000;   // the whole body, from the end of the headers
  int read_timeout_ms = 10'000;    // any one wait for bytes (as httplib's read timeout)
  int write_timeout_ms = 10'000;   // any one wait to send
  int keep_alive_ms = 5'000;       // an idle keep-alive connection is closed after this
  int max_per_ip = 8;              // connections served at once per client address; 0: no limit
};

class GuardedHttpServer : public httplib::Server {
 public:
  explicit GuardedHttpServer(const ConnectionLimits& limits) : limits_(limits) {}

  // Called with the client address of each connection refused by max_per_ip
  // (from a worker thread). May be empty.
  std::function<void(const std::string& ip)> on_refused;
  uint64_t refused() const { return refused_.load(); }

  // For handlers, on the thread serving the request. Ends the connection
  // after the current response (so an unread body is never taken for the
  // next request).
  static void CloseAfterResponse();
  // True if the current request's header or body deadline passed while it
  // was being read (the error handler answers 408).
  static bool RequestTimedOut();

 private:
  bool process_and_close_socket(socket_t sock) override;

  ConnectionLimits limits_;
  std::mutex mu_;
  std::map<std::string, int> per_ip_;  // connections being served, by client address
  std::atomic<uint64_t> refused_{0};
};

}  // namespace doppel::server
