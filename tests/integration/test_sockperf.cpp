// sockperf, the latency tool no one here wrote, against netkit: `sockperf ping-pong` and
// `sockperf under-load` run against `netkit echo-server --codec sockperf` on every model
// that takes a codec (TCP) and every datagram model (UDP), and `netkit bench --protocol
// sockperf` drives netkit's servers on Unix sockets (Debian's sockperf 3.7 has no Unix
// socket support) and `sockperf server` itself. Skipped where sockperf is not installed.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "netkit/endpoint.hpp"
#include "registry.hpp"
#include "support/backend_params.hpp"
#include "support/child_process.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"
#include "support/text_fields.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;
const std::string sockperf_path = "/usr/bin/sockperf";

#define SKIP_WITHOUT_SOCKPERF()                                                      \
  do {                                                                               \
    if (!std::filesystem::exists(sockperf_path))                                     \
      GTEST_SKIP() << sockperf_path << " not installed (scripts/setup installs it)"; \
  } while (0)

// What sockperf's client reported: replies received, drops, and whether it measured.
struct sockperf_report {
  long received = -1;
  long dropped = -1;
  bool summary = false;
  std::string text;
};

sockperf_report run_sockperf(const std::vector<std::string>& args) {
  std::vector<std::string> argv{sockperf_path};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_program(argv, 30s);
  sockperf_report rep;
  rep.text = r.out + r.err;
  if (auto n = number_after(rep.text, "ReceivedMessages=")) rep.received = static_cast<long>(*n);
  if (auto n = number_after(rep.text, "# dropped messages = ")) rep.dropped = static_cast<long>(*n);
  rep.summary = rep.text.find("Summary: Latency is") != std::string::npos;
  return rep;
}

std::vector<std::string> target_args(const endpoint& ep) {
  std::vector<std::string> args{"-i", ep.host(), "-p", std::to_string(ep.port()), "-t", "1"};
  if (ep.kind() == transport::tcp) args.insert(args.begin(), "--tcp");
  return args;
}

struct model_case {
  std::string name;
  std::string listen;
  friend void PrintTo(const model_case& c, std::ostream* os) { *os << c.name << " " << c.listen; }
};

std::vector<model_case> models_with_a_codec() {
  std::vector<model_case> cases;
  for (const auto& m : servers::server_models()) {
    if (!m.takes.contains(servers::common_option::codec)) continue;
    if (m.family == servers::transport_family::stream) {
      cases.push_back({m.name, "tcp://127.0.0.1:0"});
    } else {
      cases.push_back({m.name, "udp://127.0.0.1:0"});
    }
  }
  return cases;
}

// gtest names: "epoll_tcp", "blocking_udp".
struct case_name {
  std::string operator()(const testing::TestParamInfo<model_case>& c) const {
    return sanitize_name(c.param.name + "_" + c.param.listen.substr(0, 3));
  }
};

class sockperf_models : public testing::TestWithParam<model_case> {};

TEST_P(sockperf_models, sockperf_ping_pong_gets_every_reply) {
  SKIP_WITHOUT_SOCKPERF();
  const auto& c = GetParam();
  auto model = servers::find_model(c.name, endpoint::parse(c.listen));
  if (model.probe)
    if (auto a = model.probe(model); !a.available) GTEST_SKIP() << c.name << ": " << a.problem;
  fd_leak_guard guard;
  server_process server({.model = c.name, .codec = "sockperf", .listen = c.listen});
  auto args = target_args(server.local());
  args.insert(args.begin(), "ping-pong");
  auto rep = run_sockperf(args);
  EXPECT_TRUE(rep.summary) << rep.text;
  EXPECT_GT(rep.received, 100) << rep.text;
  EXPECT_EQ(rep.dropped, 0) << rep.text;
  EXPECT_EQ(rep.text.find("ERROR"), std::string::npos) << rep.text;
  EXPECT_TRUE(server.alive()) << server.log();
}

INSTANTIATE_TEST_SUITE_P(all, sockperf_models, testing::ValuesIn(models_with_a_codec()),
                         case_name());

TEST(sockperf, under_load_is_answered_every_nth_message) {
  SKIP_WITHOUT_SOCKPERF();
  fd_leak_guard guard;
  server_process server({.codec = "sockperf"});
  auto args = target_args(server.local());
  args.insert(args.begin(), {"under-load", "--mps", "5000"});
  auto rep = run_sockperf(args);
  EXPECT_TRUE(rep.summary) << rep.text;
  EXPECT_GT(rep.received, 5) << rep.text;
  EXPECT_EQ(rep.dropped, 0) << rep.text;
  EXPECT_EQ(rep.text.find("ERROR"), std::string::npos) << rep.text;
}

run_result bench_sockperf(const std::string& uri) {
  return run_program({netkit_cli(), "bench", "rr", "--connect", uri, "--protocol", "sockperf",
                      "--size", "64", "--duration", "0.5", "--warmup", "0.1", "--json"},
                     30s);
}

TEST(sockperf, datagram_models_take_sockperf_or_raw_and_refuse_framing_codecs) {
  auto r = run_program(
      {netkit_cli(), "echo-server", "--listen", "udp://127.0.0.1:0", "--codec", "line"}, 20s);
  EXPECT_EQ(r.status.code, 1);
  EXPECT_NE(r.err.find("--codec line is for streams"), std::string::npos) << r.err;
}

// Debian's sockperf 3.7 speaks no Unix sockets: netkit's own client checks the codec there.
TEST(sockperf, netkit_bench_speaks_it_to_netkit_on_unix_sockets) {
  fd_leak_guard guard;
  const auto dir =
      std::filesystem::temp_directory_path() / ("netkit-sockperf-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (const char* model : {"epoll", "uring", "prefork"}) {
    if (auto problem = backend_problem(model)) continue;
    server_process server(
        {.model = model, .codec = "sockperf", .listen = "unix://" + (dir / model).string()});
    auto r = bench_sockperf(server.uri());
    EXPECT_EQ(r.status.code, 0) << model << r.out << r.err;
    EXPECT_GT(json_number(r.out, "messages"), 100) << model << r.out;
  }
  std::filesystem::remove_all(dir);
}

// A port free a moment ago, for sockperf's server (it cannot report a port 0 it bound).
std::uint16_t free_port(int type) {
  unique_fd s(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free port");
  return ntohs(a.sin_port);
}

// True once something is bound to 127.0.0.1:port (our bind of it fails).
bool bound(int type, std::uint16_t port) {
  unique_fd s(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno == EADDRINUSE;
}

TEST(sockperf, netkit_bench_drives_sockperf_server) {
  SKIP_WITHOUT_SOCKPERF();
  fd_leak_guard guard;
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    const auto port = free_port(type);
    std::vector<std::string> argv{sockperf_path, "server", "-i",
                                  "127.0.0.1",   "-p",     std::to_string(port)};
    if (type == SOCK_STREAM) argv.push_back("--tcp");
    child_process server(child_options{argv, std::nullopt, {}});
    // Bounded: sockperf binds within moments of starting.
    for (auto until = deadline_after(10s); !bound(type, port) && clock::now() < until;)
      std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(bound(type, port)) << server.stderr_text();
    const auto uri =
        std::string(type == SOCK_STREAM ? "tcp" : "udp") + "://127.0.0.1:" + std::to_string(port);
    auto r = bench_sockperf(uri);
    EXPECT_EQ(r.status.code, 0) << uri << r.out << r.err;
    EXPECT_GT(json_number(r.out, "messages"), 100) << uri << r.out;
    EXPECT_EQ(json_number(r.out, "errors_total"), 0) << uri << r.out;
    server.signal(SIGTERM);
    server.wait(deadline_after(5s));
  }
}

}  // namespace
}  // namespace netkit::test
