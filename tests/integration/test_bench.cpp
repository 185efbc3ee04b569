// `netkit bench` as a user runs it, against real `netkit echo-server` processes: every mode
// on every transport and client backend, --json figures, and the load generator's hostile
// cases (reliability cases 38-40): ports or addresses that run out, a stalled server, a
// server killed mid-run. (Its agreement with the bare epoll client: test_bench_agreement.)
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "support/backend_params.hpp"
#include "support/child_process.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"
#include "support/text_fields.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

run_result bench(std::vector<std::string> args) {
  args.insert(args.begin(), {netkit_cli(), "bench"});
  return run_program(args, 90s);
}

class bench_backends : public testing::TestWithParam<std::string> {};

TEST_P(bench_backends, rr_over_tcp_reports_every_figure_in_json) {
  NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam());
  fd_leak_guard guard;
  server_process server({.codec = "length"});
  auto r = bench({"rr", "--connect", server.uri(), "--model", GetParam(), "--codec", "length",
                  "--connections", "3", "--duration", "0.3", "--warmup", "0.1", "--json"});
  ASSERT_EQ(r.status.code, 0) << r.out << r.err;
  for (const char* key : {"msgs_per_s", "mib_per_s", "bytes_sent", "bytes_received", "p50", "p90",
                          "p99", "p99_9", "p99_99", "min", "max", "errors_total"})
    EXPECT_NO_THROW(json_number(r.out, key)) << key;
  EXPECT_GT(json_number(r.out, "messages"), 10);
  EXPECT_EQ(json_number(r.out, "errors_total"), 0);
  EXPECT_EQ(json_number(r.out, "established"), 3);
  EXPECT_GT(json_number(r.out, "client_cpu_s"), 0) << "the generator's own cost, measured";
  EXPECT_LE(json_number(r.out, "min"), json_number(r.out, "p50"));
  EXPECT_LE(json_number(r.out, "p50"), json_number(r.out, "p99"));
  EXPECT_LE(json_number(r.out, "p99"), json_number(r.out, "max"));
  EXPECT_TRUE(json_true(r.out, "complete"));
  EXPECT_NE(r.out.find("\"model\":\"" + GetParam() + "\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"codec\":\"length\""), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(all, bench_backends, testing::ValuesIn(backend_names()), param_name());

TEST(bench_cli, every_mode_on_unix_and_datagram_targets) {
  fd_leak_guard guard;
  const auto dir =
      std::filesystem::temp_directory_path() / ("netkit-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    server_process unix_server({.codec = "line", .listen = "unix://" + (dir / "s").string()});
    for (const char* mode : {"pingpong", "rr", "churn"}) {
      auto r = bench({mode, "--connect", unix_server.uri(), "--codec", "line", "--connections", "2",
                      "--duration", "0.3", "--warmup", "0.1", "--json"});
      EXPECT_EQ(r.status.code, 0) << mode << r.out << r.err;
      EXPECT_GT(json_number(r.out, "messages"), 0) << mode;
    }
    server_process udp_server({.model = "blocking", .codec = "raw", .listen = "udp://127.0.0.1:0"});
    auto rr = bench({"rr", "--connect", udp_server.uri(), "--connections", "2", "--duration", "0.3",
                     "--warmup", "0.1", "--json"});
    EXPECT_EQ(rr.status.code, 0) << rr.out << rr.err;
    EXPECT_GT(json_number(rr.out, "messages"), 10);
    auto rate = bench({"rate", "--connect", udp_server.uri(), "--rate", "2000", "--duration", "0.5",
                       "--warmup", "0.1", "--json"});
    EXPECT_EQ(rate.status.code, 0) << rate.out << rate.err;
    EXPECT_GT(json_number(rate.out, "messages"), 500);
  }
  std::filesystem::remove_all(dir);
}

// pingpong --window N: every connection keeps N messages in flight (batched on datagram
// sockets). What went out and what came back differ by at most the messages in flight at
// the edges of the measured window; every message counted is a whole reply.
void expect_window_agrees(const run_result& r, double window, double connections, double size) {
  ASSERT_EQ(r.status.code, 0) << r.out << r.err;
  EXPECT_EQ(json_number(r.out, "errors_total"), 0) << r.out;
  EXPECT_EQ(json_number(r.out, "window"), window) << r.out;
  const double messages = json_number(r.out, "messages");
  EXPECT_GT(messages, 10 * window * connections) << "the window kept moving: " << r.out;
  const double sent = json_number(r.out, "bytes_sent");
  const double received = json_number(r.out, "bytes_received");
  EXPECT_LE(std::abs(sent - received), window * connections * size) << r.out;
  EXPECT_EQ(received, messages * size) << r.out;
}

TEST(bench_cli, pingpong_window_keeps_n_in_flight_on_datagram_and_stream_targets) {
  fd_leak_guard guard;
  for (const char* model : {"epoll", "blocking"}) {
    server_process udp_server({.model = model, .codec = "raw", .listen = "udp://127.0.0.1:0"});
    auto r = bench({"pingpong", "--connect", udp_server.uri(), "--connections", "3", "--window",
                    "8", "--duration", "0.3", "--warmup", "0.1", "--json"});
    SCOPED_TRACE(model);
    expect_window_agrees(r, 8, 3, 64);
  }
  server_process tcp_server({.codec = "raw"});
  auto tcp = bench({"pingpong", "--connect", tcp_server.uri(), "--connections", "2", "--window",
                    "4", "--duration", "0.3", "--warmup", "0.1", "--json"});
  expect_window_agrees(tcp, 4, 2, 64);
  auto text = bench({"pingpong", "--connect", tcp_server.uri(), "--window", "3", "--duration",
                     "0.2", "--warmup", "0"});
  EXPECT_NE(text.out.find(" window=3 "), std::string::npos) << text.out;
}

// Replies dropped on the way back (udp-relay --loss): each lost one counts as "timeout"
// after --timeout and a fresh request takes its place, so the window never runs dry.
TEST(bench_cli, pingpong_window_refills_after_lost_datagrams) {
  fd_leak_guard guard;
  server_process server({.codec = "raw", .listen = "udp://127.0.0.1:0"});
  child_process relay({{netkit_cli(), "udp-relay", "--listen", "udp://127.0.0.1:0", "--forward",
                        server.uri(), "--loss", "0.2", "--seed", "5", "--impair", "to-client"}});
  auto banner = relay.read_line(deadline_after(10s));
  ASSERT_TRUE(banner) << relay.stderr_text();
  const std::string prefix = "listening on ";
  ASSERT_TRUE(banner->starts_with(prefix)) << *banner;
  const auto uri = banner->substr(prefix.size(), banner->find(' ', prefix.size()) - prefix.size());
  // A 100 ms timeout: long beside a loopback round trip, so a reply that comes later still
  // (the machine busy) is rare, and counted "stale" below.
  auto r = bench({"pingpong", "--connect", uri, "--connections", "2", "--window", "8", "--timeout",
                  "0.1", "--duration", "1", "--warmup", "0.1", "--json"});
  relay.signal(SIGTERM);
  ASSERT_TRUE(relay.wait(deadline_after(10s)));
  EXPECT_EQ(r.status.code, 1) << "losses are errors: " << r.out << r.err;
  const double lost = json_number(r.out, "timeout");
  const double messages = json_number(r.out, "messages");
  EXPECT_GT(lost, 0) << r.out;
  // 16 in flight, a fifth of them lost: without refills the window would be empty after
  // well under 100 replies.
  EXPECT_GT(messages, 200) << r.out;
  // Losses are about a fifth of what came back and went missing (wide bounds: a short run).
  EXPECT_GT(lost / (lost + messages), 0.05) << r.out;
  EXPECT_LT(lost / (lost + messages), 0.4) << r.out;
  // A reply that comes after its request was given up on matches nothing outstanding (the
  // sequence numbers tell it from the refill's): counted "stale", never as a reply, so at
  // most one per request given up on.
  const double stale =
      r.out.find("\"stale\"") == std::string::npos ? 0 : json_number(r.out, "stale");
  EXPECT_LE(stale, lost) << "a late reply matched a newer request: " << r.out;
}

// A server that accepts but never answers (here: it waits for a newline that raw blocks
// never carry) leaves every connector waiting. Past --timeout each cycle is a "timeout"
// error (exit 1); in a window shorter than that, no cycle ends either way, and the report
// says so rather than showing a quiet "0 connections/s".
TEST(bench_cli, churn_against_a_server_that_never_replies_is_reported) {
  fd_leak_guard guard;
  server_process server({.codec = "line"});
  auto stalled = bench({"churn", "--connect", server.uri(), "--connections", "2", "--duration",
                        "1.0", "--warmup", "0.1", "--timeout", "0.1", "--json"});
  EXPECT_EQ(stalled.status.code, 1) << stalled.out << stalled.err;
  EXPECT_EQ(json_number(stalled.out, "messages"), 0) << stalled.out;
  EXPECT_GT(json_number(stalled.out, "timeout"), 0) << stalled.out;
  auto short_window = bench({"churn", "--connect", server.uri(), "--connections", "2", "--duration",
                             "0.2", "--warmup", "0.05", "--timeout", "30"});
  EXPECT_EQ(short_window.status.code, 0) << short_window.out << short_window.err;
  EXPECT_NE(short_window.out.find("note: not one cycle finished in the window, and none failed"),
            std::string::npos)
      << short_window.out;
}

TEST(bench_cli, churn_counts_connections_and_idle_connections_stay_open) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  auto churn = bench({"churn", "--connect", server.uri(), "--connections", "4", "--duration", "0.3",
                      "--warmup", "0.1", "--server-pid", std::to_string(server.pid()), "--json"});
  ASSERT_EQ(churn.status.code, 0) << churn.out << churn.err;
  const double connects = json_number(churn.out, "connects");
  EXPECT_GT(connects, 10);
  EXPECT_GT(json_number(churn.out, "connects_per_s"), 30);
  // What churn costs the server is per connection.
  const double cpu = json_number(churn.out, "server_cpu_s");
  EXPECT_NEAR(json_number(churn.out, "server_cpu_us_per_conn"), cpu * 1e6 / connects,
              0.001 * cpu * 1e6 / connects + 0.001);
  // The server slept between connections (4 connectors cannot keep it busy); per
  // connection as the CPU is.
  const double sleeps = json_number(churn.out, "server_sleeps");
  EXPECT_GT(sleeps, 0) << churn.out;
  EXPECT_NEAR(json_number(churn.out, "server_sleeps_per_conn"), sleeps / connects,
              0.001 * sleeps / connects + 0.001);
  // Each cycle connects once and exchanges once; cycles cut by the window's edges differ.
  EXPECT_NEAR(json_number(churn.out, "connects"), json_number(churn.out, "messages"), 4);
  auto idle = bench({"rr", "--connect", server.uri(), "--connections", "2", "--idle", "50",
                     "--duration", "0.3", "--warmup", "0.1", "--json"});
  ASSERT_EQ(idle.status.code, 0) << idle.out << idle.err;
  EXPECT_NE(idle.out.find("\"server_cpu_us_per_conn\":null"), std::string::npos) << idle.out;
  EXPECT_EQ(json_number(idle.out, "idle_established"), 50);
  // When they were all up: the connect phase is timed, in every process.
  EXPECT_GT(json_number(idle.out, "connect_s"), 0);
  EXPECT_LT(json_number(idle.out, "connect_s"), 30);
  auto spread = bench({"rr", "--connect", server.uri(), "--connections", "2", "--processes", "2",
                       "--idle", "300", "--duration", "0.3", "--warmup", "0", "--json"});
  ASSERT_EQ(spread.status.code, 0) << spread.out << spread.err;
  EXPECT_EQ(json_number(spread.out, "idle_established"), 300);
  EXPECT_GT(json_number(spread.out, "connect_s"), 0) << "carried from the worker processes";
  auto text =
      bench({"rr", "--connect", server.uri(), "--idle", "5", "--duration", "0.2", "--warmup", "0"});
  ASSERT_EQ(text.status.code, 0) << text.out << text.err;
  EXPECT_NE(text.out.find("5 of 5 idle in "), std::string::npos) << text.out;
}

TEST(bench_cli, mark_window_writes_one_line_at_each_edge_of_the_window) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  // Two processes of two threads: still one pair of lines, in order.
  auto r = bench({"pingpong", "--connect", server.uri(), "--connections", "4", "--threads", "2",
                  "--processes", "2", "--duration", "0.3", "--warmup", "0.1", "--json",
                  "--mark-window"});
  ASSERT_EQ(r.status.code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "measuring\nmeasured\n");
  EXPECT_GT(json_number(r.out, "messages"), 10);
  auto unmarked =
      bench({"rr", "--connect", server.uri(), "--duration", "0.2", "--warmup", "0.1", "--json"});
  ASSERT_EQ(unmarked.status.code, 0) << unmarked.out << unmarked.err;
  EXPECT_EQ(unmarked.err, "") << "no marks unless asked";
}

TEST(bench_cli, threads_and_processes_merge_their_figures) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  auto r = bench({"rr", "--connect", server.uri(), "--connections", "8", "--threads", "2",
                  "--processes", "2", "--duration", "0.4", "--warmup", "0.1", "--json"});
  ASSERT_EQ(r.status.code, 0) << r.out << r.err;
  EXPECT_EQ(json_number(r.out, "established"), 8);
  EXPECT_GT(json_number(r.out, "messages"), 100);
  EXPECT_EQ(json_number(r.out, "count"), json_number(r.out, "messages"))
      << "every process's histogram arrived";
  EXPECT_EQ(json_number(r.out, "processes"), 2);
}

// Reliability case 39: a server stalled for a second during an open-loop run shows in the
// tail, because latency counts from each request's intended send time.
TEST(bench_cli, rate_mode_shows_a_stalled_server_in_the_tail) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  std::thread staller([&] {
    std::this_thread::sleep_for(1200ms);
    ::kill(server.pid(), SIGSTOP);
    std::this_thread::sleep_for(1000ms);
    ::kill(server.pid(), SIGCONT);
  });
  auto r = bench({"rate", "--connect", server.uri(), "--rate", "1000", "--spacing", "uniform",
                  "--connections", "2", "--warmup", "1", "--duration", "3", "--json"});
  staller.join();
  ASSERT_EQ(r.status.code, 0) << r.out << r.err;
  // A third of the requests were due while the server slept: they waited up to a second.
  EXPECT_GT(json_number(r.out, "p99"), 500'000) << r.out;
  EXPECT_GT(json_number(r.out, "max"), 800'000) << r.out;
  EXPECT_LT(json_number(r.out, "p50"), 500'000) << r.out;
  EXPECT_GT(json_number(r.out, "messages"), 2500) << "the stalled requests are answered, late";
}

// A server that stops answering before the end of an open-loop run: the requests it never
// answers are counted (exit status 1), not left out of the figures as if never sent.
TEST(bench_cli, rate_mode_counts_the_requests_a_stopped_server_never_answers) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  std::thread staller([&] {
    std::this_thread::sleep_for(1200ms);
    ::kill(server.pid(), SIGSTOP);
  });
  auto r = bench({"rate", "--connect", server.uri(), "--rate", "1000", "--spacing", "uniform",
                  "--connections", "2", "--warmup", "0.5", "--duration", "2.5", "--timeout", "0.5",
                  "--json"});
  staller.join();
  ::kill(server.pid(), SIGCONT);
  EXPECT_EQ(r.status.code, 1) << r.out << r.err;
  // ~1.8 s of requests went unanswered; those of the last 0.5 s count as merely in flight.
  EXPECT_GT(json_number(r.out, "unanswered"), 800) << r.out;
}

// Open loop with --reconnect across a server restart: the requests due while no
// connection is open wait with their intended times, so the outage shows in the tail, and
// the requests the lost connections owed are counted.
TEST(bench_cli, rate_mode_with_reconnect_shows_an_outage_in_the_tail) {
  fd_leak_guard guard;
  temp_dir dir;
  const auto path = "unix://" + (dir.path / "echo.sock").string();
  auto server = std::make_unique<server_process>(server_config{.codec = "raw", .listen = path});
  std::thread restarter([&] {
    std::this_thread::sleep_for(1000ms);
    server->process().kill_and_reap();
    std::this_thread::sleep_for(600ms);
    server = std::make_unique<server_process>(server_config{.codec = "raw", .listen = path});
  });
  auto r =
      bench({"rate", "--connect", path, "--rate", "500", "--spacing", "uniform", "--connections",
             "2", "--warmup", "0.3", "--duration", "3", "--reconnect", "--json"});
  restarter.join();
  EXPECT_EQ(r.status.code, 1) << r.out << r.err;  // connections were lost
  EXPECT_GT(json_number(r.out, "max"), 400'000) << "the outage's requests waited" << r.out;
  // Every request due in the window was either answered or counted.
  EXPECT_GT(json_number(r.out, "messages"), 1200) << r.out;
}

// Reliability case 40: the target killed mid-run: exit status 1, partial results written.
TEST(bench_cli, a_target_killed_mid_run_ends_with_partial_results_and_status_1) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  std::thread killer([&] {
    std::this_thread::sleep_for(1000ms);
    server.process().kill_and_reap();
  });
  auto r = bench({"rr", "--connect", server.uri(), "--connections", "3", "--warmup", "0.2",
                  "--duration", "10", "--json"});
  killer.join();
  EXPECT_EQ(r.status.code, 1) << r.out << r.err;
  EXPECT_TRUE(json_true(r.out, "target_lost")) << r.out;
  EXPECT_FALSE(json_true(r.out, "complete")) << r.out;
  EXPECT_GT(json_number(r.out, "messages"), 0) << "what was measured before is kept";
  EXPECT_LT(json_number(r.out, "seconds"), 5);
  EXPECT_TRUE(r.out.find("\"closed\":") != std::string::npos ||
              r.out.find("\"reset\":") != std::string::npos)
      << r.out;
}

// Reliability case 40 with --reconnect: the generator keeps trying to the end of its window
// instead of stopping, and still reports the loss.
TEST(bench_cli, with_reconnect_a_lost_target_is_tried_until_the_end) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  std::thread killer([&] {
    std::this_thread::sleep_for(800ms);
    server.process().kill_and_reap();
  });
  auto r = bench({"rr", "--connect", server.uri(), "--connections", "2", "--warmup", "0.2",
                  "--duration", "2", "--reconnect", "--json"});
  killer.join();
  EXPECT_EQ(r.status.code, 1) << r.out << r.err;
  EXPECT_FALSE(json_true(r.out, "target_lost")) << r.out;
  EXPECT_GT(json_number(r.out, "seconds"), 1.9) << "ran its whole window" << r.out;
  EXPECT_GT(json_number(r.out, "errors_total"), 0) << r.out;
  EXPECT_GT(json_number(r.out, "messages"), 0) << r.out;
}

// Reliability case 38: connect errors are counted by kind, never dropped; running out of
// source addresses (EADDRNOTAVAIL) comes with the advice of more sources or keep-alive.
TEST(bench_cli, connect_errors_are_counted_by_kind_with_advice) {
  fd_leak_guard guard;
  auto refused = bench({"churn", "--connect", "tcp://127.0.0.1:1", "--connections", "2",
                        "--duration", "0.3", "--warmup", "0", "--json"});
  EXPECT_EQ(refused.status.code, 1) << refused.out << refused.err;
  EXPECT_GT(json_number(refused.out, "refused"), 0) << refused.out;
  server_process server({.codec = "raw"});
  // 192.0.2.1 (TEST-NET-1) is no address of this host: binding to it fails as an exhausted
  // port range does, with EADDRNOTAVAIL.
  auto unavailable = bench({"churn", "--connect", server.uri(), "--source", "192.0.2.1",
                            "--connections", "2", "--duration", "0.3", "--warmup", "0"});
  EXPECT_EQ(unavailable.status.code, 1) << unavailable.out << unavailable.err;
  EXPECT_NE(unavailable.out.find("addr_not_avail="), std::string::npos) << unavailable.out;
  EXPECT_NE(unavailable.out.find("--source 127.0.0.1-127.0.0.8"), std::string::npos)
      << unavailable.out;
  auto rr = bench({"rr", "--connect", "tcp://127.0.0.1:1", "--duration", "0.2", "--json"});
  EXPECT_EQ(rr.status.code, 1) << rr.out << rr.err;
  EXPECT_TRUE(json_true(rr.out, "target_lost")) << rr.out;
}

// SIGINT (here with worker processes too): the figures so far, flagged, and status 1.
TEST(bench_cli, a_stop_signal_prints_the_partial_results) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  for (const char* processes : {"1", "2"}) {
    child_process run(
        child_options{{netkit_cli(), "bench", "rr", "--connect", server.uri(), "--connections", "2",
                       "--processes", processes, "--warmup", "0.2", "--duration", "30", "--json"},
                      std::nullopt,
                      {}});
    std::this_thread::sleep_for(1500ms);
    run.signal(SIGINT);
    std::string out;
    auto until = deadline_after(20s);
    while (auto line = run.read_line(until))
      out += *line;
    auto status = run.wait(until);
    ASSERT_TRUE(status.has_value()) << processes;
    EXPECT_EQ(status->code, 1) << processes << out << run.stderr_text();
    EXPECT_TRUE(json_true(out, "interrupted")) << processes << out;
    EXPECT_GT(json_number(out, "messages"), 0) << processes << out;
    EXPECT_LT(json_number(out, "seconds"), 10) << processes << out;
  }
}

// The progress line appears on a terminal (script(1) gives the run one) and never in a pipe.
TEST(bench_cli, draws_a_progress_line_only_on_a_terminal) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  const std::string command = netkit_cli() + " bench rr --connect " + server.uri() +
                              " --connections 2 --warmup 0.2 --duration 1.5";
  auto piped = run_program({"/bin/sh", "-c", command});
  ASSERT_EQ(piped.status.code, 0) << piped.out << piped.err;
  EXPECT_EQ(piped.out.find('\r'), std::string::npos) << piped.out;
  if (!std::filesystem::exists("/usr/bin/script")) GTEST_SKIP() << "no script(1) for a pty";
  auto tty = run_program({"/usr/bin/script", "-qfec", command, "/dev/null"});
  ASSERT_EQ(tty.status.code, 0) << tty.out << tty.err;
  EXPECT_NE(tty.out.find("msgs/s  p99"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find('\r'), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("latency us:"), std::string::npos) << "the summary follows" << tty.out;
}

TEST(bench_cli, spreads_connections_over_a_source_range) {
  fd_leak_guard guard;
  server_process server({.codec = "raw"});
  auto r = bench({"churn", "--connect", server.uri(), "--source", "127.0.0.2-127.0.0.4",
                  "--connections", "3", "--duration", "0.3", "--warmup", "0", "--json"});
  ASSERT_EQ(r.status.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\"sources\":[\"127.0.0.2\",\"127.0.0.3\",\"127.0.0.4\"]"),
            std::string::npos)
      << r.out;
  EXPECT_GT(json_number(r.out, "connects"), 3);
}

// --server-pid: the server's CPU over the same window the messages were counted in, its
// descendants included: a fork-per-connection server does its work in children.
TEST(bench_cli, server_pid_reports_the_server_trees_cpu_per_message) {
  fd_leak_guard guard;
  for (const std::string model : {"epoll", "fork"}) {
    server_process server({.model = model, .codec = "raw"});
    auto r =
        bench({"pingpong", "--connect", server.uri(), "--connections", "4", "--duration", "0.5",
               "--warmup", "0.1", "--server-pid", std::to_string(server.pid()), "--json"});
    ASSERT_EQ(r.status.code, 0) << model << r.out << r.err;
    const double cpu = json_number(r.out, "server_cpu_s");
    const double messages = json_number(r.out, "messages");
    EXPECT_EQ(json_number(r.out, "server_pid"), server.pid());
    // A server echoing flat out for 0.5 s spends a good part of it (the fork model's
    // parent only waits: the children's CPU is what counts).
    EXPECT_GT(cpu, 0.05) << model << r.out;
    EXPECT_LT(cpu, 0.5 * 2 + 0.1) << model << " more than 2 CPUs for the window: " << r.out;
    EXPECT_NEAR(json_number(r.out, "server_cpu_us_per_msg"), cpu * 1e6 / messages,
                0.001 * cpu * 1e6 / messages + 0.001);
    // The process's own sleeps (the fork model's parent too: it waits in accept), a
    // count; per connection only in churn.
    EXPECT_EQ(r.out.find("\"server_sleeps\":null"), std::string::npos) << model << r.out;
    EXPECT_GE(json_number(r.out, "server_sleeps"), 0) << model << r.out;
    EXPECT_NE(r.out.find("\"server_sleeps_per_conn\":null"), std::string::npos) << r.out;
  }
  auto text = bench({"rr", "--connect", server_process({.codec = "raw"}).uri(), "--duration", "0.2",
                     "--warmup", "0", "--server-pid", std::to_string(::getpid())});
  EXPECT_NE(text.out.find("server CPU (pid"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("server slept "), std::string::npos) << text.out;
  auto missing = bench({"rr", "--connect", "tcp://127.0.0.1:9", "--server-pid", "999999999"});
  EXPECT_NE(missing.status.code, 0);
  EXPECT_NE(missing.err.find("--server-pid 999999999: no such process"), std::string::npos)
      << missing.err;
}

// A server that accepts but never answers in the client's framing (echo-server's default
// codec is line; bench sends raw blocks without a newline): an error with advice, status 1.
TEST(bench_cli, a_server_that_never_replies_is_an_error_not_a_quiet_zero) {
  fd_leak_guard guard;
  server_process server({.codec = "line"});
  auto r = bench({"rr", "--connect", server.uri(), "--connections", "2", "--duration", "0.3",
                  "--warmup", "0", "--json"});
  EXPECT_EQ(r.status.code, 1) << r.out;
  EXPECT_EQ(json_number(r.out, "messages"), 0);
  EXPECT_NE(r.out.find("\"no_reply\":1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--codec"), std::string::npos) << "the advice names the likely cause";
}

TEST(bench_cli, refuses_what_cannot_run_with_a_clear_message) {
  struct bad {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<bad> cases = {
      {{"churn", "--connect", "udp://127.0.0.1:9"}, "has no connections"},
      {{"rate", "--connect", "tcp://127.0.0.1:9"}, "--rate"},
      {{"rr", "--connect", "unix:///tmp/x", "--source", "127.0.0.1"}, "tcp://"},
      {{"rr", "--connect", "tcp://127.0.0.1:9", "--source", "127.0.0.9-127.0.0.1"}, "upwards"},
      {{"rr", "--connect", "tcp://127.0.0.1:9", "--threads", "4"}, "more workers"},
      {{"rr", "--connect", "tcp://127.0.0.1:9", "--protocol", "sockperf", "--codec", "line"},
       "its own frame"},
      {{"rr", "--connect", "udp://127.0.0.1:9", "--size", "70000"}, "largest datagram"},
      {{"bogus", "--connect", "tcp://127.0.0.1:9"}, "mode"},
      {{"rr", "--connect", "udp://127.0.0.1:9", "--window", "4"},
       "--window 4: only bench pingpong"},
      {{"pingpong", "--connect", "udp://127.0.0.1:9", "--window", "2000"}, "--window"},
  };
  for (const auto& c : cases) {
    auto r = bench(c.args);
    EXPECT_NE(r.status.code, 0) << c.args.front();
    EXPECT_NE((r.err + r.out).find(c.says), std::string::npos) << r.err << r.out;
  }
}

}  // namespace
}  // namespace netkit::test
