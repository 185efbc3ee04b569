// The inspect layer: TCP_INFO, and the kernel's TCP table from sock_diag and from
// /proc/net/tcp{,6} (forced), on real loopback sockets and on fixed /proc text.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "netkit/error.hpp"
#include "netkit/inspect/process_stat.hpp"
#include "netkit/inspect/socket_table.hpp"
#include "netkit/inspect/tcp_info.hpp"
#include "netkit/socket.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/seccomp.hpp"

namespace netkit::inspect {
namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;

struct connection {
  unique_fd listener, client, server;
  endpoint at, client_end;
};

connection connect_loopback(const char* uri = "tcp://127.0.0.1:0") {
  connection c;
  c.listener = listen_on(endpoint::parse(uri), io_mode::blocking);
  c.at = local_endpoint(c.listener.get(), transport::tcp);
  c.client = connect_to(c.at);
  c.server.reset(::accept4(c.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  c.client_end = local_endpoint(c.client.get(), transport::tcp);
  return c;
}

// The table of `source` until `pred` holds for it (bounded: 1 s).
template <typename Pred>
socket_table table_until(table_source source, std::uint16_t port, Pred pred) {
  auto until = std::chrono::steady_clock::now() + 1s;
  for (;;) {
    auto t = list_tcp_sockets({.port = port, .source = source});
    if (pred(t) || std::chrono::steady_clock::now() >= until) return t;
    std::this_thread::sleep_for(1ms);
  }
}

endpoint any4() {
  return endpoint::parse("tcp://0.0.0.0:0");
}

TEST(tcp_state, names_and_kernel_numbers) {
  EXPECT_EQ(state_name(tcp_state::fin_wait1), "FIN_WAIT_1");
  EXPECT_EQ(state_name(tcp_state::closed), "CLOSED");
  EXPECT_EQ(state_from_kernel(10), tcp_state::listen);
  EXPECT_EQ(state_from_kernel(12), tcp_state::syn_recv);  // TCP_NEW_SYN_RECV
  EXPECT_EQ(state_from_kernel(0), std::nullopt);
  EXPECT_EQ(state_from_kernel(13), std::nullopt);
  EXPECT_EQ(state_bit(tcp_state::listen), 1u << 10);
}

TEST(tcp_info, reports_state_and_counters_of_a_live_connection) {
  test::fd_leak_guard guard;
  auto c = connect_loopback();
  EXPECT_EQ(read_tcp_info(c.listener.get()).state, tcp_state::listen);
  std::string data(1000, 'x');
  ASSERT_EQ(::send(c.client.get(), data.data(), data.size(), MSG_NOSIGNAL), 1000);
  char buf[1000];
  ASSERT_EQ(::recv(c.server.get(), buf, sizeof buf, MSG_WAITALL), 1000);
  auto until = std::chrono::steady_clock::now() + 1s;
  auto info = read_tcp_info(c.client.get());
  while (info.bytes_acked < 1000 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
    info = read_tcp_info(c.client.get());
  }
  EXPECT_EQ(info.state, tcp_state::established);
  EXPECT_GE(info.bytes_acked, 1000u);
  EXPECT_GE(info.bytes_sent, 1000u);
  EXPECT_GT(info.segs_out, 0u);
  EXPECT_GT(info.snd_mss, 0u);
  EXPECT_GT(info.rto.count(), 0);
  EXPECT_GE(read_tcp_info(c.server.get()).bytes_received, 1000u);
}

TEST(tcp_info, refuses_a_socket_that_is_not_tcp) {
  test::fd_leak_guard guard;
  auto udp = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::blocking);
  try {
    read_tcp_info(udp.get());
    FAIL() << "TCP_INFO on a UDP socket succeeded";
  } catch (const sys_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("getsockopt TCP_INFO"));
    EXPECT_THAT(e.what(), HasSubstr("(E"));
  }
}

class socket_table_sources : public testing::TestWithParam<table_source> {};

TEST_P(socket_table_sources, lists_a_listener_and_both_ends_of_a_connection) {
  test::fd_leak_guard guard;
  auto c = connect_loopback();
  auto table = list_tcp_sockets({.port = c.at.port(), .source = GetParam()});
  EXPECT_EQ(table.source, GetParam());
  const auto* l = find_connection(table, c.at, any4());
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->state, tcp_state::listen);
  EXPECT_NE(l->inode, 0u);
  const auto* client = find_connection(table, c.client_end, c.at);
  const auto* server = find_connection(table, c.at, c.client_end);
  ASSERT_NE(client, nullptr);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(client->state, tcp_state::established);
  EXPECT_EQ(server->state, tcp_state::established);
  EXPECT_EQ(client->uid, ::getuid());
  for (const auto& e : table.entries)
    EXPECT_TRUE(e.local.port() == c.at.port() || e.remote.port() == c.at.port());
}

TEST_P(socket_table_sources, filters_by_state) {
  test::fd_leak_guard guard;
  auto c = connect_loopback();
  auto table = list_tcp_sockets(
      {.states = state_bit(tcp_state::established), .port = c.at.port(), .source = GetParam()});
  EXPECT_EQ(find_connection(table, c.at, any4()), nullptr);
  EXPECT_NE(find_connection(table, c.client_end, c.at), nullptr);
  for (const auto& e : table.entries)
    EXPECT_EQ(e.state, tcp_state::established);
}

TEST_P(socket_table_sources, reports_the_time_wait_timer) {
  test::fd_leak_guard guard;
  auto c = connect_loopback();
  c.client.reset();  // the client closes first: its end goes to TIME_WAIT
  char byte;
  ASSERT_EQ(::recv(c.server.get(), &byte, 1, 0), 0);
  c.server.reset();
  auto table = table_until(GetParam(), c.at.port(), [&](const socket_table& t) {
    const auto* e = find_connection(t, c.client_end, c.at);
    return e && e->state == tcp_state::time_wait;
  });
  const auto* e = find_connection(table, c.client_end, c.at);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->state, tcp_state::time_wait);
  EXPECT_EQ(e->timer, socket_timer::time_wait);
  EXPECT_GT(e->expires, 50s);
  EXPECT_LE(e->expires, 60s);
  EXPECT_EQ(e->inode, 0u);
}

TEST_P(socket_table_sources, lists_ipv6_sockets) {
  test::fd_leak_guard guard;
  unique_fd listener;
  try {
    listener = listen_on(endpoint::parse("tcp://[::1]:0"), io_mode::blocking);
  } catch (const sys_error& e) {
    GTEST_SKIP() << "no IPv6 loopback: " << e.what();
  }
  auto at = local_endpoint(listener.get(), transport::tcp);
  auto table = list_tcp_sockets({.port = at.port(), .source = GetParam()});
  const auto* l = find_connection(table, at, endpoint::parse("tcp://[::]:0"));
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->state, tcp_state::listen);
  EXPECT_EQ(l->local.host(), "::1");
}

INSTANTIATE_TEST_SUITE_P(sources, socket_table_sources,
                         testing::Values(table_source::netlink, table_source::proc),
                         [](const auto& p) { return std::string(source_name(p.param)); });

TEST(socket_table, automatic_uses_netlink_where_it_is_allowed) {
  auto table = list_tcp_sockets({.port = 1});
  EXPECT_EQ(table.source, table_source::netlink) << table.fallback_reason;
  EXPECT_TRUE(table.fallback_reason.empty());
}

TEST(socket_table, automatic_falls_back_to_proc_when_netlink_is_refused) {
  test::fd_leak_guard guard;
  // In a child: the filter cannot be removed once installed.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!test::deny_netlink_sockets()) ::_exit(77);
    int code = 0;
    try {
      auto listener = listen_on(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking);
      auto at = local_endpoint(listener.get(), transport::tcp);
      auto table = list_tcp_sockets({.port = at.port()});
      if (table.source != table_source::proc)
        code = 1;
      else if (table.fallback_reason.find("AF_NETLINK") == std::string::npos)
        code = 2;
      else if (!find_connection(table, at, any4()))
        code = 3;
      try {
        list_tcp_sockets({.source = table_source::netlink});
        code = 4;  // forced netlink must fail, not fall back
      } catch (const sys_error& e) {
        if (e.errno_value() != EPERM) code = 5;
      }
    } catch (...) {
      code = 6;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "seccomp unavailable";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: not proc, 2: no reason, 3: listener missing, "
                                       "4: forced netlink succeeded, 5: not EPERM, 6: threw";
}

// Only this test's three sockets: the port filter also keeps other tests' sockets that share
// the port on another loopback address, or that connected from it (tests run in parallel).
std::vector<socket_entry> ours(const socket_table& table, const connection& c) {
  std::vector<socket_entry> kept;
  for (const auto& e : table.entries) {
    bool listener = e.state == tcp_state::listen && e.local == c.at;
    bool client = e.local == c.client_end && e.remote == c.at;
    bool server = e.local == c.at && e.remote == c.client_end;
    if (listener || client || server) kept.push_back(e);
  }
  return kept;
}

std::string describe(const std::vector<socket_entry>& entries) {
  std::string text;
  for (const auto& e : entries)
    text += std::string(state_name(e.state)) + " " + e.local.to_uri() + " -> " + e.remote.to_uri() +
            "\n";
  return text;
}

TEST(socket_table, netlink_and_proc_agree_on_a_connection) {
  test::fd_leak_guard guard;
  auto c = connect_loopback();
  auto from_netlink =
      ours(list_tcp_sockets({.port = c.at.port(), .source = table_source::netlink}), c);
  auto from_proc = ours(list_tcp_sockets({.port = c.at.port(), .source = table_source::proc}), c);
  ASSERT_EQ(from_netlink.size(), 3u) << describe(from_netlink);  // listener, client, server
  ASSERT_EQ(from_proc.size(), 3u) << describe(from_proc);
  for (const auto& e : from_netlink) {
    auto same = std::find_if(from_proc.begin(), from_proc.end(), [&](const socket_entry& p) {
      return p.local == e.local && p.remote == e.remote;
    });
    ASSERT_NE(same, from_proc.end()) << e.local.to_uri() << " -> " << e.remote.to_uri();
    EXPECT_EQ(same->state, e.state);
    EXPECT_EQ(same->inode, e.inode);
    EXPECT_EQ(same->uid, e.uid);
  }
}

// Lines as net/ipv4/tcp_ipv4.c and net/ipv6/tcp_ipv6.c print them.
constexpr std::string_view proc_tcp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode\n"
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000002 00:00000000 00000000  1000        0 "
    "4242 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0100007F:9C40 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 "
    "0 3 0000000000000000\n"
    "   2: 0100007F:1F90 0200007F:A000 03 00000000:00000000 01:00000064 00000002     0        0 "
    "0 2 0000000000000000\n"
    "   3: garbage\n";

TEST(proc_net_tcp, parses_listen_time_wait_and_request_lines) {
  auto entries = parse_proc_net_tcp(proc_tcp, AF_INET, 100);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].state, tcp_state::listen);
  EXPECT_EQ(entries[0].local.to_uri(), "tcp://127.0.0.1:8080");
  EXPECT_EQ(entries[0].remote.to_uri(), "tcp://0.0.0.0:0");
  EXPECT_EQ(entries[0].recv_queue, 2u);
  EXPECT_EQ(entries[0].uid, 1000u);
  EXPECT_EQ(entries[0].inode, 4242u);
  EXPECT_EQ(entries[0].timer, socket_timer::none);

  EXPECT_EQ(entries[1].state, tcp_state::time_wait);
  EXPECT_EQ(entries[1].local.to_uri(), "tcp://127.0.0.1:40000");
  EXPECT_EQ(entries[1].timer, socket_timer::time_wait);
  EXPECT_EQ(entries[1].expires, 60000ms);  // 0x1770 ticks at 100 Hz

  EXPECT_EQ(entries[2].state, tcp_state::syn_recv);
  EXPECT_EQ(entries[2].remote.to_uri(), "tcp://127.0.0.2:40960");
  EXPECT_EQ(entries[2].timer, socket_timer::retransmit);
  EXPECT_EQ(entries[2].expires, 1000ms);
  EXPECT_EQ(entries[2].retransmits, 2u);
}

TEST(proc_net_tcp, parses_ipv6_addresses) {
  constexpr std::string_view text =
      "  sl  local_address                         remote_address                        st "
      "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A "
      "00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0\n";
  auto entries = parse_proc_net_tcp(text, AF_INET6, 100);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].local.to_uri(), "tcp://[::1]:8080");
  EXPECT_EQ(entries[0].remote.to_uri(), "tcp://[::]:0");
  EXPECT_EQ(entries[0].inode, 77u);
}

TEST(proc_net_tcp, skips_lines_that_do_not_parse) {
  EXPECT_TRUE(parse_proc_net_tcp("", AF_INET, 100).empty());
  EXPECT_TRUE(
      parse_proc_net_tcp("   0: 0100007F:1F90 00000000:0000 FF 0:0 0:0 0 0 0 1\n", AF_INET, 100)
          .empty());  // state 0xFF
  EXPECT_TRUE(parse_proc_net_tcp("   0: 0100007F 00000000:0000 0A 0:0 0:0 0 0 0 1\n", AF_INET, 100)
                  .empty());  // no port
  EXPECT_TRUE(parse_proc_net_tcp("   0: 0100007F:1F90\n", AF_INET, 100).empty());
}

// A process tree's CPU: a child burning CPU counts while it runs (a live descendant) and
// after it is reaped (the parent's cutime), never twice.
TEST(process_stat, tree_cpu_counts_live_and_reaped_children_once) {
  auto self = read_process_stat(::getpid());
  ASSERT_TRUE(self);
  EXPECT_EQ(self->state, 'R');
  EXPECT_EQ(self->parent, ::getppid());
  // In nanoseconds for a single-threaded process (the child below): checked there.
  const double before = process_tree_cpu_seconds(::getpid()).value();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Burn 0.3 s of CPU (its own clock: a loaded machine stretches the wall time), say so,
    // then wait to be killed. Bounded: 10 s of wall time at most, then exit.
    const auto wall_limit = std::chrono::steady_clock::now() + 10s;
    timespec used{};
    unsigned long spin = 0;
    do {
      for (int i = 0; i < 100000; ++i)
        spin = spin * 31 + 7;
      ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
    } while (used.tv_sec * 1'000'000'000L + used.tv_nsec < 300'000'000L &&
             std::chrono::steady_clock::now() < wall_limit);
    if (spin == 42) ::_exit(2);  // keeps the loop from being optimised away
    char c = 'x';
    (void)!::write(ready[1], &c, 1);
    ::sleep(10);
    ::_exit(0);
  }
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  EXPECT_THAT(children_of(::getpid()), testing::Contains(child));
  const auto exact = exact_cpu_seconds(child);
  ASSERT_TRUE(exact) << "a single-threaded child";
  EXPECT_GE(*exact, 0.29) << "the child's 0.3 s, to the nanosecond";
  EXPECT_NEAR(*exact, read_process_stat(child)->cpu_s, 0.02) << "and the tick-rounded figure";
  const double live = process_tree_cpu_seconds(::getpid()).value();
  EXPECT_GE(live - before, 0.25) << "a live child's CPU time";
  ::kill(child, SIGKILL);
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  const double reaped = process_tree_cpu_seconds(::getpid()).value();
  EXPECT_GE(reaped - before, 0.25) << "a reaped child's CPU time, through cutime";
  EXPECT_LT(reaped - live, 0.2) << "counted once, not twice";
  EXPECT_FALSE(read_process_stat(child)) << "gone once reaped";
  EXPECT_FALSE(process_tree_cpu_seconds(child));
}

// Every wait that blocks is one voluntary context switch: a thread that sleeps 20 times
// adds at least 20 (other waits of the process may add more), and a gone process has none.
TEST(process_stat, voluntary_switches_count_each_sleep) {
  const auto before = voluntary_switches(::getpid());
  ASSERT_TRUE(before);
  std::promise<void> slept, may_end;
  std::thread sleeper([&slept, end = may_end.get_future()] {
    for (int i = 0; i < 20; ++i)
      std::this_thread::sleep_for(1ms);
    slept.set_value();
    end.wait_for(10s);  // bounded; an ended thread would take its count with it
  });
  const bool done = slept.get_future().wait_for(10s) == std::future_status::ready;
  const auto during = voluntary_switches(::getpid());
  may_end.set_value();
  sleeper.join();
  ASSERT_TRUE(done);
  ASSERT_TRUE(during);
  EXPECT_EQ(during->threads.size(), before->threads.size() + 1) << "the sleeper, alive";
  ASSERT_GE(during->voluntary, before->voluntary);
  EXPECT_GE(during->voluntary - before->voluntary, 20u);
  EXPECT_LT(during->voluntary - before->voluntary, 2000u) << "a count, not garbage";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  EXPECT_FALSE(voluntary_switches(child));
}

}  // namespace
}  // namespace netkit::inspect
