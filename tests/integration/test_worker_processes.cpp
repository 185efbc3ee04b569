// `netkit echo-server --processes N` (the event-loop models and the multi-reactor): N worker
// processes, each with its own loop and SO_REUSEPORT listener (made by the parent before
// fork), supervised by the parent:
//  - the workers exist and every one serves (connections counted from /proc/W/fd), exact
//    echoes, on every backend;
//  - together they hold more connections than one process may have descriptors;
//  - kill -9 of a worker → replaced, logged with its pid and wait status, and the server
//    still serves;
//  - SIGTERM → exit 0, every worker gone, no zombie;
//  - unix://: one listener shared by the workers; the socket file removed at exit;
//  - --processes with --threads: a multi-reactor in every worker, both accept strategies.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/backend_params.hpp"
#include "support/client_io.hpp"
#include "support/echo_driver.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/process_tree.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

server_config processes_config(const std::string& model, std::size_t processes) {
  server_config cfg;
  cfg.model = model;
  cfg.codec = "line";
  cfg.extra_args = {"--processes", std::to_string(processes)};
  return cfg;
}

// `count` connections, each checked with one exact line echo (so each is accepted and
// served before the next opens).
std::vector<unique_fd> open_served(const endpoint& server, std::size_t count) {
  std::vector<unique_fd> out;
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(connect_client(server));
    auto problem =
        line_round_trip(out.back().get(), fmt::format("hello {}", i), deadline_after(stretch(5s)));
    if (!problem.empty()) throw std::runtime_error(fmt::format("connection {}: {}", i, problem));
  }
  return out;
}

// Connections each worker holds: its sockets less its `listeners`.
std::vector<std::size_t> connections_per_worker(const std::vector<pid_t>& workers,
                                                std::size_t listeners) {
  std::vector<std::size_t> out;
  for (pid_t w : workers) {
    auto sockets = socket_count(w);
    out.push_back(sockets >= listeners ? sockets - listeners : 0);
  }
  return out;
}

// Many clients at once, exact echoes with random splits.
std::string exact_echo_problems(const endpoint& server, std::size_t clients, std::uint64_t seed) {
  auto spec = codec_spec::parse("line");
  std::mt19937_64 rng(seed);
  std::vector<echo_plan> plans(clients);
  for (auto& p : plans) {
    p.block = std::make_shared<std::vector<std::byte>>(make_framed_stream(spec, rng, 40, 2000));
    p.max_split = 300;
  }
  auto run = run_echo_clients(server, plans, deadline_after(stretch(30s)), seed);
  return run.problems(plans);
}

// SIGTERM → exit 0 and none of `workers` left, not even as a zombie (kill(pid, 0) finds
// a zombie too).
void expect_clean_stop(server_process& server, const std::vector<pid_t>& workers) {
  auto end = server.terminate();
  ASSERT_TRUE(end) << "server did not stop within 10 s of SIGTERM";
  EXPECT_TRUE(end->exited_normally()) << end->describe() << "\n" << server.log();
  for (pid_t w : workers) {
    errno = 0;
    EXPECT_EQ(::kill(w, 0), -1) << "worker " << w << " outlived the server";
    EXPECT_EQ(errno, ESRCH);
  }
}

class worker_processes_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }
};

// 3 workers on one port: 60 long-lived connections land on every one of them (the kernel's
// SO_REUSEPORT hash), each worker holds its share, 40 concurrent clients echo exactly, and
// SIGTERM stops them all.
TEST_P(worker_processes_test, every_worker_serves_its_share_and_sigterm_stops_them_all) {
  fd_leak_guard guard;
  constexpr std::size_t processes = 3;
  server_process server(processes_config(GetParam(), processes));
  EXPECT_NE(
      server.banner().find(fmt::format("model={} codec=line processes=3 nofile=", GetParam())),
      std::string::npos)
      << server.banner();
  ASSERT_TRUE(wait_for_workers(server.pid(), processes, {}, deadline_after(stretch(5s))));
  auto workers = children_of(server.pid());

  constexpr std::size_t conns = 60;
  auto clients = open_served(server.local(), conns);
  auto per = connections_per_worker(workers, 1);
  std::size_t total = 0;
  for (std::size_t i = 0; i < per.size(); ++i) {
    EXPECT_GE(per[i], 1u) << "worker " << workers[i] << " holds no connection of " << conns;
    total += per[i];
  }
  EXPECT_EQ(total, conns) << "connections held by the workers";
  EXPECT_EQ(exact_echo_problems(server.local(), 40, 5), "");
  EXPECT_EQ(zombie_children(server.pid()), 0);
  expect_clean_stop(server, workers);
}

INSTANTIATE_TEST_SUITE_P(all, worker_processes_test, every_backend(), param_name{});

// The point of --processes: with RLIMIT_NOFILE at 64 for every process, 4 workers hold 120
// connections at once (no process could hold them alone), each echoing.
TEST(worker_processes, together_they_hold_more_connections_than_one_process_may) {
  fd_leak_guard guard;
  auto cfg = processes_config("epoll", 4);
  cfg.nofile_limit = 64;
  server_process server(cfg);
  EXPECT_NE(server.banner().find("nofile=64/64"), std::string::npos) << server.banner();
  ASSERT_TRUE(wait_for_workers(server.pid(), 4, {}, deadline_after(stretch(5s))));
  auto workers = children_of(server.pid());
  constexpr std::size_t conns = 120;
  auto clients = open_served(server.local(), conns);
  // Every one still open and served after all are connected.
  for (std::size_t i = 0; i < clients.size(); ++i)
    ASSERT_EQ(
        line_round_trip(clients[i].get(), fmt::format("again {}", i), deadline_after(stretch(5s))),
        "")
        << "connection " << i;
  std::size_t total = 0;
  for (auto n : connections_per_worker(workers, 1))
    total += n;
  EXPECT_EQ(total, conns);
  clients.clear();
  expect_clean_stop(server, workers);
  EXPECT_EQ(server.log().find("out of descriptors"), std::string::npos) << server.log();
}

// kill -9 of one worker: the parent logs its pid and wait status, starts another in its
// slot (same listener, so nothing queued on it is lost), leaves no zombie, and new clients
// are all served.
TEST(worker_processes, a_killed_worker_is_replaced_and_logged_and_the_server_still_serves) {
  fd_leak_guard guard;
  server_process server(processes_config("epoll", 2));
  ASSERT_TRUE(wait_for_workers(server.pid(), 2, {}, deadline_after(stretch(5s))));
  auto workers = children_of(server.pid());
  ASSERT_EQ(::kill(workers[0], SIGKILL), 0);
  ASSERT_TRUE(wait_for_workers(server.pid(), 2, {workers[0]}, deadline_after(stretch(5s))))
      << "children now: " << children_of(server.pid()).size() << "\n"
      << server.log();
  EXPECT_EQ(zombie_children(server.pid()), 0);
  auto now = children_of(server.pid());
  pid_t replacement = now[0] == workers[1] ? now[1] : now[0];
  // The parent logs after the fork that made the replacement visible: poll for the line.
  auto replaced = fmt::format("worker {} was killed by signal 9; started worker {} in its place",
                              workers[0], replacement);
  EXPECT_TRUE(eventually([&] { return server.log().find(replaced) != std::string::npos; },
                         deadline_after(stretch(5s))))
      << "want: " << replaced << "\n"
      << server.log();
  EXPECT_EQ(exact_echo_problems(server.local(), 40, 9), "");
  // The replacement serves too (it holds the dead worker's listener).
  auto clients = open_served(server.local(), 40);
  auto per = connections_per_worker(now, 1);
  EXPECT_GE(per[0], 1u) << server.log();
  EXPECT_GE(per[1], 1u) << server.log();
  clients.clear();
  expect_clean_stop(server, now);
  EXPECT_NE(server.log().find("2 workers stopped, 1 replaced while serving"), std::string::npos)
      << server.log();
}

// unix://: SO_REUSEPORT does not balance Unix sockets, so the workers share one listener
// (one accept queue). Every client is served, by the workers only, and the socket file is
// gone after SIGTERM.
TEST(worker_processes, unix_socket_workers_share_one_listener) {
  fd_leak_guard guard;
  temp_dir dir;
  auto path = dir.path / "echo.sock";
  auto cfg = processes_config("epoll", 2);
  cfg.listen = "unix://" + path.string();
  server_process server(cfg);
  EXPECT_EQ(server.uri(), cfg.listen);
  ASSERT_TRUE(wait_for_workers(server.pid(), 2, {}, deadline_after(stretch(5s))));
  auto workers = children_of(server.pid());
  auto clients = open_served(server.local(), 30);
  std::size_t total = 0;
  for (auto n : connections_per_worker(workers, 1))
    total += n;
  EXPECT_EQ(total, 30u);
  EXPECT_EQ(exact_echo_problems(server.local(), 30, 3), "");
  clients.clear();
  expect_clean_stop(server, workers);
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path)))
      << "socket file left behind";
}

// --processes 2 --threads 2: a multi-reactor in every worker. dispatch: 1 listener and 4
// threads per worker (main, acceptor, 2 loops); reuseport: 2 listeners and 3 threads.
TEST(worker_processes, combine_with_threads_under_both_accept_strategies) {
  for (std::string accept : {"dispatch", "reuseport"}) {
    SCOPED_TRACE(accept);
    fd_leak_guard guard;
    auto cfg = processes_config("multi-reactor", 2);
    cfg.extra_args.insert(cfg.extra_args.end(), {"--threads", "2", "--accept", accept});
    server_process server(cfg);
    EXPECT_NE(server.banner().find(fmt::format("processes=2 threads=2 accept={} ", accept)),
              std::string::npos)
        << server.banner();
    ASSERT_TRUE(wait_for_workers(server.pid(), 2, {}, deadline_after(stretch(5s))));
    auto workers = children_of(server.pid());
    std::size_t listeners = accept == "dispatch" ? 1 : 2;
    std::size_t threads = accept == "dispatch" ? 4 : 3;
    // Threads start with the worker; poll briefly for them.
    for (pid_t w : workers) {
      auto until = deadline_after(stretch(5s));
      while (thread_count(w) != threads && clock::now() < until)
        std::this_thread::sleep_for(10ms);
      EXPECT_EQ(thread_count(w), threads) << "worker " << w;
    }
    auto clients = open_served(server.local(), 40);
    std::size_t total = 0;
    for (auto n : connections_per_worker(workers, listeners))
      total += n;
    EXPECT_EQ(total, 40u);
    EXPECT_EQ(exact_echo_problems(server.local(), 30, 4), "");
    clients.clear();
    expect_clean_stop(server, workers);
  }
}

// Options that do not fit are refused with the reason.
TEST(worker_processes, refused_combinations_say_why) {
  struct refused {
    std::vector<std::string> args;
    std::string says;
  };
  for (const auto& r : std::vector<refused>{
           {{"--model", "epoll", "--accept", "dispatch"}, "--accept chooses how the loops"},
           {{"--model", "epoll", "--processes", "0"}, "--processes"},
           {{"--model", "prefork", "--processes", "2"}, "--processes is only for --model"}}) {
    auto args = r.args;
    args.insert(args.begin(), {"--listen", "tcp://127.0.0.1:0"});
    child_process child(echo_server_command(args));
    auto st = child.wait(deadline_after(stretch(10s)));
    ASSERT_TRUE(st);
    EXPECT_NE(st->code, 0) << r.says;
    EXPECT_NE(child.stderr_text().find(r.says), std::string::npos) << child.stderr_text();
  }
}

}  // namespace
}  // namespace netkit::test
