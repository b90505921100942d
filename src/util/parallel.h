// The one way doppel runs work on several threads: a fixed set of workers
// that each pull work items from a shared counter, joined before returning.
// Per-worker state (scratch buffers, caches) lives in the body's frame.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace doppel {

// `jobs` if positive, else the number of hardware threads (at least 1).
inline int ResolveJobs(int jobs) {
  return jobs > 0 ? jobs : int(std::max(1u, std::thread::hardware_concurrency()));
}

// Runs body(worker) for worker = 0 .. ResolveJobs(jobs)-1, on that many
// threads (the last on the calling thread), and returns when all are done.
// The body must not throw.
template <class Body>
void RunWorkers(int jobs, Body&& body) {
  const int n = ResolveJobs(jobs);
  std::vector<std::thread> pool;
  pool.reserve(size_t(n - 1));
  for (int w = 0; w < n - 1; ++w) pool.emplace_back([&body, w] { body(w); });
  body(n - 1);
  for (auto& t : pool) t.join();
}

// Hands out the indexes 0 .. size-1 once each, in order, to whichever
// worker asks next.
class WorkCounter {
 public:
  explicit WorkCounter(size_t size) : size_(size) {}
  // The next index, or false when all were handed out.
  bool Next(size_t& index) {
    index = next_.fetch_add(1, std::memory_order_relaxed);
    return index < size_;
  }

 private:
  const size_t size_;
  std::atomic<size_t> next_{0};
};

// Calls body(worker, i) once for every i in 0 .. size-1 on ResolveJobs(jobs)
// threads; stops handing out indexes once stop() returns true.
template <class Body, class Stop>
void ParallelFor(size_t size, int jobs, Body&& body, Stop&& stop) {
  WorkCounter work(size);
  RunWorkers(jobs, [&](int worker) {
    for (size_t i; !stop() && work.Next(i);) body(worker, i);
  });
}

}  // namespace doppel
