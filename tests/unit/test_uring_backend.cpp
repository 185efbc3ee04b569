// The io_uring backend under the event loop: readiness watches (multishot poll), the
// eventfd wake-up, stale completions after unwatch and descriptor reuse, timers, and a
// loop built on one thread and run on another (the ring is enabled lazily).
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include <gtest/gtest.h>

#include "netkit/event/loop.hpp"
#include "support/fd_leak_guard.hpp"

namespace netkit {
namespace {

using namespace std::chrono_literals;

struct counting_handler : io_handler {
  int calls = 0;
  std::uint32_t last = 0;
  std::function<void(std::uint32_t)> also;
  void on_io(std::uint32_t events) override {
    ++calls;
    last = events;
    if (also) also(events);
  }
};

struct fd_pair {
  unique_fd a, b;  // a socketpair: write to b, a becomes readable
  fd_pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
      throw std::runtime_error("socketpair");
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
  void poke() const { ASSERT_EQ(::write(b.get(), "x", 1), 1); }
  void drain() const {
    char buf[256];
    while (::read(a.get(), buf, sizeof buf) > 0) {
    }
  }
};

std::unique_ptr<event_loop> make_loop() {
  try {
    return std::make_unique<event_loop>("uring");
  } catch (const std::exception& e) {
    return nullptr;
  }
}

#define NEED_URING(loop)   \
  auto loop = make_loop(); \
  if (!loop) GTEST_SKIP() << "io_uring unavailable here: " << uring_problem();

std::string uring_problem() {
  for (const auto& b : list_backends())
    if (b.name == "uring") return b.problem;
  return "not registered";
}

// Runs turns until `done` or the deadline (bounded).
template <typename Pred>
bool run_until(event_loop& loop, Pred done, std::chrono::milliseconds limit = 2000ms) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < until)
    loop.run_once(20ms);
  return done();
}

TEST(uring_backend, registered_and_described) {
  bool found = false;
  for (const auto& b : list_backends()) {
    if (b.name != "uring") continue;
    found = true;
    EXPECT_FALSE(b.description.empty());
    if (!b.available) {
      EXPECT_NE(b.problem.find("--model epoll"), std::string::npos) << b.problem;
    }
  }
  EXPECT_TRUE(found);
}

TEST(uring_backend, identifies_itself_as_completion_backend) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  EXPECT_EQ(loop->io_backend().name(), "uring");
  EXPECT_TRUE(loop->io_backend().completion_based());
  EXPECT_TRUE(loop->edge_triggered());  // multishot poll reports each wake-up once
}

TEST(uring_backend, watch_reports_readable_and_unwatch_stops_it) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  fd_pair p;
  counting_handler h;
  h.also = [&](std::uint32_t) { p.drain(); };
  auto id = loop->watch(p.a.get(), io_read, h);
  loop->run_once(0ms);
  EXPECT_EQ(h.calls, 0);
  p.poke();
  ASSERT_TRUE(run_until(*loop, [&] { return h.calls == 1; }));
  EXPECT_TRUE(h.last & io_read);
  // Multishot: a second wake-up is reported without re-watching.
  p.poke();
  ASSERT_TRUE(run_until(*loop, [&] { return h.calls == 2; }));
  loop->unwatch(id);
  p.poke();
  for (int i = 0; i < 5; ++i)
    loop->run_once(10ms);
  EXPECT_EQ(h.calls, 2);
}

TEST(uring_backend, modify_switches_interest) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  fd_pair p;
  counting_handler h;
  auto id = loop->watch(p.a.get(), 0, h);
  for (int i = 0; i < 3; ++i)
    loop->run_once(5ms);
  EXPECT_EQ(h.calls, 0);  // no interest, no report
  loop->modify(id, io_write);
  ASSERT_TRUE(run_until(*loop, [&] { return h.calls >= 1; }));
  EXPECT_TRUE(h.last & io_write);
  loop->modify(id, 0);
  loop->run_once(5ms);
  int seen = h.calls;
  p.poke();
  for (int i = 0; i < 3; ++i)
    loop->run_once(5ms);
  EXPECT_EQ(h.calls, seen);
  loop->unwatch(id);
}

TEST(uring_backend, hangup_is_reported) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  fd_pair p;
  counting_handler h;
  auto id = loop->watch(p.a.get(), io_read, h);
  p.b.reset();
  ASSERT_TRUE(run_until(*loop, [&] { return h.calls >= 1; }));
  EXPECT_TRUE(h.last & io_read);
  loop->unwatch(id);
}

// Both descriptors are ready in the same batch; whichever handler runs first unwatches
// and closes the other: the other's completion is stale and must not be delivered.
TEST(uring_backend, event_for_watch_removed_earlier_in_batch_is_dropped) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  fd_pair p1, p2;
  counting_handler h1, h2;
  watch_id id1, id2;
  h1.also = [&](std::uint32_t) {
    loop->unwatch(id2);
    p2.a.reset();
  };
  h2.also = [&](std::uint32_t) {
    loop->unwatch(id1);
    p1.a.reset();
  };
  id1 = loop->watch(p1.a.get(), io_read, h1);
  id2 = loop->watch(p2.a.get(), io_read, h2);
  loop->run_once(0ms);  // submit both polls
  p1.poke();
  p2.poke();
  std::this_thread::sleep_for(10ms);  // both completions are ready before the next turn
  ASSERT_TRUE(run_until(*loop, [&] { return h1.calls + h2.calls >= 1; }));
  for (int i = 0; i < 5; ++i)
    loop->run_once(5ms);
  EXPECT_EQ(h1.calls + h2.calls, 1);
  if (p1.a) loop->unwatch(id1);
  if (p2.a) loop->unwatch(id2);
}

// A watch is removed and its descriptor closed; a new descriptor gets the same number and
// a new watch. Completions of the old poll request must never reach the new handler.
TEST(uring_backend, descriptor_reuse_never_gets_old_events) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  auto old_pair = std::make_unique<fd_pair>();
  counting_handler old_h, new_h;
  auto old_id = loop->watch(old_pair->a.get(), io_read, old_h);
  loop->run_once(0ms);
  old_pair->poke();  // a completion for the old poll is (or soon will be) posted
  int reused = old_pair->a.get();
  loop->unwatch(old_id);
  old_pair.reset();
  fd_pair fresh;
  ASSERT_TRUE(fresh.a.get() == reused || fresh.b.get() == reused);
  int fresh_fd = fresh.a.get() == reused ? fresh.a.get() : fresh.b.get();
  auto new_id = loop->watch(fresh_fd, io_read, new_h);
  for (int i = 0; i < 5; ++i)
    loop->run_once(10ms);
  EXPECT_EQ(old_h.calls, 0);
  EXPECT_EQ(new_h.calls, 0);  // the new descriptor has nothing to read
  loop->unwatch(new_id);
}

TEST(uring_backend, post_from_another_thread_wakes_the_loop) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  std::atomic<bool> ran{false};
  loop->run_once(0ms);
  auto start = std::chrono::steady_clock::now();
  std::thread poster([&] {
    std::this_thread::sleep_for(50ms);
    loop->post([&] { ran = true; });
  });
  // A long timeout: only the eventfd wake-up can end the wait early.
  for (int i = 0; i < 10 && !ran; ++i)
    loop->run_once(5000ms);
  poster.join();
  EXPECT_TRUE(ran);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(uring_backend, stop_from_another_thread_ends_run) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  std::thread stopper([&] {
    std::this_thread::sleep_for(30ms);
    loop->stop();
  });
  auto start = std::chrono::steady_clock::now();
  loop->run();
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(uring_backend, timers_fire_in_order_and_cancel) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  std::vector<int> fired;
  int ticks = 0;
  loop->run_after(40ms, [&] { fired.push_back(2); });
  loop->run_after(10ms, [&] { fired.push_back(1); });
  auto cancelled = loop->run_after(20ms, [&] { fired.push_back(99); });
  auto periodic = loop->run_every(5ms, [&] { ++ticks; });
  loop->cancel(cancelled);
  auto start = std::chrono::steady_clock::now();
  // Until the periodic timer ticked 3 times too: it fires at most once per turn and does
  // not catch up, so a slow turn (a loaded machine) leaves it behind the one-shot ones.
  ASSERT_TRUE(run_until(*loop, [&] { return fired.size() == 2 && ticks >= 3; }));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(fired, (std::vector<int>{1, 2}));
  EXPECT_GE(elapsed, 35ms);
  EXPECT_GE(ticks, 3);
  loop->cancel(periodic);
  int seen = ticks;
  for (int i = 0; i < 3; ++i)
    loop->run_once(10ms);
  EXPECT_EQ(ticks, seen);
}

TEST(uring_backend, timeout_without_events_returns) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  auto start = std::chrono::steady_clock::now();
  loop->run_once(30ms);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 25ms);
  EXPECT_LT(elapsed, 1s);
}

// SINGLE_ISSUER ties the ring to one thread: it is chosen at the first wait, so a loop
// may be built here and run elsewhere.
TEST(uring_backend, built_on_one_thread_run_on_another) {
  test::fd_leak_guard guard;
  NEED_URING(loop);
  fd_pair p;
  counting_handler h;
  auto id = loop->watch(p.a.get(), io_read, h);
  p.poke();
  std::thread runner([&] { run_until(*loop, [&] { return h.calls >= 1; }); });
  runner.join();
  EXPECT_GE(h.calls, 1);
  loop->unwatch(id);
}

// What the kernel gave, as --list-models shows it: every feature netkit probes is there on
// a kernel that has it (Debian's liburing 2.3 knows none of the newest; netkit defines
// their ABI and tries each on a scratch ring).
TEST(uring_features, each_feature_is_found_on_a_kernel_that_has_it) {
  auto loop = make_loop();
  if (!loop) GTEST_SKIP() << "io_uring unavailable here: " << uring_problem();
  std::string features;
  for (const auto& b : list_backends())
    if (b.name == "uring") features = b.kernel_features;
  ASSERT_TRUE(features.starts_with("this kernel gives ")) << features;
  utsname u{};
  ASSERT_EQ(::uname(&u), 0);
  int major = 0, minor = 0;
  ASSERT_EQ(std::sscanf(u.release, "%d.%d", &major, &minor), 2) << u.release;
  const int version = major * 100 + minor;
  struct since {
    int version;
    std::string_view name;
  };
  const since known[] = {{519, "multishot accept"},   {519, "provided-buffer rings"},
                         {600, "multishot recv"},     {600, "SEND_ZC"},
                         {601, "DEFER_TASKRUN"},      {610, "recv bundles"},
                         {612, "incremental buffers"}};
  auto gives = features.substr(0, features.find("; lacks"));
  for (const auto& k : known) {
    if (version >= k.version) {
      EXPECT_NE(gives.find(k.name), std::string::npos)
          << k.name << " missing on " << u.release << ": " << features;
    }
  }
  if (version >= 612) {
    EXPECT_EQ(features.find("lacks"), std::string::npos) << features;
  }
}

}  // namespace
}  // namespace netkit
