// The load generator in-process, with several worker threads (so ThreadSanitizer sees the
// phase barrier, the progress counters and the merge): figures of every thread arrive, and
// what a worker could not set up is an exception, not a hang.
#include <gtest/gtest.h>

#include "netkit/error.hpp"
#include "runner.hpp"
#include "support/backend_params.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"
#include "worker_common.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

loadgen::bench_config config_for(const std::string& uri, loadgen::bench_mode mode) {
  loadgen::bench_config c;
  c.mode = mode;
  c.target = endpoint::parse(uri);
  c.connections = 4;
  c.threads = 2;
  c.duration = 300ms;
  c.warmup = 100ms;
  c.rate = 4000;
  c.seed = 42;
  return c;
}

TEST(loadgen, threads_start_together_and_merge_every_figure) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  for (auto mode : {loadgen::bench_mode::rr, loadgen::bench_mode::pingpong,
                    loadgen::bench_mode::rate, loadgen::bench_mode::churn}) {
    const auto r = loadgen::run_bench(config_for(server.uri(), mode));
    EXPECT_EQ(loadgen::exit_status(r), 0) << loadgen::to_string(mode) << r.serialize();
    EXPECT_GT(r.messages, 10u) << loadgen::to_string(mode);
    EXPECT_EQ(r.latency.count(), r.messages) << loadgen::to_string(mode);
    EXPECT_NEAR(r.seconds, 0.3, 0.1) << loadgen::to_string(mode);
    if (mode != loadgen::bench_mode::churn) {
      EXPECT_EQ(r.established, 4u);
    }
  }
}

TEST(loadgen, a_worker_that_cannot_start_stops_the_others_and_reports_why) {
  fd_leak_guard guard;
  auto c = config_for("tcp://127.0.0.1:9", loadgen::bench_mode::rr);
  c.model = "no-such-backend";
  EXPECT_ANY_THROW(loadgen::run_bench(c));
}

TEST(loadgen, result_lines_round_trip_between_processes) {
  loadgen::bench_result r;
  r.messages = 12;
  r.bytes_sent = 340;
  r.bytes_received = 330;
  r.connects = 5;
  r.established = 4;
  r.idle_established = 2;
  r.seconds = 1.5;
  r.connect_s = 0.75;
  r.client_cpu_s = 0.25;
  r.target_lost = true;
  r.count_error("refused", 3);
  r.count_error("addr_not_avail");
  r.latency.record(1000);
  r.latency.record(250'000);
  const auto back = loadgen::bench_result::parse(r.serialize());
  EXPECT_EQ(back.serialize(), r.serialize());
  EXPECT_EQ(back.errors.at("refused"), 3u);
  EXPECT_TRUE(back.target_lost);
  EXPECT_THROW(loadgen::bench_result::parse("1 2 3"), std::invalid_argument);
  loadgen::bench_result sum;
  sum.merge(r);
  sum.merge(back);
  EXPECT_EQ(sum.messages, 24u);
  EXPECT_EQ(sum.error_total(), 8u);
  EXPECT_DOUBLE_EQ(sum.seconds, 1.5) << "concurrent windows: the longer one";
  EXPECT_DOUBLE_EQ(sum.connect_s, 0.75) << "concurrent connect phases: the slowest one";
  EXPECT_EQ(sum.latency.count(), 4u);
}

TEST(loadgen, source_ranges_expand_and_shares_add_up) {
  const auto s = loadgen::parse_sources("127.0.0.1-127.0.0.3,::1");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].host(), "127.0.0.1");
  EXPECT_EQ(s[2].host(), "127.0.0.3");
  EXPECT_EQ(s[3].host(), "::1");
  EXPECT_THROW(loadgen::parse_sources("127.0.0.1-10.0.0.1"), usage_error);
  EXPECT_THROW(loadgen::parse_sources("not-an-address"), usage_error);
  std::size_t total = 0;
  for (std::size_t i = 0; i < 7; ++i)
    total += loadgen::share_of(100, 7, i);
  EXPECT_EQ(total, 100u);
}

// The open-loop send timer: never early, once per arm, and a wait shorter than its spin
// window programs no timer (the system call and hypervisor trap it saves are why it spins).
class precise_timer_test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam());
    loop_ptr_ = std::make_unique<event_loop>(GetParam());
  }
  // Runs the loop until `done` or 2 s have passed (bounded).
  void run_until(const std::function<bool()>& done) {
    const auto give_up = clock::now() + 2s;
    while (!done() && clock::now() < give_up)
      loop_ptr_->run_once(10ms);
  }
  fd_leak_guard no_leaks_;  // first made, last checked: after the loop closed its fds
  std::unique_ptr<event_loop> loop_ptr_;
};

TEST_P(precise_timer_test, a_near_time_is_kept_by_spinning_without_a_timer) {
  std::vector<clock::time_point> fired;
  loadgen::detail::precise_timer timer(*loop_ptr_, [&] { fired.push_back(clock::now()); });
  const auto due = clock::now() + 50us;
  timer.arm(due);
  run_until([&] { return !fired.empty(); });
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_GE(fired[0], due);
  EXPECT_EQ(timer.sleeps(), 0u);
  EXPECT_GE(timer.spins(), 1u);
}

TEST_P(precise_timer_test, a_far_time_sleeps_first_then_spins_to_it) {
  std::vector<clock::time_point> fired;
  loadgen::detail::precise_timer timer(*loop_ptr_, [&] { fired.push_back(clock::now()); });
  const auto due = clock::now() + 5ms;
  timer.arm(due);
  run_until([&] { return !fired.empty(); });
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_GE(fired[0], due);
  EXPECT_GE(timer.sleeps(), 1u);
  // Nothing more comes: one arm, one fire.
  const auto quiet_until = clock::now() + 20ms;
  run_until([&] { return clock::now() >= quiet_until; });
  EXPECT_EQ(fired.size(), 1u);
}

TEST_P(precise_timer_test, a_new_arm_replaces_the_old_and_its_sleep_fires_nothing) {
  std::vector<clock::time_point> fired;
  loadgen::detail::precise_timer timer(*loop_ptr_, [&] { fired.push_back(clock::now()); });
  timer.arm(clock::now() + 30ms);  // sleeps on the timerfd...
  const auto due = clock::now() + 100us;
  timer.arm(due);  // ...and is replaced by a near time
  run_until([&] { return !fired.empty(); });
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_GE(fired[0], due);
  // The old sleep still ends at +30 ms: it must not fire a second time.
  const auto quiet_until = clock::now() + 50ms;
  run_until([&] { return clock::now() >= quiet_until; });
  EXPECT_EQ(fired.size(), 1u);
}

TEST_P(precise_timer_test, arms_from_its_own_callback_keep_every_time_in_order) {
  // The generator's pattern: each fire sends what is due and arms the next time.
  constexpr int count = 200;
  std::vector<clock::time_point> due, fired;
  auto next = clock::now();
  std::unique_ptr<loadgen::detail::precise_timer> timer;
  timer = std::make_unique<loadgen::detail::precise_timer>(*loop_ptr_, [&] {
    fired.push_back(clock::now());
    if (static_cast<int>(fired.size()) < count) {
      next += 20us;
      due.push_back(next);
      timer->arm(next);
    }
  });
  due.push_back(next);
  timer->arm(next);
  run_until([&] { return static_cast<int>(fired.size()) >= count; });
  ASSERT_EQ(fired.size(), static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i)
    EXPECT_GE(fired[i], due[i]) << "fire " << i;
}

INSTANTIATE_TEST_SUITE_P(backends, precise_timer_test, every_backend(), param_name{});

}  // namespace
}  // namespace netkit::test
