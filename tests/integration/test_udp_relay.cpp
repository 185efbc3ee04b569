// client <-> udp-relay <-> server on loopback: the client's lost/duplicated/reordered
// counts equal what the relay says it did, exactly, for each seed.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "netkit/endpoint.hpp"
#include "netkit/error.hpp"
#include "support/child_process.hpp"
#include "support/dgram_server_child.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"
#include "udp_echo.hpp"
#include "udp_echo_client.hpp"

namespace netkit {
namespace {

using namespace std::chrono_literals;
using test::dgram_server_child;

using counts = std::map<std::string, long>;

// "name: a=1 b=2" or "a=1 b=2" -> {a:1, b:2}
counts parse_counts(const std::string& line) {
  counts c;
  std::istringstream in(line);
  for (std::string word; in >> word;) {
    auto eq = word.find('=');
    if (eq == std::string::npos) continue;
    try {
      c[word.substr(0, eq)] = std::stol(word.substr(eq + 1));
    } catch (...) {
    }
  }
  return c;
}

struct relay_run {
  counts client, to_server, to_client;
  std::string relay_log;
};

struct impairment {
  std::string loss, dup, reorder, delay;
};

relay_run run_through_relay(const endpoint& server, const impairment& imp, int seed,
                            std::size_t count, int retries,
                            const std::string& impair = "to-client") {
  relay_run run;
  test::child_process relay(
      {{NETKIT_CLI, "udp-relay", "--listen", "udp://127.0.0.1:0", "--forward", server.to_uri(),
        "--loss", imp.loss, "--dup", imp.dup, "--reorder", imp.reorder, "--delay", imp.delay,
        "--seed", std::to_string(seed), "--impair", impair}});
  auto banner = relay.read_line(test::deadline_after(10s));
  if (!banner) throw std::runtime_error("relay did not start: " + relay.stderr_text());
  auto uri = banner->substr(13, banner->find(' ', 13) - 13);

  clients::dgram_client_options c;
  c.connect = endpoint::parse(uri);
  c.count = count;
  c.size = 64;
  c.timeout = 300ms;
  c.retries = retries;
  testing::internal::CaptureStdout();
  clients::run_dgram_echo_client(c);
  auto out = testing::internal::GetCapturedStdout();
  run.client = parse_counts(out.substr(out.find("summary:")));

  relay.signal(SIGTERM);
  while (auto line = relay.read_line(test::deadline_after(10s))) {
    if (line->starts_with("to-server:")) run.to_server = parse_counts(*line);
    if (line->starts_with("to-client:")) run.to_client = parse_counts(*line);
  }
  auto st = relay.wait(test::deadline_after(10s));
  EXPECT_TRUE(st && st->exited_normally()) << relay.stderr_text();
  run.relay_log = relay.stderr_text();
  return run;
}

struct relay_case {
  impairment imp;
  int seed;
  int retries;
};

class UdpRelay : public testing::TestWithParam<relay_case> {};

TEST_P(UdpRelay, ClientCountsEqualWhatTheRelayDid) {
  test::fd_leak_guard guard;
  servers::dgram_server_options so;
  so.listen = endpoint::parse("udp://127.0.0.1:0");
  so.model = "epoll";
  dgram_server_child server(so);
  const auto& p = GetParam();
  auto run = run_through_relay(server.local(), p.imp, p.seed, 600, p.retries);
  auto& down = run.to_client;
  auto& up = run.to_server;
  SCOPED_TRACE(run.relay_log);
  // Requests pass untouched; every datagram the client sent reached the server.
  EXPECT_EQ(up.at("received"), run.client.at("datagrams"));
  EXPECT_EQ(up.at("forwarded"), up.at("received"));
  EXPECT_EQ(down.at("received"), run.client.at("datagrams"));
  EXPECT_EQ(down.at("pending"), 0);
  // The exact match.
  EXPECT_EQ(run.client.at("lost"), down.at("dropped") + down.at("send_errors"));
  EXPECT_EQ(run.client.at("duplicated"), down.at("duplicated"));
  EXPECT_EQ(run.client.at("reordered"), down.at("reordered"));
  EXPECT_EQ(run.client.at("replies"), down.at("forwarded"));
  // And the relay really did impair (600 datagrams at these rates).
  EXPECT_GT(down.at("dropped"), 0);
  EXPECT_GT(down.at("duplicated"), 0);
  EXPECT_GT(down.at("reordered"), 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, UdpRelay,
                         testing::Values(relay_case{{"0.1", "0.1", "0.1", "0"}, 1, 0},
                                         relay_case{{"0.1", "0.1", "0.1", "0"}, 7, 0},
                                         relay_case{{"0.05", "0.05", "0.2", "0"}, 42, 0},
                                         relay_case{{"0.1", "0.1", "0.1", "1+-0.5"}, 3, 0},
                                         relay_case{{"0.1", "0.05", "0.1", "0"}, 5, 2}));

// Same seed, same traffic: the same decisions.
TEST(UdpRelayDeterminism, SameSeedSameCounts) {
  test::fd_leak_guard guard;
  servers::dgram_server_options so;
  so.listen = endpoint::parse("udp://127.0.0.1:0");
  so.model = "blocking";
  dgram_server_child server(so);
  impairment imp{"0.1", "0.1", "0.1", "0"};
  auto a = run_through_relay(server.local(), imp, 11, 300, 0);
  auto b = run_through_relay(server.local(), imp, 11, 300, 0);
  auto c = run_through_relay(server.local(), imp, 12, 300, 0);
  EXPECT_EQ(a.to_client, b.to_client);
  for (auto* r : {&a, &b})
    for (auto key : {"rtt_us_min", "rtt_us_avg", "rtt_us_max"})
      r->client.erase(key);
  EXPECT_EQ(a.client, b.client) << "client counts of two identical runs";
  EXPECT_NE(a.to_client, c.to_client) << "another seed, other decisions";
}

// Both directions impaired: the relay reports each; the client sees at least the losses.
TEST(UdpRelayBothWays, ReportsBothDirections) {
  test::fd_leak_guard guard;
  servers::dgram_server_options so;
  so.listen = endpoint::parse("udp://127.0.0.1:0");
  so.model = "sigio";
  dgram_server_child server(so);
  auto run = run_through_relay(server.local(), {"0.1", "0", "0", "0"}, 9, 400, 0, "both");
  EXPECT_GT(run.to_server.at("dropped"), 0);
  EXPECT_GT(run.to_client.at("dropped"), 0);
  EXPECT_EQ(run.client.at("lost"), run.to_server.at("dropped") + run.to_client.at("dropped"));
}

}  // namespace
}  // namespace netkit
