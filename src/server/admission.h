// Admission to the server's decode slots: first come, first served, with a
// bounded waiting line (docs/api.md, "Back-pressure").
//
// A request that needs to decode a picture either takes a free slot, waits in
// line for one, or is refused at once when the line is full. A request that
// was let into the line is always served: it waits for at most `max_waiting`
// decodes ahead of it divided among `slots` decoders (each decode is bounded by
// the server's --decode-timeout-ms and --max-pixels), and never times out.
// So a client never waits and then gets 503; the refusal carries an estimate
// of when to come back, from the measured decode times.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>

namespace doppel::server {

// Seconds a refused client should wait before retrying (the HTTP Retry-After
// value): the average decode time x the place the request would have had in
// line / the number of slots, rounded up to whole seconds, at least 1.
int RetryAfterSeconds(double mean_service_seconds, int64_t position, int slots);

class AdmissionQueue {
 public:
  using Clock = std::chrono::steady_clock;

  // `slots` >= 1 decodes at once; at most `max_waiting` >= 0 requests wait.
  AdmissionQueue(int slots, int max_waiting);
  AdmissionQueue(const AdmissionQueue&) = delete;
  AdmissionQueue& operator=(const AdmissionQueue&) = delete;

  // A held decode slot; given back when destroyed (or by Release()). The time
  // it was held is the decode's service time, which feeds the estimate.
  class Slot {
   public:
    Slot(Slot&& o) noexcept;
    Slot& operator=(Slot&&) = delete;
    ~Slot() { Release(); }
    void Release();
    double wait_seconds() const { return wait_s_; }
    int64_t queued_behind() const { return ahead_; }  // requests in line ahead on arrival

   private:
    friend class AdmissionQueue;
    Slot(AdmissionQueue* q, double wait_s, int64_t ahead)
        : q_(q), wait_s_(wait_s), ahead_(ahead), start_(Clock::now()) {}
    AdmissionQueue* q_;
    double wait_s_;
    int64_t ahead_;
    Clock::time_point start_;
  };

  struct Refusal {
    int64_t position = 0;   // the place in line the request would have had (1 = next)
    int retry_after_s = 1;  // see RetryAfterSeconds
  };

  // Takes a slot, waiting in line if every slot is busy; or, when `max_waiting`
  // requests already wait, returns nullopt at once and fills `refusal`.
  // Thread-safe; waiters are served strictly in arrival order.
  std::optional<Slot> Enter(Refusal* refusal);

  // A consistent picture for /metrics and tests.
  struct Snapshot {
    int slots = 0;
    int max_waiting = 0;
    int in_service = 0;         // slots held now
    int64_t waiting = 0;        // requests in line now
    int64_t admitted = 0;       // slots handed out since start
    int64_t refused = 0;        // refusals since start
    double mean_service_s = 0;  // the decode-time estimate (EWMA)
  };
  Snapshot snapshot() const;

 private:
  void Give(double service_s);

  const int slots_;
  const int max_waiting_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int free_;
  // Tickets: next_ticket_ is given to the next arrival that must wait;
  // head_ticket_ is the ticket allowed to take the next free slot. Waiting
  // requests are exactly the tickets in [head_ticket_, next_ticket_).
  uint64_t next_ticket_ = 0;
  uint64_t head_ticket_ = 0;
  int64_t admitted_ = 0;
  int64_t refused_ = 0;
  double mean_service_s_ = 0;
  bool measured_ = false;
};

}  // namespace doppel::server
