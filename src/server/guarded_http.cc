#include "server/guarded_http.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

namespace doppel::server {
namespace {

using Clock = std::chrono::steady_clock;

// An httplib::Stream over a connected socket whose reads never wait past the
// deadline of the request being read.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(int fd, const ConnectionLimits& limits) : fd_(fd), limits_(limits) {}

  void SetDeadline(Clock::time_point d) { deadline_ = d; }
  void BeginRequest(Clock::time_point deadline) {
    deadline_ = deadline;
    timed_out_ = false;
  }
  bool timed_out() const { return timed_out_; }
  bool close_requested = false;

  // Waits (in short slices, so a stopping server is noticed) for the first
  // byte of the next request; false if none comes within `ms` or the peer
  // closed or `stopping()`.
  template <class Stopping>
  bool WaitForRequest(int ms, Stopping stopping) {
    if (off_ < len_) return true;
    const auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (!stopping()) {
      const auto left = until - Clock::now();
      if (left <= Clock::duration::zero()) return false;
      const int slice = int(std::min<int64_t>(
          100, std::chrono::duration_cast<std::chrono::milliseconds>(left).count() + 1));
      pollfd p{fd_, POLLIN, 0};
      const int n = ::poll(&p, 1, slice);
      if (n < 0 && errno != EINTR) return false;
      if (n > 0) {
        // Readable with nothing to read: the peer closed.
        char c;
        return ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
      }
    }
    return false;
  }

  bool is_readable() const override { return off_ < len_ || Wait(POLLIN, ReadWaitMs()); }
  bool is_writable() const override { return Wait(POLLOUT, limits_.write_timeout_ms); }

  ssize_t read(char* ptr, size_t size) override {
    if (off_ == len_) {
      if (!Wait(POLLIN, ReadWaitMs())) {
        if (Clock::now() >= deadline_) timed_out_ = true;
        return -1;
      }
      ssize_t n;
      do n = ::recv(fd_, buf_, sizeof buf_, 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      off_ = 0;
      len_ = size_t(n);
    }
    const size_t k = std::min(size, len_ - off_);
    std::memcpy(ptr, buf_ + off_, k);
    off_ += k;
    return ssize_t(k);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n;
    do n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Address(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Address(::getsockname, ip, port);
  }
  socket_t socket() const override { return fd_; }

  static void Address(int (*get)(int, sockaddr*, socklen_t*), int fd, std::string& ip, int& port) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (get(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
        ::getnameinfo(reinterpret_cast<sockaddr*>(&a), len, host, sizeof host, serv, sizeof serv,
                      NI_NUMERICHOST | NI_NUMERICSERV) != 0)
      return;
    ip = host;
    port = std::atoi(serv);
  }

 private:
  void Address(int (*get)(int, sockaddr*, socklen_t*), std::string& ip, int& port) const {
    Address(get, fd_, ip, port);
  }
  // The per-read timeout, shortened to what is left before the deadline.
  int ReadWaitMs() const {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    return int(std::clamp<int64_t>(left, 0, limits_.read_timeout_ms));
  }
  bool Wait(short events, int ms) const {
    pollfd p{fd_, events, 0};
    int n;
    do n = ::poll(&p, 1, ms);
    while (n < 0 && errno == EINTR);
    return n > 0 && !(p.revents & (POLLERR | POLLNVAL));
  }

  int fd_;
  const ConnectionLimits& limits_;
  Clock::time_point deadline_ = Clock::time_point::max();
  mutable bool timed_out_ = false;
  char buf_[4096];
  size_t off_ = 0, len_ = 0;
};

thread_local DeadlineStream* current_stream = nullptr;

// Answers 503 on a connection refused by the per-address limit, without
// reading the request.
void Refuse(int fd, const std::string& ip, int limit) {
  const std::string body =
      nlohmann::json{{"error",
                      {{"code", "too_many_connections"},
                       {"message", "client " + ip + " already has " + std::to_string(limit) +
                                       " connections open (the server's "
                                       "--max-connections-per-ip); close one and retry"}}}}
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::string head =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
      "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  const std::string all = head + body;
  (void)::send(fd, all.data(), all.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  // Drain what already arrived, so closing does not reset the connection
  // (and discard the answer) at the client.
  char sink[4096];
  while (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
}

}  // namespace

void GuardedHttpServer::CloseAfterResponse() {
  if (current_stream) current_stream->close_requested = true;
}

bool GuardedHttpServer::RequestTimedOut() { return current_stream && current_stream->timed_out(); }

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  std::string ip;
  int port = 0;
  DeadlineStream::Address(::getpeername, sock, ip, port);
  bool admitted = true;
  if (limits_.max_per_ip > 0) {
    std::lock_guard lk(mu_);
    int& n = per_ip_[ip];
    if (n >= limits_.max_per_ip)
      admitted = false;
    else
      ++n;
  }
  bool ret = false;
  if (!admitted) {
    ++refused_;
    if (on_refused) on_refused(ip);
    Refuse(sock, ip, limits_.max_per_ip);
  } else {
    DeadlineStream strm(sock, limits_);
    current_stream = &strm;
    auto stopping = [this] { return svr_sock_ == INVALID_SOCKET; };
    const auto ms = [](int v) { return std::chrono::milliseconds(v); };
    for (size_t count = std::max<size_t>(1, keep_alive_max_count_); count > 0 && !stopping();
         --count) {
      // The header deadline runs from the moment the server is ready for
      // the request, idle time included.
      strm.BeginRequest(Clock::now() + ms(limits_.header_timeout_ms));
      if (!strm.WaitForRequest(std::min(limits_.keep_alive_ms, limits_.header_timeout_ms),
                               stopping))
        break;
      bool closed = false;
      // Called by httplib once the headers are read, before the body.
      auto headers_done = [&](httplib::Request&) {
        strm.SetDeadline(Clock::now() + ms(limits_.body_timeout_ms));
      };
      ret = process_request(strm, count == 1, closed, headers_done);
      if (!ret || closed || strm.close_requested) break;
    }
    current_stream = nullptr;
    if (limits_.max_per_ip > 0) {
      std::lock_guard lk(mu_);
      if (--per_ip_[ip] <= 0) per_ip_.erase(ip);
    }
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ret;
}

}  // namespace doppel::server
