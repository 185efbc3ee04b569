// Reliability cases 8, 9, 12, 14, 17 ("Connection I/O and event loop"), protocol errors
// and SIGTERM, against the real `netkit echo-server` on every backend they apply to.
#include <sys/socket.h>

#include <algorithm>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "netkit/process.hpp"
#include "netkit/socket.hpp"
#include "support/backend_params.hpp"
#include "support/client_io.hpp"
#include "support/echo_driver.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;

class connection_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }
  server_config config(std::string codec, std::vector<std::string> extra = {}) const {
    server_config c;
    c.model = GetParam();
    c.codec = std::move(codec);
    c.extra_args = std::move(extra);
    // ASan keeps freed blocks resident in its quarantine (256 MiB by default), which would
    // make RSS measure churn rather than what the server holds: keep it small so the
    // memory bounds below mean the same thing in every build.
    if (sanitized_build) c.env.push_back("ASAN_OPTIONS=quarantine_size_mb=1:detect_leaks=1");
    return c;
  }
  static void expect_clean_stop(server_process& server) {
    auto status = server.terminate();
    ASSERT_TRUE(status) << "echo-server did not stop within 10 s of SIGTERM";
    EXPECT_TRUE(status->exited_normally()) << status->describe() << "\n" << server.log();
  }
  static std::vector<echo_plan> line_plans(std::size_t clients, std::size_t messages,
                                           std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<echo_plan> plans(clients);
    for (auto& p : plans) {
      p.block = std::make_shared<std::vector<std::byte>>(
          make_framed_stream(codec_spec::parse("line"), rng, messages, 200));
      p.max_split = 50;
    }
    return plans;
  }
};

// Case 8: a peer with a small SO_RCVBUF reads 1 KiB every 10 ms while 16 MiB is echoed.
// Reading 16 MiB at 100 KiB/s would take 160 s, so the slow phase lasts 2 s (the server
// is backed up the whole time: its output reaches the high-water mark, reading pauses)
// and then the client reads at full speed: every byte arrives in order, and the server's
// RSS never grows by more than a few high-water marks.
TEST_P(connection_test, slow_reader_gets_everything_in_order_with_bounded_memory) {
  fd_leak_guard guard;
  constexpr std::size_t high_water = 256 << 10;
  server_process server(config("raw", {"--high-water", std::to_string(high_water)}));
  echo_plan plan;
  std::mt19937_64 rng(21);
  plan.block = std::make_shared<std::vector<std::byte>>(
      make_framed_stream(codec_spec::parse("raw"), rng, 1, 1 << 20));
  plan.repeat = scaled(16, 4);  // 16 MiB (4 MiB under sanitizers)
  plan.rcvbuf = 4096;
  plan.slow_for = 2s;
  plan.slow_chunk = 1024;
  plan.slow_interval = 10ms;
  std::vector<echo_plan> plans{plan};
  auto rss0 = server.sample().rss_kib;
  long rss_max = rss0;
  auto run = run_echo_clients(server.local(), plans, deadline_after(stretch(60s)), 22, GetParam(),
                              [&] { rss_max = std::max(rss_max, process_rss_kib(server.pid())); });
  EXPECT_EQ(run.problems(plans), "");
  // Output ≤ high water + one read chunk per connection; allow allocator slack.
  EXPECT_LT(rss_max - rss0, 8 * 1024)
      << "server RSS grew from " << rss0 << " to " << rss_max << " KiB for one slow reader";
  expect_clean_stop(server);
}

// Case 9: a client sends continuously and never reads → the server stops reading from
// it once its output is over the high-water mark (logged), its RSS stays bounded, and
// the other clients are served as usual.
TEST_P(connection_test, non_reading_client_keeps_memory_bounded_and_others_unaffected) {
  fd_leak_guard guard;
  server_process server(config("raw", {"--high-water", "262144", "--verbose"}));
  auto rss0 = server.sample().rss_kib;
  long rss_max = rss0;
  auto hog = connect_client(server.local());
  set_nonblocking(hog.get(), true);
  std::vector<std::byte> junk(64 << 10, std::byte{'x'});
  std::size_t pushed = 0;
  echo_run others;
  auto plans = line_plans(10, 100, 23);
  std::thread driver([&] {
    others = run_echo_clients(server.local(), plans, deadline_after(stretch(30s)), 24, GetParam());
  });
  auto until = deadline_after(2s);
  // Bound: 2 s of pushing (64 MiB at most).
  while (clock::now() < until && pushed < (64u << 20)) {
    ssize_t n = ::send(hog.get(), junk.data(), junk.size(), MSG_NOSIGNAL);
    if (n > 0) pushed += static_cast<std::size_t>(n);
    if (n < 0) std::this_thread::sleep_for(2ms);
    rss_max = std::max(rss_max, process_rss_kib(server.pid()));
  }
  driver.join();
  EXPECT_EQ(others.problems(plans), "");
  EXPECT_GT(pushed, 512u << 10);
  EXPECT_LT(rss_max - rss0, 8 * 1024) << "server RSS grew from " << rss0 << " to " << rss_max
                                      << " KiB while one client did not read";
  auto hog_uri = local_endpoint(hog.get(), transport::tcp).to_uri();
  EXPECT_THAT(server.log(), HasSubstr("pausing reads from " + hog_uri));
  EXPECT_TRUE(server.alive());
  hog.reset();
  expect_clean_stop(server);
}

// Case 12: 10,000 connect-then-close clients, half of them sending a line first →
// the server's descriptor count and RSS return to baseline; no log flood.
TEST_P(connection_test, ten_thousand_connect_close_cycles_return_to_baseline) {
  fd_leak_guard guard;
  server_process server(config("line"));
  auto cycle = [&](int i) {
    auto fd = connect_client(server.local());
    if (i % 2 == 1) send_all(fd.get(), "bye\n");
  };
  const auto idle_fds = server.sample().fds;
  for (int i = 0; i < 200; ++i)
    cycle(i);  // warm-up: slot tables and allocator reach their steady state
  // The baseline is taken once the server has closed every warm-up connection (a fixed
  // sleep left some open on a loaded machine, and every later wait then spun to its bound).
  ASSERT_TRUE(
      eventually([&] { return server.sample().fds == idle_fds; }, deadline_after(stretch(10s))))
      << "descriptors: " << server.sample().fds << ", idle: " << idle_fds;
  auto base = server.sample();
  // Every 100 cycles, wait (bounded) until the server has closed them all: how far a busy
  // server falls behind would otherwise set how many connections are open at once, and
  // with it how much the allocator keeps (a backlog of thousands on a loaded CI machine
  // grew RSS past the bound once, with nothing leaked). At most 100 are open at a time,
  // as in the warm-up, so what is left above the baseline is what cycles leave behind.
  auto caught_up = [&] {
    auto until = deadline_after(stretch(10s));
    while (server.sample().fds != base.fds && clock::now() < until)
      std::this_thread::sleep_for(2ms);
  };
  const int cycles = static_cast<int>(scaled(10000, 3000));
  for (int i = 0; i < cycles; ++i) {
    cycle(i);
    if (i % 100 == 99) caught_up();
  }
  auto until = deadline_after(stretch(10s));
  auto now = server.sample();
  // "Return to baseline" is about the steady state: the uring server gives its receive
  // buffer pages back when it goes quiet, a moment after the last close, so wait for it.
  auto settled = [&] {
    return now.fds == base.fds && (sanitized_build || now.rss_kib - base.rss_kib < 2048);
  };
  while (!settled() && clock::now() < until) {
    std::this_thread::sleep_for(20ms);
    now = server.sample();
  }
  EXPECT_EQ(now.fds, base.fds);
  // ASan's quarantine keeps freed memory resident by design (up to 256 MiB), so RSS
  // tracks frees, not leaks, there: the RSS bound is checked in optimised builds only
  // (LeakSanitizer covers leaks in the sanitizer build).
  if (!sanitized_build) {
    EXPECT_LT(now.rss_kib - base.rss_kib, 2048) << "RSS " << base.rss_kib << " -> " << now.rss_kib;
  }
  EXPECT_LT(server.log().size(), 2048u) << "log flood:\n" << server.log().substr(0, 2048);
  auto fd = connect_client(server.local());
  EXPECT_EQ(line_round_trip(fd.get(), "still serving", deadline_after(stretch(5s))), "");
  fd.reset();
  expect_clean_stop(server);
}

// Case 14: one client floods 256 MiB (1 GiB in the case; scaled to fit the CI budget,
// 32 MiB under sanitizers) while another does 1-byte ping-pong → the flood is fully
// echoed, and the ping-pong's p99 stays bounded (per-wakeup read budget).
TEST_P(connection_test, flood_does_not_starve_ping_pong) {
  fd_leak_guard guard;
  server_process server(config("raw"));
  echo_plan flood;
  std::mt19937_64 rng(25);
  flood.block = std::make_shared<std::vector<std::byte>>(
      make_framed_stream(codec_spec::parse("raw"), rng, 1, 1 << 20));
  flood.repeat = scaled(256, 32);
  std::vector<echo_plan> plans{flood};
  echo_run flood_run;
  std::atomic<bool> flood_done{false};
  std::thread flooder([&] {
    flood_run =
        run_echo_clients(server.local(), plans, deadline_after(stretch(120s)), 26, GetParam());
    flood_done = true;
  });
  auto ping = connect_client(server.local());
  std::vector<std::chrono::microseconds> rtts;
  std::string problem;
  std::this_thread::sleep_for(50ms);  // let the flood get going
  // Bound: 3000 round trips or the end of the flood.
  while (!flood_done && rtts.size() < 3000 && problem.empty()) {
    auto t0 = clock::now();
    send_all(ping.get(), "p");
    auto r = read_exactly(ping.get(), 1, deadline_after(stretch(5s)));
    if (r.end != read_end::data || r.text() != "p") {
      problem = fmt::format("ping-pong failed: {}", to_string(r.end));
      break;
    }
    rtts.push_back(std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - t0));
  }
  flooder.join();
  EXPECT_EQ(problem, "");
  EXPECT_EQ(flood_run.problems(plans), "");
  ASSERT_GE(rtts.size(), 20u) << "too few ping-pongs during the flood";
  std::sort(rtts.begin(), rtts.end());
  auto p99 = rtts[rtts.size() * 99 / 100];
  RecordProperty("ping_p99_us", static_cast<int>(p99.count()));
  EXPECT_LT(p99, stretch(50ms)) << "p99 of " << rtts.size() << " ping-pongs during the flood";
  ping.reset();
  expect_clean_stop(server);
}

// A protocol error (endless line; oversize length header) closes only that connection,
// with a log line naming the peer; everyone else keeps being served.
TEST_P(connection_test, protocol_error_closes_only_that_connection) {
  fd_leak_guard guard;
  for (std::string codec : {"line,max=4096", "length,max=4096"}) {
    SCOPED_TRACE(codec);
    server_process server(config(codec));
    auto spec = codec_spec::parse(codec);
    auto plans = [&] {
      std::mt19937_64 rng(27);
      std::vector<echo_plan> p(5);
      for (auto& e : p) {
        e.block = std::make_shared<std::vector<std::byte>>(make_framed_stream(spec, rng, 200, 500));
        e.max_split = 33;
      }
      return p;
    }();
    echo_run run;
    std::thread driver([&] {
      run = run_echo_clients(server.local(), plans, deadline_after(stretch(30s)), 28, GetParam());
    });
    auto bad = connect_client(server.local());
    auto bad_uri = local_endpoint(bad.get(), transport::tcp).to_uri();
    if (spec.kind == codec_kind::line) {
      std::string endless(64 << 10, 'z');  // no newline, 16 x the maximum
      try {
        send_all(bad.get(), endless);
      } catch (const std::exception&) {
        // The server may close before everything is written.
      }
    } else {
      const unsigned char header[] = {0x7f, 0xff, 0xff, 0xff};
      send_all(bad.get(), std::as_bytes(std::span(header)));
    }
    auto r = wait_for_close(bad.get(), deadline_after(stretch(5s)));
    EXPECT_TRUE(r.end == read_end::eof || r.end == read_end::reset) << to_string(r.end);
    driver.join();
    EXPECT_EQ(run.problems(plans), "");
    auto log = server.log();
    EXPECT_THAT(log, HasSubstr("closing " + bad_uri + ": protocol error"));
    expect_clean_stop(server);
  }
}

// SIGTERM with connections open and output pending → clean exit 0; the clients get
// their echo and then EOF.
TEST_P(connection_test, sigterm_stops_cleanly_with_clients_connected) {
  fd_leak_guard guard;
  server_process server(config("line"));
  std::vector<unique_fd> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(connect_client(server.local()));
    ASSERT_EQ(line_round_trip(clients.back().get(), "hi", deadline_after(stretch(5s))), "");
  }
  send_all(clients[0].get(), "last words\n");
  std::this_thread::sleep_for(50ms);
  auto status = server.terminate();
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited_normally()) << status->describe() << "\n" << server.log();
  auto r = wait_for_close(clients[0].get(), deadline_after(stretch(5s)));
  EXPECT_EQ(r.text(), "last words\n");
  EXPECT_EQ(r.end, read_end::eof);
  for (std::size_t i = 1; i < clients.size(); ++i)
    EXPECT_EQ(wait_for_close(clients[i].get(), deadline_after(stretch(5s))).end, read_end::eof);
}

INSTANTIATE_TEST_SUITE_P(all, connection_test, every_backend(), param_name{});

// Case 17 (select only): with the server's descriptors past FD_SETSIZE, connections
// whose fd is >= 1024 are closed with a log line (never passed to FD_SET) and the
// server survives, serving the others.
TEST(select_limit, connections_past_fd_setsize_are_closed_and_server_survives) {
  NETKIT_SKIP_UNAVAILABLE_BACKEND(std::string("select"));
  fd_leak_guard guard;
  auto limit = raise_nofile_limit(4096);
  if (limit.soft < 1300) GTEST_SKIP() << "RLIMIT_NOFILE hard limit too low: " << limit.hard;
  server_config c;
  c.model = "select";
  c.codec = "line";
  c.nofile_limit = 2048;
  server_process server(c);
  std::vector<unique_fd> clients;
  int served = 0, closed = 0;
  for (int i = 0; i < 1100; ++i) {
    clients.push_back(connect_client(server.local()));
    auto problem = line_round_trip(clients.back().get(), "x", deadline_after(stretch(5s)));
    if (problem.empty())
      ++served;
    else
      ++closed;
  }
  EXPECT_GT(served, 1000);
  EXPECT_GT(closed, 50);
  EXPECT_EQ(served + closed, 1100);
  EXPECT_TRUE(server.alive());
  EXPECT_THAT(server.log(), HasSubstr("fd 1024"));
  // Those still open keep being served; freeing descriptors lets new clients in.
  EXPECT_EQ(line_round_trip(clients[0].get(), "still", deadline_after(stretch(5s))), "");
  clients.clear();
  std::string problem = "never tried";
  auto until = deadline_after(stretch(5s));
  while (!problem.empty() && clock::now() < until) {
    auto fd = connect_client(server.local());
    problem = line_round_trip(fd.get(), "again", deadline_after(1s));
  }
  EXPECT_EQ(problem, "");
  auto status = server.terminate();
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited_normally()) << status->describe();
}

}  // namespace
}  // namespace netkit::test
