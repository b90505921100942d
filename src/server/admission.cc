#include "server/admission.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <exception>

namespace doppel::server {
namespace {

// Weight of the newest decode in the estimate: about the last ten count.
constexpr double kEwmaWeight = 0.2;

}  // namespace

int RetryAfterSeconds(double mean_service_seconds, int64_t position, int slots) {
  const double s = std::max(0.0, mean_service_seconds) * double(std::max<int64_t>(position, 1)) /
                   double(std::max(slots, 1));
  // Capped so a wild estimate cannot tell a client to go away for a day.
  return int(std::clamp(std::ceil(s), 1.0, 3600.0));
}

AdmissionQueue::AdmissionQueue(int slots, int max_waiting)
    : slots_(std::max(1, slots)), max_waiting_(std::max(0, max_waiting)), free_(slots_) {}

AdmissionQueue::Slot::Slot(Slot&& o) noexcept
    : q_(o.q_), wait_s_(o.wait_s_), ahead_(o.ahead_), start_(o.start_) {
  o.q_ = nullptr;
}

void AdmissionQueue::Slot::Release() {
  if (!q_) return;
  q_->Give(std::chrono::duration<double>(Clock::now() - start_).count());
  q_ = nullptr;
}

std::optional<AdmissionQueue::Slot> AdmissionQueue::Enter(Refusal* refusal) {
  const auto arrived = Clock::now();
  std::unique_lock lk(mu_);
  const int64_t waiting = int64_t(next_ticket_ - head_ticket_);
  // Nobody in line and a slot free: no need to queue. (When someone waits,
  // a free slot is theirs even if they have not woken up yet.)
  if (waiting == 0 && free_ > 0) {
    --free_;
    ++admitted_;
    return Slot(this, 0, 0);
  }
  if (waiting >= max_waiting_) {
    ++refused_;
    if (refusal) {
      refusal->position = waiting + 1;
      refusal->retry_after_s = RetryAfterSeconds(mean_service_s_, waiting + 1, slots_);
    }
    return std::nullopt;
  }
  const uint64_t ticket = next_ticket_++;
  cv_.wait(lk, [&] { return head_ticket_ == ticket && free_ > 0; });
  ++head_ticket_;
  --free_;
  ++admitted_;
  // Several slots may have come free while the head slept: the next in line
  // checks again rather than waiting for another release.
  if (free_ > 0 && head_ticket_ != next_ticket_) cv_.notify_all();
  lk.unlock();
  return Slot(this, std::chrono::duration<double>(Clock::now() - arrived).count(), waiting);
}

void AdmissionQueue::Give(double service_s) {
  {
    std::lock_guard lk(mu_);
    ++free_;
    mean_service_s_ =
        measured_ ? mean_service_s_ + kEwmaWeight * (service_s - mean_service_s_) : service_s;
    measured_ = true;
  }
  // Every waiter re-checks its ticket; only the head proceeds. The line is
  // short (bounded by max_waiting), so waking all of them is cheap.
  cv_.notify_all();
}

AdmissionQueue::Snapshot AdmissionQueue::snapshot() const {
  std::lock_guard lk(mu_);
  Snapshot s;
  s.slots = slots_;
  s.max_waiting = max_waiting_;
  s.in_service = slots_ - free_;
  s.waiting = int64_t(next_ticket_ - head_ticket_);
  s.admitted = admitted_;
  s.refused = refused_;
  s.mean_service_s = mean_service_s_;
  return s;
}

struct DecodeThreads::Job {
  const std::function<void()>* work;
  std::exception_ptr error;
  bool done = false;
};

DecodeThreads::DecodeThreads(int threads, int nice) {
  // The new threads start at this thread's nice value (Linux copies it).
  const int target = std::min(19, ::getpriority(PRIO_PROCESS, 0) + std::clamp(nice, 0, 19));
  const int n = std::max(1, threads);
  threads_.reserve(size_t(n));
  for (int i = 0; i < n; ++i) threads_.emplace_back([this, target] { Loop(target); });
  std::unique_lock lk(mu_);
  ready_cv_.wait(lk, [&] { return started_ == n; });
}

DecodeThreads::~DecodeThreads() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void DecodeThreads::Loop(int target_nice) {
  // PRIO_PROCESS with a thread id sets that one thread (Linux). errno tells a
  // nice value of -1 from a failure; on failure the thread keeps the
  // creator's priority, and nice() says so.
  const pid_t tid = ::gettid();
  ::setpriority(PRIO_PROCESS, id_t(tid), target_nice);
  errno = 0;
  int now = ::getpriority(PRIO_PROCESS, id_t(tid));
  if (now == -1 && errno != 0) now = 0;
  std::unique_lock lk(mu_);
  nice_ = started_ == 0 ? now : std::min(nice_, now);
  ++started_;
  ready_cv_.notify_all();
  for (;;) {
    work_cv_.wait(lk, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and nothing left to do
    Job* job = jobs_.front();
    jobs_.pop_front();
    lk.unlock();
    try {
      (*job->work)();
    } catch (...) {
      job->error = std::current_exception();
    }
    lk.lock();
    job->done = true;
    done_cv_.notify_all();
  }
}

void DecodeThreads::Run(const std::function<void()>& work) {
  Job job{&work, nullptr, false};
  {
    std::unique_lock lk(mu_);
    jobs_.push_back(&job);
    work_cv_.notify_one();
    done_cv_.wait(lk, [&] { return job.done; });
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace doppel::server
