// servers/support worker_pool, the supervisor behind prefork and --processes, driven
// directly: a killed worker is replaced at once, a worker that exits by itself right after
// starting is replaced only a second later (no fork loop), stop() leaves no child.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "support/children.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/process_tree.hpp"
#include "support/test_env.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;
namespace support = servers::support;

// Kills slot 0's worker and reaps until the pool has taken note (bounded); returns the
// victim's pid.
pid_t kill_and_reap_slot0(support::worker_pool& pool, support::supervisor_signals& signals) {
  pid_t victim = pool.pid(0);
  EXPECT_EQ(::kill(victim, SIGKILL), 0);
  auto until = deadline_after(stretch(5s));
  while (pool.pid(0) == victim && clock::now() < until) {
    signals.children.take();
    pool.reap(true);
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_NE(pool.pid(0), victim);
  return victim;
}

TEST(worker_pool, a_killed_worker_is_replaced_at_once_and_stop_leaves_no_child) {
  fd_leak_guard guard;
  support::supervisor_signals signals;
  std::size_t spawned = 0;
  support::worker_pool pool(2, [&](std::size_t) {
    ++spawned;
    return support::fork_worker(signals, [&] {
      signals.unblock();
      for (;;)
        ::pause();  // until SIGTERM (the stop handler only records it) ... or SIGKILL
    });
  });
  pool.start();
  EXPECT_EQ(spawned, 2u);
  // The replacement comes on the first reap after the death.
  kill_and_reap_slot0(pool, signals);
  EXPECT_GT(pool.pid(0), 0);
  EXPECT_EQ(pool.replaced(), 1u);
  EXPECT_EQ(spawned, 3u);
  EXPECT_FALSE(pool.respawn_at());
  auto started = clock::now();
  // The workers ignore SIGTERM's request (they loop in pause()), so stop() must kill them
  // once the grace is over.
  pool.stop(200ms, signals);
  EXPECT_LT(clock::now() - started, stretch(5s));
  EXPECT_EQ(pool.pid(0), -1);
  EXPECT_EQ(pool.pid(1), -1);
  EXPECT_TRUE(children_of(::getpid()).empty());
}

// A worker that keeps being killed right after it starts (a crash at start-up, the OOM
// killer): the first is replaced at once, the second only after a pause, so the pool
// never forks in a tight loop.
TEST(worker_pool, workers_killed_young_twice_in_a_row_are_replaced_after_a_pause) {
  fd_leak_guard guard;
  support::supervisor_signals signals;
  support::worker_pool pool(1, [&](std::size_t) {
    return support::fork_worker(signals, [&] {
      signals.unblock();
      for (;;)
        ::pause();
    });
  });
  pool.start();
  kill_and_reap_slot0(pool, signals);
  EXPECT_GT(pool.pid(0), 0) << "the first one died young: replaced at once";
  EXPECT_FALSE(pool.respawn_at());
  kill_and_reap_slot0(pool, signals);
  EXPECT_EQ(pool.pid(0), -1) << "the second in a row: no worker until the pause is over";
  EXPECT_TRUE(pool.respawn_at());
  pool.stop(200ms, signals);
  EXPECT_TRUE(children_of(::getpid()).empty());
}

TEST(worker_pool, a_worker_that_exits_right_after_starting_is_replaced_a_second_later) {
  fd_leak_guard guard;
  support::supervisor_signals signals;
  std::size_t spawned = 0;
  support::worker_pool pool(1, [&](std::size_t) {
    ++spawned;
    return support::fork_worker(signals, [] { ::_exit(1); });
  });
  pool.start();
  // Wait for the exit, then reap it: no replacement yet, one due in about a second.
  auto until = deadline_after(stretch(5s));
  while (pool.pid(0) > 0 && clock::now() < until) {
    signals.children.take();
    pool.reap(true);
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(pool.pid(0), -1);
  EXPECT_EQ(spawned, 1u);
  ASSERT_TRUE(pool.respawn_at());
  EXPECT_GT(*pool.respawn_at() - clock::now(), 500ms);
  pool.respawn_due();  // not due yet
  EXPECT_EQ(spawned, 1u);
  // Then it is started again (and exits again; stop() reaps whatever is left).
  until = deadline_after(stretch(5s));
  while (spawned < 2 && clock::now() < until) {
    signals.children.take();
    pool.reap(true);
    pool.respawn_due();
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GE(spawned, 2u);
  pool.stop(1s, signals);
  EXPECT_TRUE(children_of(::getpid()).empty());
}

}  // namespace
}  // namespace netkit::test
