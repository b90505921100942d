// Admission to the server's decode slots: first come, first served, with a
// bounded waiting line (docs/api.md, "Back-pressure").
//
// A request that needs to decode a picture either takes a free slot, waits in
// line for one, or is refused at once when the line is full. A request that
// was let into the line is always served: it waits for at most `max_waiting`
// decodes ahead of it divided among `slots` decoders (each decode is bounded by
// the server's --decode-timeout-ms and --max-pixels), and never times out.
// So a client never waits and then gets 503; the refusal carries an estimate
// of when to come back, from the measured decode times. The decodes
// themselves run on DecodeThreads (below), at a lower CPU priority than the
// requests that need no decode.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

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

// The threads that run the decodes, at a lower CPU priority than the HTTP
// workers (docs/api.md, "Back-pressure").
//
// A request that holds a decode slot hands its decode to one of these threads
// and waits for it. Each thread raises its own nice value by `nice` as it
// starts (Linux keeps a nice value per thread), so while decodes keep every
// core busy, a hash lookup, a review page or /metrics -- served by HTTP
// workers at the process's own priority -- gets a core as soon as it is ready
// instead of an equal share with the decodes. Linux weighs nice values within
// the process's scheduling group (its autogroup or cgroup): the decodes yield
// to the server's own requests, not to other programs any more than before.
// Threads a decode starts (libvips' workers) inherit the decode thread's
// value. Raising a nice value needs no privilege; lowering it back would, which
// is why decodes have threads of their own instead of renicing the worker.
class DecodeThreads {
 public:
  // `threads` >= 1 threads, each at the creating thread's nice value plus
  // `nice` (0-19; the sum is capped at 19, the lowest priority). Returns once
  // every thread runs at its priority.
  DecodeThreads(int threads, int nice);
  DecodeThreads(const DecodeThreads&) = delete;
  DecodeThreads& operator=(const DecodeThreads&) = delete;
  // Finishes the work handed over, then joins the threads.
  ~DecodeThreads();

  // Runs `work` on a decode thread and returns when it has run; an exception
  // it throws is rethrown here. Thread-safe. With more callers than threads
  // the extra ones wait for a free thread, in no particular order (the server
  // lets only as many requests in as there are threads: AdmissionQueue).
  void Run(const std::function<void()>& work);

  int threads() const { return int(threads_.size()); }
  // The nice value the decode threads run at, as each read it back from the
  // kernel after setting it (the smallest, should they differ): /metrics
  // shows it, tests check it.
  int nice() const { return nice_; }

 private:
  struct Job;
  void Loop(int target_nice);

  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_, ready_cv_;
  std::deque<Job*> jobs_;
  bool stopping_ = false;
  int started_ = 0;
  int nice_ = 19;
  std::vector<std::thread> threads_;
};

}  // namespace doppel::server
