// `netkit echo-server --model prefork`: the parent accepts and hands each connection to a
// forked worker with SCM_RIGHTS. Exact echoes with more clients than workers, a killed
// worker replaced without zombies, no descriptor leak in the passing path, clean SIGTERM.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "netkit/socket.hpp"
#include "support/client_io.hpp"
#include "support/echo_driver.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int workers = 4;

server_config prefork_config(std::string codec = "line") {
  server_config cfg;
  cfg.model = "prefork";
  cfg.codec = std::move(codec);
  cfg.extra_args = {"--workers", std::to_string(workers)};
  return cfg;
}

// Polls until `pid` has exactly `n` children, none a zombie, and none of `gone`.
bool wait_for_workers(pid_t pid, std::size_t n, const std::vector<pid_t>& gone, deadline until) {
  for (;;) {
    auto now = children_of(pid);
    bool ok = now.size() == n && zombie_children(pid) == 0;
    for (pid_t g : gone)
      ok = ok && std::find(now.begin(), now.end(), g) == now.end();
    if (ok) return true;
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(10ms);
  }
}

std::vector<echo_plan> plans_for(const std::string& codec, std::size_t clients,
                                 std::uint64_t seed) {
  auto spec = codec_spec::parse(codec);
  std::mt19937_64 rng(seed);
  std::vector<echo_plan> out(clients);
  for (auto& p : out) {
    p.block = std::make_shared<std::vector<std::byte>>(make_framed_stream(spec, rng, 64, 700));
    p.max_split = 300;
    p.half_close = true;
  }
  return out;
}

void expect_clean_stop(server_process& server) {
  auto end = server.terminate();
  ASSERT_TRUE(end) << "server did not stop";
  EXPECT_TRUE(end->exited_normally()) << end->describe() << server.log();
}

class prefork_codec_test : public testing::TestWithParam<std::string> {};

TEST_P(prefork_codec_test, one_client_exact_echo) {
  fd_leak_guard guard;
  server_process server(prefork_config(GetParam()));
  EXPECT_NE(server.banner().find("model=prefork codec="), std::string::npos) << server.banner();
  EXPECT_NE(server.banner().find(" workers=4 nofile="), std::string::npos) << server.banner();
  auto p = plans_for(GetParam(), 1, 1);
  auto run = run_echo_clients(server.local(), p, deadline_after(stretch(20s)), 1);
  EXPECT_EQ(run.problems(p), "");
  expect_clean_stop(server);
}

// 20 clients, 4 workers: 16 wait in the backlog at first and are all served in turn.
TEST_P(prefork_codec_test, twenty_concurrent_clients_more_than_workers_exact_echo) {
  fd_leak_guard guard;
  server_process server(prefork_config(GetParam()));
  auto p = plans_for(GetParam(), 20, 2);
  auto run = run_echo_clients(server.local(), p, deadline_after(stretch(30s)), 2);
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.problems(p), "");
  EXPECT_EQ(children_of(server.pid()).size(), std::size_t{workers});
  expect_clean_stop(server);
}

INSTANTIATE_TEST_SUITE_P(codecs, prefork_codec_test,
                         testing::Values("line", "crlf", "length", "length16", "fixed:16", "raw"),
                         [](const auto& p) {
                           std::string n = p.param;
                           for (char& c : n)
                             if (c == ':') c = '_';
                           return n;
                         });

TEST(prefork, unix_socket_echo_and_file_removed_on_exit) {
  fd_leak_guard guard;
  auto dir = fs::temp_directory_path() / ("netkit-prefork-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto path = dir / "echo.sock";
  auto cfg = prefork_config("length");
  cfg.listen = "unix://" + path.string();
  {
    server_process server(cfg);
    EXPECT_EQ(server.uri(), cfg.listen);
    auto p = plans_for("length", 8, 3);
    auto run = run_echo_clients(server.local(), p, deadline_after(stretch(20s)), 3);
    EXPECT_EQ(run.problems(p), "");
    expect_clean_stop(server);
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(path))) << "socket file left behind";
  fs::remove_all(dir);
}

TEST(prefork, killed_worker_is_reaped_and_replaced_and_service_continues) {
  fd_leak_guard guard;
  server_process server(prefork_config());
  ASSERT_TRUE(wait_for_workers(server.pid(), workers, {}, deadline_after(stretch(5s))));
  auto before = children_of(server.pid());
  ASSERT_EQ(before.size(), std::size_t{workers});

  // An idle worker, and then one busy serving a client.
  ASSERT_EQ(::kill(before[0], SIGKILL), 0);
  ASSERT_TRUE(wait_for_workers(server.pid(), workers, {before[0]}, deadline_after(stretch(10s))))
      << "children now: " << children_of(server.pid()).size() << "\n"
      << server.log();
  EXPECT_EQ(zombie_children(server.pid()), 0);

  auto busy = connect_client(server.local());
  EXPECT_EQ(line_round_trip(busy.get(), "hello", deadline_after(stretch(5s))), "");
  auto middle = children_of(server.pid());
  for (pid_t w : middle)
    ASSERT_EQ(::kill(w, SIGKILL), 0);  // every worker, the busy one included
  auto closed = wait_for_close(busy.get(), deadline_after(stretch(5s)));
  EXPECT_NE(closed.end, read_end::timeout) << "the killed worker's client was not closed";
  ASSERT_TRUE(wait_for_workers(server.pid(), workers, middle, deadline_after(stretch(10s))))
      << server.log();
  EXPECT_EQ(zombie_children(server.pid()), 0);
  EXPECT_NE(server.log().find("started worker"), std::string::npos) << server.log();

  auto p = plans_for("line", 8, 4);
  auto run = run_echo_clients(server.local(), p, deadline_after(stretch(20s)), 4);
  EXPECT_EQ(run.problems(p), "");
  EXPECT_EQ(zombie_children(server.pid()), 0);
  expect_clean_stop(server);
}

// Every hand-off closes the parent's copy: after 1000 connections it holds exactly the
// descriptors it held before (listener, channels, stdio).
TEST(prefork, parent_descriptor_count_returns_to_baseline_after_1000_connections) {
  fd_leak_guard guard;
  server_process server(prefork_config());
  ASSERT_TRUE(wait_for_workers(server.pid(), workers, {}, deadline_after(stretch(5s))));
  int baseline = process_fd_count(server.pid());
  auto until = deadline_after(stretch(60s));
  for (int i = 0; i < 1000 && clock::now() < until; ++i) {
    auto c = connect_client(server.local());
    if (i % 2 == 0) {
      ASSERT_EQ(line_round_trip(c.get(), "ping " + std::to_string(i), until), "") << i;
    }
  }
  // The last connections may still be in the parent's hands for a moment.
  int now = process_fd_count(server.pid());
  for (int i = 0; i < 200 && now != baseline; ++i) {
    std::this_thread::sleep_for(10ms);
    now = process_fd_count(server.pid());
  }
  EXPECT_EQ(now, baseline) << server.log();
  EXPECT_EQ(children_of(server.pid()).size(), std::size_t{workers});
  expect_clean_stop(server);
}

TEST(prefork, protocol_error_closes_that_connection_only_and_names_the_peer) {
  fd_leak_guard guard;
  server_process server(prefork_config("length,max=1024"));
  auto good = connect_client(server.local());
  auto bad = connect_client(server.local());
  // A length header far above max=1024.
  const unsigned char header[4] = {0x00, 0x10, 0x00, 0x00};
  send_all(bad.get(), std::as_bytes(std::span(header)));
  auto closed = wait_for_close(bad.get(), deadline_after(stretch(5s)));
  EXPECT_TRUE(closed.end == read_end::eof || closed.end == read_end::reset)
      << to_string(closed.end);
  auto local = local_endpoint(bad.get(), transport::tcp).to_uri();
  auto until = deadline_after(stretch(5s));
  while (server.log().find(local) == std::string::npos && clock::now() < until)
    std::this_thread::sleep_for(10ms);
  EXPECT_NE(server.log().find("protocol error"), std::string::npos) << server.log();
  EXPECT_NE(server.log().find(local), std::string::npos) << server.log();
  // The other connection is still served.
  const unsigned char frame[7] = {0, 0, 0, 3, 'a', 'b', 'c'};
  send_all(good.get(), std::as_bytes(std::span(frame)));
  auto echo = read_exactly(good.get(), sizeof frame, deadline_after(stretch(5s)));
  EXPECT_EQ(echo.end, read_end::data);
  EXPECT_EQ(echo.bytes, std::vector<std::byte>(std::as_bytes(std::span(frame)).begin(),
                                               std::as_bytes(std::span(frame)).end()));
  expect_clean_stop(server);
}

TEST(prefork, sigterm_exits_zero_and_every_worker_is_gone) {
  fd_leak_guard guard;
  server_process server(prefork_config());
  ASSERT_TRUE(wait_for_workers(server.pid(), workers, {}, deadline_after(stretch(5s))));
  auto pids = children_of(server.pid());
  // One worker is busy with a client that stays connected and silent.
  auto idle_client = connect_client(server.local());
  EXPECT_EQ(line_round_trip(idle_client.get(), "x", deadline_after(stretch(5s))), "");
  auto start = clock::now();
  expect_clean_stop(server);
  EXPECT_LT(clock::now() - start, stretch(4s)) << "a busy worker held up the shutdown";
  for (pid_t w : pids) {
    errno = 0;
    EXPECT_EQ(::kill(w, 0), -1) << "worker " << w << " outlived the server";
    EXPECT_EQ(errno, ESRCH);
  }
  auto end = wait_for_close(idle_client.get(), deadline_after(stretch(5s)));
  EXPECT_NE(end.end, read_end::timeout);
}

TEST(prefork, listed_as_a_stream_model_and_workers_needs_prefork) {
  child_process list(echo_server_command({"--list-models"}));
  std::string out;
  auto until = deadline_after(stretch(10s));
  while (auto line = list.read_line(until))
    out += *line + "\n";
  auto st = list.wait(until);
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->exited_normally());
  auto stream = out.find("stream models");
  auto prefork = out.find("  prefork ");
  auto dgram = out.find("datagram models");
  EXPECT_TRUE(stream < prefork && prefork < dgram) << out;

  child_process wrong(
      echo_server_command({"--listen", "tcp://127.0.0.1:0", "--model", "epoll", "--workers", "2"}));
  auto wst = wrong.wait(deadline_after(stretch(10s)));
  ASSERT_TRUE(wst);
  EXPECT_NE(wst->code, 0);
  EXPECT_NE(wrong.stderr_text().find("--workers"), std::string::npos) << wrong.stderr_text();
}

}  // namespace
}  // namespace netkit::test
