// event_loop on every backend: timers, cross-thread post(), stale events (case 13), and
// select's FD_SETSIZE limit.
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "netkit/error.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/process.hpp"
#include "support/backend_params.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/test_env.hpp"

namespace netkit {
namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;

struct counting_handler final : io_handler {
  std::function<void(std::uint32_t)> fn;
  int calls = 0;
  std::uint32_t last = 0;
  void on_io(std::uint32_t events) override {
    ++calls;
    last = events;
    if (fn) fn(events);
  }
};

class loop_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }
};

TEST_P(loop_test, timers_fire_in_deadline_order_and_cancel_works) {
  test::fd_leak_guard guard;
  event_loop loop(GetParam());
  std::vector<int> order;
  loop.run_after(30ms, [&] { order.push_back(3); });
  loop.run_after(10ms, [&] { order.push_back(1); });
  auto cancelled = loop.run_after(20ms, [&] { order.push_back(99); });
  loop.run_after(20ms, [&] { order.push_back(2); });
  loop.cancel(cancelled);
  int ticks = 0;
  timer_id every = 0;
  every = loop.run_every(5ms, [&] {
    if (++ticks == 3) loop.cancel(every);  // a periodic timer may cancel itself
  });
  auto start = event_loop::clock::now();
  // Bound: 200 turns of at most 10 ms.
  for (int i = 0; i < 200 && (order.size() < 3 || ticks < 3); ++i)
    loop.run_once(10ms);
  EXPECT_THAT(order, testing::ElementsAre(1, 2, 3));
  EXPECT_EQ(ticks, 3);
  EXPECT_GE(event_loop::clock::now() - start, 30ms);
  for (int i = 0; i < 3; ++i)
    loop.run_once(10ms);
  EXPECT_EQ(ticks, 3) << "cancelled periodic timer fired again";
}

// defer(task): runs once after the turn however often it was queued, may queue itself
// again for the next turn, and a cancelled task (even one queued behind the running one)
// never runs.
TEST_P(loop_test, deferred_tasks_run_once_per_queueing_and_cancel_drops_them) {
  struct counting_task final : deferred_task {
    std::function<void()> fn;
    int runs = 0;
    void run() override {
      ++runs;
      if (fn) fn();
    }
  };
  event_loop loop(GetParam());
  counting_task once, again, victim;
  loop.defer(once);
  loop.defer(once);
  EXPECT_TRUE(once.queued());
  int requeued = 0;
  again.fn = [&] {
    if (++requeued < 3) loop.defer(again);
  };
  loop.defer(again);
  once.fn = [&] { loop.cancel(victim); };  // queued behind it in the same turn
  loop.defer(victim);
  for (int i = 0; i < 5; ++i)
    loop.run_once(1ms);
  EXPECT_EQ(once.runs, 1);
  EXPECT_FALSE(once.queued());
  EXPECT_EQ(again.runs, 3) << "a task that queues itself runs on the next turn";
  EXPECT_EQ(victim.runs, 0) << "a cancelled task ran";
  loop.defer(victim);
  loop.cancel(victim);
  loop.run_once(1ms);
  EXPECT_EQ(victim.runs, 0);
}

TEST_P(loop_test, post_from_another_thread_wakes_a_blocked_loop) {
  test::fd_leak_guard guard;
  event_loop loop(GetParam());
  std::atomic<std::thread::id> ran_on{};
  auto t0 = event_loop::clock::now();
  std::thread poster([&] {
    std::this_thread::sleep_for(50ms);
    loop.post([&] {
      ran_on = std::this_thread::get_id();
      loop.stop();
    });
  });
  std::thread::id loop_thread = std::this_thread::get_id();
  // run() would block forever without the wake-up; the 5 s watchdog bounds a failure.
  std::thread watchdog([&] {
    for (int i = 0; i < 500 && ran_on.load() == std::thread::id{}; ++i)
      std::this_thread::sleep_for(10ms);
    loop.stop();
  });
  loop.run();
  poster.join();
  watchdog.join();
  EXPECT_EQ(ran_on.load(), loop_thread);
  EXPECT_LT(event_loop::clock::now() - t0, 2s);
}

// Several loops in one process (multi-reactor): a stop signal belongs to the loop that
// called stop_on_signals(); another loop turning in another thread must not consume it,
// or the owner wakes up to find no signal and keeps running.
TEST_P(loop_test, stop_signal_reaches_its_loop_while_another_loop_turns) {
  test::fd_leak_guard guard;
  struct sigaction old {};
  ::sigaction(SIGUSR2, nullptr, &old);
  const int attempts = 30;
  int missed = 0;
  for (int i = 0; i < attempts; ++i) {
    event_loop owner(GetParam());
    event_loop other(GetParam());
    owner.stop_on_signals({SIGUSR2});
    std::atomic<bool> done{false};
    std::thread busy([&] {
      // Bound: until `done` (set below, after at most 0.5 s).
      while (!done.load())
        other.run_once(0ms);
    });
    std::this_thread::sleep_for(2ms);
    ::kill(::getpid(), SIGUSR2);
    // Bound: 50 turns of at most 10 ms.
    for (int turn = 0; turn < 50 && owner.stop_signal() == 0; ++turn)
      owner.run_once(10ms);
    if (owner.stop_signal() != SIGUSR2) ++missed;
    done.store(true);
    busy.join();
  }
  ::sigaction(SIGUSR2, &old, nullptr);
  EXPECT_EQ(missed, 0) << "of " << attempts << " stop signals, the owning loop missed " << missed;
}

// Case 13: two readable descriptors in one batch; the first handler to run unwatches and
// closes the other, and puts a new (not readable) descriptor on the same number and
// watches it → the queued event for the old watch is dropped; the new watch gets no
// phantom event, and does get real ones later.
TEST_P(loop_test, stale_event_never_reaches_a_reused_descriptor) {
  test::fd_leak_guard guard;
  event_loop loop(GetParam());
  int a[2], b[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, a), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, b), 0);
  unique_fd a0(a[0]), a1(a[1]), b0(b[0]), b1(b[1]);
  ASSERT_EQ(::write(a1.get(), "x", 1), 1);
  ASSERT_EQ(::write(b1.get(), "y", 1), 1);

  counting_handler ha, hb, fresh;
  watch_id wa, wb, wf;
  unique_fd replacement;
  int reused_number = -1;
  bool replaced = false;
  auto close_other = [&](unique_fd& other_fd, watch_id other) {
    if (replaced) return;
    replaced = true;
    reused_number = other_fd.get();
    loop.unwatch(other);
    other_fd.reset();
    // A new descriptor on the same number: an eventfd with count 0 is not readable.
    unique_fd tmp(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    ASSERT_TRUE(tmp);
    if (tmp.get() == reused_number) {  // usually: the lowest free number is the one freed
      replacement = std::move(tmp);
    } else {
      ASSERT_EQ(::dup3(tmp.get(), reused_number, O_CLOEXEC), reused_number);
      replacement.reset(reused_number);
    }
    wf = loop.watch(replacement.get(), io_read, fresh);
  };
  ha.fn = [&](std::uint32_t) { close_other(b0, wb); };
  hb.fn = [&](std::uint32_t) { close_other(a0, wa); };
  wa = loop.watch(a0.get(), io_read, ha);
  wb = loop.watch(b0.get(), io_read, hb);
  std::this_thread::sleep_for(5ms);
  loop.run_once(100ms);
  EXPECT_EQ(ha.calls + hb.calls, 1) << "the closed watch got its queued event";
  EXPECT_EQ(fresh.calls, 0) << "phantom event delivered to the reused descriptor number";
  ASSERT_TRUE(replaced);
  for (int i = 0; i < 3; ++i)
    loop.run_once(5ms);
  EXPECT_EQ(fresh.calls, 0) << "phantom event on a later turn";
  // A real event on the new descriptor does arrive.
  std::uint64_t one = 1;
  ASSERT_EQ(::write(replacement.get(), &one, sizeof one), 8);
  for (int i = 0; i < 20 && fresh.calls == 0; ++i)
    loop.run_once(10ms);
  EXPECT_GE(fresh.calls, 1);
  EXPECT_TRUE(fresh.last & io_read);
  loop.unwatch(wf);
  if (a0) loop.unwatch(wa);
  if (b0) loop.unwatch(wb);
}

// A backend takes a bounded batch per wait (epoll: 128 events; io_uring: the kernel's
// task-work budget): with more descriptors ready than one turn takes, the rest must come
// on the next turns, each exactly once, none starved.
TEST_P(loop_test, more_ready_descriptors_than_one_turn_takes_are_all_served_once) {
  test::fd_leak_guard guard;
  event_loop loop(GetParam());
  constexpr int count = 500;
  std::vector<unique_fd> fds;
  std::vector<counting_handler> handlers(count);
  std::vector<watch_id> watches;
  for (int i = 0; i < count; ++i) {
    fds.emplace_back(::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK));  // readable from the start
    ASSERT_TRUE(fds.back());
    int fd = fds.back().get();
    handlers[i].fn = [fd](std::uint32_t) {
      std::uint64_t value = 0;  // drain it: level-triggered backends then stop reporting it
      EXPECT_EQ(::read(fd, &value, sizeof value), 8);
    };
    watches.push_back(loop.watch(fd, io_read, handlers[i]));
  }
  auto served = [&] {
    return std::count_if(handlers.begin(), handlers.end(), [](auto& h) { return h.calls > 0; });
  };
  for (int turn = 0; turn < 200 && served() < count; ++turn)
    loop.run_once(10ms);
  EXPECT_EQ(served(), count);
  for (int turn = 0; turn < 3; ++turn)
    loop.run_once(5ms);
  for (int i = 0; i < count; ++i)
    EXPECT_EQ(handlers[i].calls, 1) << "descriptor " << i;
  for (auto w : watches)
    loop.unwatch(w);
}

TEST_P(loop_test, descriptors_above_fd_setsize_are_refused_only_by_select) {
  test::fd_leak_guard guard;
  auto limit = raise_nofile_limit(2048);
  if (limit.soft <= FD_SETSIZE + 10) GTEST_SKIP() << "RLIMIT_NOFILE too low: " << limit.soft;
  event_loop loop(GetParam());
  unique_fd low(::eventfd(0, EFD_CLOEXEC));
  constexpr int high_number = FD_SETSIZE + 6;
  ASSERT_EQ(::dup3(low.get(), high_number, O_CLOEXEC), high_number);
  unique_fd high(high_number);
  counting_handler h;
  if (loop.io_backend().max_fd() >= 0 && loop.io_backend().max_fd() < high_number) {
    try {
      loop.watch(high.get(), io_read, h);
      FAIL() << GetParam() << " accepted fd " << high_number;
    } catch (const sys_error& e) {
      EXPECT_EQ(e.errno_value(), EINVAL);
      EXPECT_THAT(e.what(), HasSubstr("fd " + std::to_string(high_number)));
      EXPECT_THAT(e.what(), HasSubstr(std::to_string(FD_SETSIZE - 1)));
      EXPECT_THAT(e.what(), HasSubstr(GetParam()));
    }
    // The refusal left the loop usable.
    auto id = loop.watch(low.get(), io_read, h);
    loop.unwatch(id);
  } else {
    EXPECT_NE(GetParam(), "select");
    auto id = loop.watch(high.get(), io_read, h);
    std::uint64_t one = 1;
    ASSERT_EQ(::write(high.get(), &one, sizeof one), 8);
    for (int i = 0; i < 20 && h.calls == 0; ++i)
      loop.run_once(10ms);
    EXPECT_EQ(h.calls, 1);
    loop.unwatch(id);
  }
}

// Busy polling (set_busy_poll): an event within the window is served without the thread
// ever sleeping; a timer is never delayed by it; past the window the loop blocks.
long voluntary_switches() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_nvcsw;
}

// An eventfd that another thread makes readable after a delay.
struct delayed_event {
  unique_fd fd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  std::thread writer;
  void fire_after(std::chrono::milliseconds delay) {
    writer = std::thread([this, delay] {
      std::this_thread::sleep_for(delay);
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(fd.get(), &one, sizeof one);
    });
  }
  void join() {
    if (writer.joinable()) writer.join();
  }
  ~delayed_event() { join(); }
};

TEST_P(loop_test, busy_poll_serves_an_event_inside_its_window_without_sleeping) {
  test::fd_leak_guard guard;
  event_loop loop(GetParam());
  delayed_event event;
  ASSERT_TRUE(event.fd);
  counting_handler h;
  h.fn = [&](std::uint32_t) {
    std::uint64_t v;
    [[maybe_unused]] auto n = ::read(event.fd.get(), &v, sizeof v);
  };
  loop.watch(event.fd.get(), io_read, h);
  loop.run_once(0ms);         // settle: the backend's first turn may set itself up
  loop.set_busy_poll(2s);     // far longer than the 20 ms the event takes to come
  loop.run_after(3s, [] {});  // bounds run_once if the event never came
  event.fire_after(20ms);
  const auto blocked_before = loop.blocking_waits();
  const auto switches_before = voluntary_switches();
  loop.run_once(-1ms);
  const auto switches_after = voluntary_switches();
  event.join();
  EXPECT_EQ(h.calls, 1);
  EXPECT_EQ(loop.busy_poll_hits(), 1u);
  EXPECT_EQ(loop.blocking_waits(), blocked_before);
  // A sanitizer's runtime takes locks of its own that the writer thread may hold for a
  // moment (a wait on one is a voluntary switch too): the slack is for those only, and
  // release builds, with none, guard that the loop itself never sleeps.
  EXPECT_LE(switches_after - switches_before, test::sanitized_build ? 2 : 0)
      << "the loop thread slept";
}

TEST_P(loop_test, busy_poll_never_delays_a_timer) {
  test::fd_leak_guard guard;
  event_loop loop(GetParam());
  loop.set_busy_poll(5s);
  bool fired = false;
  loop.run_after(20ms, [&] { fired = true; });
  const auto t0 = event_loop::clock::now();
  // Bounded: 100 turns, each ending by the timer (at most its 20 ms, then 0).
  for (int i = 0; i < 100 && !fired; ++i)
    loop.run_once(-1ms);
  EXPECT_TRUE(fired);
  EXPECT_LT(event_loop::clock::now() - t0, 1s);
}

TEST_P(loop_test, busy_poll_blocks_once_its_window_has_passed) {
  test::fd_leak_guard guard;
  event_loop loop(GetParam());
  delayed_event event;
  ASSERT_TRUE(event.fd);
  counting_handler h;
  loop.watch(event.fd.get(), io_read, h);
  loop.set_busy_poll(2ms);
  event.fire_after(100ms);
  const auto blocked_before = loop.blocking_waits();
  // Bounded: 300 turns of at most 10 ms (+ the 2 ms poll).
  for (int i = 0; i < 300 && h.calls == 0; ++i)
    loop.run_once(10ms);
  event.join();
  EXPECT_GE(h.calls, 1);
  EXPECT_GT(loop.blocking_waits(), blocked_before);
}

INSTANTIATE_TEST_SUITE_P(all, loop_test, test::every_backend(), test::param_name{});

}  // namespace
}  // namespace netkit
