// The decode line of the HTTP server (src/server/admission.h) with real
// threads. No assertion depends on timing: each test waits for the queue's own
// state (how many wait) before the next step, and a lost wakeup shows as a hang
// (ctest's timeout), not as a flaky number.
#include "server/admission.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace doppel::server {
namespace {

// Blocks until `n` requests wait in line.
void AwaitWaiting(const AdmissionQueue& q, int64_t n) {
  while (q.snapshot().waiting != n) std::this_thread::yield();
}

TEST(AdmissionQueueTest, WaitersAreServedInArrivalOrder) {
  AdmissionQueue q(1, 16);
  auto first = q.Enter(nullptr);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->queued_behind(), 0);
  std::mutex mu;
  std::vector<int> served;
  std::vector<int64_t> ahead;
  std::vector<std::thread> threads;
  constexpr int kWaiters = 12;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      auto slot = q.Enter(nullptr);
      ASSERT_TRUE(slot) << "waiter " << i << " was refused";
      std::lock_guard lk(mu);
      served.push_back(i);
      ahead.push_back(slot->queued_behind());
    });
    AwaitWaiting(q, i + 1);  // waiter i has its place before i + 1 comes
  }
  first->Release();
  for (auto& t : threads) t.join();
  std::vector<int> expected(kWaiters);
  for (int i = 0; i < kWaiters; ++i) expected[size_t(i)] = i;
  EXPECT_EQ(served, expected);
  for (int i = 0; i < kWaiters; ++i) EXPECT_EQ(ahead[size_t(i)], i);
  const auto s = q.snapshot();
  EXPECT_EQ(s.admitted, kWaiters + 1);
  EXPECT_EQ(s.refused, 0);
  EXPECT_EQ(s.in_service, 0);
  EXPECT_EQ(s.waiting, 0);
}

TEST(AdmissionQueueTest, AFullLineRefusesAtOnceAndTheQueuedAreAllServed) {
  AdmissionQueue q(2, 3);
  auto a = q.Enter(nullptr);
  auto b = q.Enter(nullptr);
  ASSERT_TRUE(a && b);
  std::atomic<int> served{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      if (q.Enter(nullptr)) ++served;
    });
    AwaitWaiting(q, i + 1);
  }
  // The line holds 3: the fourth is refused in this thread, without waiting
  // (if it waited, nothing would ever release a slot and the test would hang).
  AdmissionQueue::Refusal r;
  EXPECT_FALSE(q.Enter(&r));
  EXPECT_EQ(r.position, 4);
  EXPECT_GE(r.retry_after_s, 1);
  auto s = q.snapshot();
  EXPECT_EQ(s.refused, 1);
  EXPECT_EQ(s.waiting, 3);
  EXPECT_EQ(s.in_service, 2);
  a->Release();
  b->Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(served.load(), 3);  // every request let into the line was served
  s = q.snapshot();
  EXPECT_EQ(s.in_service, 0);
  EXPECT_EQ(s.waiting, 0);
  EXPECT_TRUE(q.Enter(nullptr));  // and the line takes requests again
}

TEST(AdmissionQueueTest, WithoutALineABusySlotMeansRefusal) {
  AdmissionQueue q(1, 0);
  auto a = q.Enter(nullptr);
  ASSERT_TRUE(a);
  AdmissionQueue::Refusal r;
  EXPECT_FALSE(q.Enter(&r));
  EXPECT_EQ(r.position, 1);
  a->Release();
  EXPECT_TRUE(q.Enter(&r));
}

TEST(AdmissionQueueTest, ManyThreadsNeverExceedTheSlotsAndNoneIsLeftWaiting) {
  constexpr int kSlots = 2, kThreads = 16, kRounds = 300;
  AdmissionQueue q(kSlots, kThreads);  // room for everyone: nothing is refused
  std::atomic<int> inside{0}, most{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        auto slot = q.Enter(nullptr);
        if (!slot) continue;
        const int now = ++inside;
        int m = most.load();
        while (now > m && !most.compare_exchange_weak(m, now)) {
        }
        --inside;
        slot->Release();
        ++done;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), kThreads * kRounds);
  EXPECT_LE(most.load(), kSlots);
  const auto s = q.snapshot();
  EXPECT_EQ(s.refused, 0);
  EXPECT_EQ(s.admitted, kThreads * kRounds);
  EXPECT_EQ(s.in_service, 0);
  EXPECT_EQ(s.waiting, 0);
}

// Two slots come free before the head of the line wakes up: the second in
// line must take the second slot without waiting for a third release. Here
// the first keeps its slot until the second has one, so a missed wakeup
// hangs the test.
TEST(AdmissionQueueTest, SlotsFreedTogetherServeTheNextTwoInLine) {
  for (int round = 0; round < 300; ++round) {
    AdmissionQueue q(2, 4);
    auto a = q.Enter(nullptr);
    auto b = q.Enter(nullptr);
    ASSERT_TRUE(a && b);
    std::atomic<bool> second_in{false};
    std::thread first([&] {
      auto s = q.Enter(nullptr);
      while (!second_in.load()) std::this_thread::yield();
    });
    AwaitWaiting(q, 1);
    std::thread second([&] {
      auto s = q.Enter(nullptr);
      second_in = true;
    });
    AwaitWaiting(q, 2);
    a->Release();
    b->Release();
    first.join();
    second.join();
    ASSERT_EQ(q.snapshot().admitted, 4);
  }
}

TEST(AdmissionQueueTest, MovingASlotGivesItBackOnce) {
  AdmissionQueue q(1, 0);
  {
    auto a = q.Enter(nullptr);
    ASSERT_TRUE(a);
    AdmissionQueue::Slot moved(std::move(*a));
    a.reset();  // the moved-from slot gives nothing back
    EXPECT_EQ(q.snapshot().in_service, 1);
  }
  EXPECT_EQ(q.snapshot().in_service, 0);
  EXPECT_GT(q.snapshot().admitted, 0);
}

TEST(AdmissionQueueTest, RetryAfterScalesWithDecodeTimeAndPlaceInLine) {
  EXPECT_EQ(RetryAfterSeconds(0, 1, 1), 1);     // nothing measured yet
  EXPECT_EQ(RetryAfterSeconds(0.03, 9, 2), 1);  // 0.135 s: at least one second
  EXPECT_EQ(RetryAfterSeconds(0.5, 9, 2), 3);   // 2.25 s, rounded up
  EXPECT_EQ(RetryAfterSeconds(2.0, 5, 1), 10);
  EXPECT_EQ(RetryAfterSeconds(2.0, 5, 4), 3);       // more slots drain the line sooner
  EXPECT_EQ(RetryAfterSeconds(1e9, 100, 1), 3600);  // capped
}

// The nice value of the calling thread, as the kernel has it.
int MyNice() { return ::getpriority(PRIO_PROCESS, id_t(::gettid())); }

TEST(DecodeThreadsTest, DecodesRunOnThreadsOfTheirOwnAtALowerPriority) {
  const int mine = MyNice();
  if (mine > 19 - 5) GTEST_SKIP() << "the test runs at nice " << mine << ": no room to lower";
  DecodeThreads decoders(2, 5);
  EXPECT_EQ(decoders.threads(), 2);
  EXPECT_EQ(decoders.nice(), mine + 5);
  pid_t worker = ::gettid();
  int worker_nice = mine, child_nice = mine;
  decoders.Run([&] {
    worker = ::gettid();
    worker_nice = MyNice();
    // A thread a decode starts (libvips' workers) inherits the priority.
    std::thread([&] { child_nice = MyNice(); }).join();
  });
  EXPECT_NE(worker, ::gettid());
  EXPECT_EQ(worker_nice, mine + 5);
  EXPECT_EQ(child_nice, mine + 5);
  EXPECT_EQ(MyNice(), mine) << "the caller (an HTTP worker) keeps its priority";
}

TEST(DecodeThreadsTest, NiceZeroKeepsThePriorityAndNineteenIsTheFloor) {
  const int mine = MyNice();
  {
    DecodeThreads same(1, 0);
    EXPECT_EQ(same.nice(), mine);
    int seen = -100;
    same.Run([&] { seen = MyNice(); });
    EXPECT_EQ(seen, mine);
  }
  DecodeThreads lowest(1, 19);
  EXPECT_EQ(lowest.nice(), 19);
  int seen = -100;
  lowest.Run([&] { seen = MyNice(); });
  EXPECT_EQ(seen, 19);
}

TEST(DecodeThreadsTest, EveryCallerGetsItsOwnWorkDoneBeforeRunReturns) {
  DecodeThreads decoders(2, 1);
  constexpr int kCallers = 8, kJobs = 200;
  std::vector<int> done(kCallers, 0);
  std::atomic<int> late{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      for (int j = 0; j < kJobs; ++j) {
        bool ran = false;
        decoders.Run([&] {
          ran = true;
          ++done[size_t(c)];  // only this caller's job touches its count
        });
        if (!ran) ++late;
      }
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(late.load(), 0);
  for (int c = 0; c < kCallers; ++c) EXPECT_EQ(done[size_t(c)], kJobs) << "caller " << c;
  EXPECT_THROW(decoders.Run([] { throw std::runtime_error("decoder failed"); }),
               std::runtime_error);
  bool after = false;
  decoders.Run([&] { after = true; });  // a throwing job does not lose a thread
  EXPECT_TRUE(after);
}

}  // namespace
}  // namespace doppel::server
