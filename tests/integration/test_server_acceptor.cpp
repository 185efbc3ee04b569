// Reliability cases 1-6 ("Acceptor / listener") against the real `netkit echo-server`,
// on every backend.
#include <sys/socket.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

constexpr const char* strace_path = "/usr/bin/strace";

class acceptor_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }
  server_config config(std::vector<std::string> extra = {}) const {
    server_config c;
    c.model = GetParam();
    c.codec = "line";
    c.extra_args = std::move(extra);
    return c;
  }
  static void expect_clean_stop(server_process& server) {
    auto status = server.terminate();
    ASSERT_TRUE(status) << "echo-server did not stop within 10 s of SIGTERM";
    EXPECT_TRUE(status->exited_normally()) << status->describe() << "\n" << server.log();
  }
  static std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // Why accept errors cannot be injected with strace for this backend, or "" if they can.
  std::string strace_unusable() const {
    if (::access(strace_path, X_OK) != 0) return std::string(strace_path) + " not installed";
    if (is_completion_backend(GetParam()))
      return GetParam() +
             " accepts through io_uring operations, not accept4(2): strace cannot inject "
             "accept errors into it";
    return {};
  }
  // The server under strace (-e trace=TRACE, and -e inject=INJECT unless empty), its trace
  // in a temp file.
  struct traced_server_config {
    server_config config;
    std::string trace_path = "/tmp/netkit-test-strace-XXXXXX";
    unique_fd trace_fd;
    ~traced_server_config() { ::unlink(trace_path.c_str()); }
    std::string trace() const { return read_file(trace_path); }
  };
  void trace_server(traced_server_config& t, std::string trace, std::string inject) const {
    t.trace_fd.reset(::mkstemp(t.trace_path.data()));
    ASSERT_TRUE(t.trace_fd);
    t.config = config();
    t.config.wrapper = {strace_path, "-f", "-qq", "-o", t.trace_path, "-e", "trace=" + trace};
    if (!inject.empty())
      t.config.wrapper.insert(t.config.wrapper.end(), {"-e", "inject=" + inject});
    // LeakSanitizer cannot work under ptrace; every other check stays on.
    t.config.env = {sanitizer_options("ASAN_OPTIONS", "detect_leaks=0")};
  }
  static int count_of(const std::string& text, const std::string& what) {
    int n = 0;
    for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1))
      ++n;
    return n;
  }
};

// Case 1: RLIMIT_NOFILE low, every slot used, 50 more clients → no busy loop (< 10% of
// a core over 2 s), the extra clients get a prompt EOF/RST (spare descriptor), and after
// the fillers leave new clients are served. The server never exits.
TEST_P(acceptor_test, emfile_sheds_without_spinning_and_recovers) {
  fd_leak_guard guard;
  auto c = config();
  c.nofile_limit = 64;
  server_process server(c);
  EXPECT_THAT(server.banner(), HasSubstr("nofile=64/64"));
  // One full connect/echo/close cycle first. Besides checking the server works, this
  // warms UBSan's dynamic-type cache in the sanitizer build: its vptr check probes memory
  // through pipe(2), which fails when every descriptor is in use and would report a
  // false "invalid vptr" on the first virtual call of a kind made while out of fds.
  {
    auto warm = connect_client(server.local());
    ASSERT_EQ(line_round_trip(warm.get(), "warm-up", deadline_after(stretch(5s))), "");
  }
  std::this_thread::sleep_for(50ms);

  std::vector<unique_fd> fillers;
  // Bound: 64 descriptors in the server, so at most 64 fillers succeed.
  for (int i = 0; i < 80; ++i) {
    auto fd = connect_client(server.local());
    if (!line_round_trip(fd.get(), fmt::format("filler {}", i), deadline_after(stretch(2s)))
             .empty())
      break;  // shed: every slot is in use
    fillers.push_back(std::move(fd));
  }
  ASSERT_GT(fillers.size(), 40u);
  ASSERT_LT(fillers.size(), 64u) << "the server never ran out of descriptors";

  auto cpu0 = server.sample().cpu;
  auto t0 = clock::now();
  std::vector<unique_fd> extra;
  for (int i = 0; i < 50; ++i)
    extra.push_back(connect_client(server.local()));
  int closed_promptly = 0;
  for (auto& fd : extra) {
    auto r = wait_for_close(fd.get(), deadline_after(stretch(2s)));
    if (r.end == read_end::eof || r.end == read_end::reset) ++closed_promptly;
  }
  EXPECT_EQ(closed_promptly, 50) << "pending clients must get EOF/RST, not hang";
  std::this_thread::sleep_until(t0 + 2s);
  auto cpu = server.sample().cpu - cpu0;
  auto wall = clock::now() - t0;
  EXPECT_LT(cpu, wall / 10) << "echo-server spins while out of descriptors";
  EXPECT_TRUE(server.alive());

  fillers.clear();
  extra.clear();
  // Served again as soon as descriptors are free.
  std::string problem = "never tried";
  auto until = deadline_after(stretch(5s));
  while (!problem.empty() && clock::now() < until) {
    try {
      auto fd = connect_client(server.local());
      problem = line_round_trip(fd.get(), "after", deadline_after(1s));
    } catch (const std::exception& e) {
      problem = e.what();
      std::this_thread::sleep_for(10ms);
    }
  }
  EXPECT_EQ(problem, "") << server.log();
  ASSERT_TRUE(server.alive()) << server.log();
  expect_clean_stop(server);
}

// Case 2: accept4 fails with EMFILE while the backlog is empty (strace injects it on the
// second accept4, the one that drains after a successful accept) → the spare-descriptor
// path meets EAGAIN and stops: no reopen/accept ping-pong, a few syscalls per wakeup.
TEST_P(acceptor_test, injected_emfile_with_empty_backlog_does_not_ping_pong) {
  if (auto why = strace_unusable(); !why.empty()) GTEST_SKIP() << why;
  fd_leak_guard guard;
  traced_server_config traced;
  ASSERT_NO_FATAL_FAILURE(trace_server(traced, "accept4,openat", "accept4:error=EMFILE:when=2"));
  auto& c = traced.config;
  {
    server_process server(c);
    auto first = connect_client(server.local());
    EXPECT_EQ(line_round_trip(first.get(), "one", deadline_after(stretch(5s))), "");
    auto second = connect_client(server.local());
    EXPECT_EQ(line_round_trip(second.get(), "two", deadline_after(stretch(5s))), "");
    std::this_thread::sleep_for(200ms);
    auto cpu0 = server.sample().cpu;
    std::this_thread::sleep_for(1s);
    EXPECT_LT(server.sample().cpu - cpu0, 100ms);
    expect_clean_stop(server);
  }
  auto trace = traced.trace();
  EXPECT_EQ(count_of(trace, "EMFILE (Too many open files) (INJECTED)"), 1) << trace;
  // accept (ok), accept (EMFILE, injected), shed accept (EAGAIN); then accept (ok),
  // accept (EAGAIN) for the second client: 5, with a little slack for scheduling.
  EXPECT_LE(count_of(trace, "accept4("), 7) << trace;
  // The spare is opened at start and reopened once after the failed shed.
  EXPECT_LE(count_of(trace, "\"/dev/null\""), 3) << trace;
}

// Case 3: accept4 returns ECONNABORTED (injected on calls 1, 4, 7, ...; strace keeps one
// inject rule per syscall) → transient; the listener stays armed and every client is
// served.
TEST_P(acceptor_test, transient_accept_errors_keep_the_listener_armed) {
  if (auto why = strace_unusable(); !why.empty()) GTEST_SKIP() << why;
  fd_leak_guard guard;
  traced_server_config traced;
  ASSERT_NO_FATAL_FAILURE(trace_server(traced, "accept4", "accept4:error=ECONNABORTED:when=1+3"));
  auto& c = traced.config;
  {
    server_process server(c);
    for (int i = 0; i < 3; ++i) {
      auto fd = connect_client(server.local());
      EXPECT_EQ(line_round_trip(fd.get(), fmt::format("client {}", i), deadline_after(stretch(5s))),
                "");
    }
    EXPECT_TRUE(server.alive());
    expect_clean_stop(server);
  }
  auto trace = traced.trace();
  EXPECT_GE(count_of(trace, "ECONNABORTED (Software caused connection abort) (INJECTED)"), 2)
      << trace;
}

// Accepted sockets inherit TCP_NODELAY from the listener it was set on once, so serving a
// connection costs no setsockopt of its own (uring included: options are set with
// setsockopt(2), not through the ring).
TEST_P(acceptor_test, accepted_connections_inherit_nodelay_without_a_setsockopt_each) {
  if (::access(strace_path, X_OK) != 0) GTEST_SKIP() << strace_path << " not installed";
  fd_leak_guard guard;
  traced_server_config traced;
  ASSERT_NO_FATAL_FAILURE(trace_server(traced, "setsockopt", ""));
  {
    server_process server(traced.config);
    for (int i = 0; i < 5; ++i) {
      auto fd = connect_client(server.local());
      EXPECT_EQ(line_round_trip(fd.get(), fmt::format("client {}", i), deadline_after(stretch(5s))),
                "");
    }
    expect_clean_stop(server);
  }
  auto trace = traced.trace();
  EXPECT_EQ(count_of(trace, "TCP_NODELAY"), 1) << "one for the listener, none per connection\n"
                                               << trace;
}

// Case 4: --max-conns N with N+5 clients → the 5 extra are accepted and closed at once
// (logged); the first N are unaffected; the count returns to 0 (N new clients are served
// after everyone leaves).
TEST_P(acceptor_test, max_conns_refuses_the_extra_and_recovers) {
  fd_leak_guard guard;
  constexpr int n = 8;
  server_process server(config({"--max-conns", std::to_string(n)}));
  auto baseline_fds = server.sample().fds;
  for (int round = 0; round < 2; ++round) {
    std::vector<unique_fd> first;
    for (int i = 0; i < n; ++i) {
      first.push_back(connect_client(server.local()));
      ASSERT_EQ(line_round_trip(first.back().get(), fmt::format("r{} c{}", round, i),
                                deadline_after(stretch(5s))),
                "");
    }
    for (int i = 0; i < 5; ++i) {
      auto extra = connect_client(server.local());
      auto r = wait_for_close(extra.get(), deadline_after(stretch(2s)));
      EXPECT_TRUE(r.end == read_end::eof || r.end == read_end::reset)
          << "extra client " << i << ": " << to_string(r.end);
    }
    for (int i = 0; i < n; ++i)
      EXPECT_EQ(line_round_trip(first[i].get(), "still here", deadline_after(stretch(5s))), "");
    first.clear();
    auto until = deadline_after(stretch(5s));
    while (server.sample().fds != baseline_fds && clock::now() < until)
      std::this_thread::sleep_for(10ms);
    EXPECT_EQ(server.sample().fds, baseline_fds);
  }
  EXPECT_THAT(server.log(), HasSubstr("--max-conns 8 reached"));
  expect_clean_stop(server);
}

// Case 5: the server actively closes 1000 connections (they are refused over
// --max-conns 1, so the server's side ends in TIME_WAIT); a restart on the same port
// binds at once (SO_REUSEADDR). A second live instance fails with EADDRINUSE, a clear
// message and a non-zero exit code.
TEST_P(acceptor_test, restart_after_time_wait_binds_and_second_instance_is_refused) {
  fd_leak_guard guard;
  std::string uri;
  {
    server_process server(config({"--max-conns", "1"}));
    uri = server.uri();
    auto holder = connect_client(server.local());
    ASSERT_EQ(line_round_trip(holder.get(), "hold", deadline_after(stretch(5s))), "");
    int closed = 0;
    for (int i = 0; i < 1000; ++i) {
      auto fd = connect_client(server.local());
      auto r = wait_for_close(fd.get(), deadline_after(stretch(2s)));
      if (r.end == read_end::eof) ++closed;
    }
    EXPECT_EQ(closed, 1000);
    expect_clean_stop(server);
  }
  auto c = config();
  c.listen = uri;
  server_process restarted(c);
  EXPECT_EQ(restarted.uri(), uri);
  auto fd = connect_client(restarted.local());
  EXPECT_EQ(line_round_trip(fd.get(), "restarted", deadline_after(stretch(5s))), "");

  child_process second(echo_server_command({"--listen", uri, "--model", GetParam()}));
  auto status = second.wait(deadline_after(stretch(10s)));
  ASSERT_TRUE(status) << "second instance did not exit";
  EXPECT_NE(status->code, 0);
  EXPECT_EQ(status->signal, 0);
  auto err = second.stderr_text();
  EXPECT_THAT(err, HasSubstr("EADDRINUSE"));
  EXPECT_THAT(err, HasSubstr("bind"));
  EXPECT_THAT(err, HasSubstr(uri));
  fd.reset();
  expect_clean_stop(restarted);
}

// Case 6: 200 connects issued back to back (non-blocking, before the server can run)
// → all 200 are accepted and served.
TEST_P(acceptor_test, burst_of_200_connects_is_fully_accepted) {
  fd_leak_guard guard;
  server_process server(config());
  std::mt19937_64 rng(7);
  std::vector<echo_plan> plans(200);
  for (auto& p : plans)
    p.block = std::make_shared<std::vector<std::byte>>(
        make_framed_stream(codec_spec::parse("line"), rng, 3, 100));
  auto run = run_echo_clients(server.local(), plans, deadline_after(stretch(30s)), 8, GetParam());
  EXPECT_EQ(run.problems(plans), "");
  expect_clean_stop(server);
}

INSTANTIATE_TEST_SUITE_P(all, acceptor_test, every_backend(), param_name{});

}  // namespace
}  // namespace netkit::test
