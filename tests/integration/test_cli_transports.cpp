// The `netkit` command on every transport: Unix stream sockets through each stream
// model, abstract names, datagram echo (udp://, unix-dgram://) in each datagram model,
// echo-client's stream side on every event-loop backend (--model, --connect-timeout,
// --retries), and the errors a user sees when something is wrong.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "netkit/socket.hpp"
#include "support/backend_params.hpp"
#include "support/child_process.hpp"
#include "support/client_io.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

namespace netkit::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The netkit command.
run_result run_netkit(std::vector<std::string> args) {
  args.insert(args.begin(), netkit_cli());
  return run_program(args);
}

class unix_stream_test : public testing::TestWithParam<std::string> {};

TEST_P(unix_stream_test, echoes_with_the_requested_mode_and_removes_the_file_on_exit) {
  const auto& model = GetParam();
  NETKIT_SKIP_UNAVAILABLE_BACKEND(model);
  fd_leak_guard leaks;
  temp_dir dir;
  auto path = dir.path / "echo.sock";
  server_config cfg;
  cfg.model = model;
  cfg.codec = "length";
  cfg.listen = "unix://" + path.string();
  cfg.extra_args = {"--mode", "0600"};
  server_process server(cfg);
  EXPECT_EQ(server.uri(), cfg.listen);

  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  auto r = run_netkit({"echo-client", "--connect", cfg.listen, "--codec", "length", "--count",
                       "300", "--size", "2000"});
  EXPECT_TRUE(r.status.exited_normally()) << r.status.describe() << r.err;
  EXPECT_NE(r.out.find("0 mismatches"), std::string::npos) << r.out;

  // A second server must not steal a live server's socket.
  auto second = run_netkit({"echo-server", "--listen", cfg.listen, "--model", model});
  EXPECT_NE(second.status.code, 0);
  EXPECT_NE(second.err.find("address in use"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find(path.string()), std::string::npos) << second.err;

  auto end = server.terminate();
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->exited_normally()) << end->describe();
  EXPECT_FALSE(fs::exists(fs::symlink_status(path))) << "socket file left behind";
}

TEST_P(unix_stream_test, abstract_name_echoes_without_a_file) {
  const auto& model = GetParam();
  NETKIT_SKIP_UNAVAILABLE_BACKEND(model);
  server_config cfg;
  cfg.model = model;
  cfg.listen = "unix://@netkit-test-" + std::to_string(::getpid()) + "-" + sanitize_name(model);
  server_process server(cfg);
  auto r = run_netkit({"echo-client", "--connect", cfg.listen, "--count", "100", "--size", "100"});
  EXPECT_TRUE(r.status.exited_normally()) << r.status.describe() << r.err;
  EXPECT_NE(r.out.find("0 mismatches"), std::string::npos) << r.out;
  auto end = server.terminate();
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->exited_normally());
}

INSTANTIATE_TEST_SUITE_P(all, unix_stream_test, every_backend(),
                         [](const auto& p) { return sanitize_name(p.param); });

class datagram_test : public testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(datagram_test, echo_client_counts_every_reply) {
  auto [scheme, model] = GetParam();
  temp_dir dir;
  server_config cfg;
  cfg.model = model;
  cfg.listen =
      scheme == "udp" ? "udp://127.0.0.1:0" : "unix-dgram://" + (dir.path / "d.sock").string();
  server_process server(cfg);
  EXPECT_NE(server.banner().find("model=" + model), std::string::npos) << server.banner();
  auto r = run_netkit({"echo-client", "--connect", server.uri(), "--count", "200", "--size", "256",
                       "--timeout", "1"});
  EXPECT_TRUE(r.status.exited_normally()) << r.status.describe() << r.err << r.out;
  EXPECT_NE(r.out.find("replies=200 lost=0 duplicated=0 reordered=0 unanswered=0"),
            std::string::npos)
      << r.out;
  auto end = server.terminate();
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->exited_normally()) << end->describe();
}

INSTANTIATE_TEST_SUITE_P(all, datagram_test,
                         testing::Combine(testing::Values("udp", "unix_dgram"),
                                          testing::Values("blocking", "epoll", "sigio")),
                         [](const auto& p) {
                           return std::get<0>(p.param) + "_" + std::get<1>(p.param);
                         });

TEST(cli_errors, udp_client_without_server_says_so) {
  // Bind a UDP port and close it, so nothing listens there.
  auto probe = run_netkit({"echo-client", "--connect", "udp://127.0.0.1:9", "--count", "3",
                           "--size", "32", "--timeout", "0.3"});
  EXPECT_EQ(probe.status.code, 2) << probe.status.describe();
  EXPECT_NE(probe.err.find("no server at udp://127.0.0.1:9"), std::string::npos) << probe.err;
}

TEST(cli_errors, bad_input_names_what_was_wrong) {
  auto bad_model = run_netkit({"echo-server", "--listen", "tcp://127.0.0.1:0", "--model", "nope"});
  EXPECT_EQ(bad_model.status.code, 1);
  EXPECT_NE(bad_model.err.find("unknown I/O model 'nope'"), std::string::npos) << bad_model.err;

  auto bad_uri = run_netkit({"echo-server", "--listen", "tcp://127.0.0.1"});
  EXPECT_EQ(bad_uri.status.code, 1);
  EXPECT_NE(bad_uri.err.find("bad URI 'tcp://127.0.0.1'"), std::string::npos) << bad_uri.err;

  auto bad_codec = run_netkit({"echo-server", "--listen", "tcp://127.0.0.1:0", "--codec", "xml"});
  EXPECT_EQ(bad_codec.status.code, 1);
  EXPECT_NE(bad_codec.err.find("xml"), std::string::npos) << bad_codec.err;

  auto bad_mode = run_netkit({"echo-server", "--listen", "unix:///tmp/x.sock", "--mode", "9"});
  EXPECT_EQ(bad_mode.status.code, 1);
  EXPECT_NE(bad_mode.err.find("--mode '9'"), std::string::npos) << bad_mode.err;

  auto long_path = run_netkit({"echo-server", "--listen", "unix:///" + std::string(120, 'p')});
  EXPECT_EQ(long_path.status.code, 1);
  EXPECT_NE(long_path.err.find("ENAMETOOLONG"), std::string::npos) << long_path.err;

  auto refused = run_netkit({"echo-client", "--connect", "tcp://127.0.0.1:9", "--count", "1"});
  EXPECT_EQ(refused.status.code, 1);
  EXPECT_NE(refused.err.find("connect tcp://127.0.0.1:9: Connection refused (ECONNREFUSED)"),
            std::string::npos)
      << refused.err;
}

// A TCP socket bound to a loopback port and not listening yet: connects to the port are
// refused until listen() is called, so a test knows a port nobody else serves.
struct unlistened_port {
  unlistened_port() : fd(open_socket(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking)) {
    auto any = endpoint::parse("tcp://127.0.0.1:0");
    if (::bind(fd.get(), any.addr(), any.length()) != 0) throw std::runtime_error("bind failed");
    uri = local_endpoint(fd.get(), transport::tcp).to_uri();
  }
  void listen(int backlog) const {
    if (::listen(fd.get(), backlog) != 0) throw std::runtime_error("listen failed");
  }
  // Waits (bounded) for one connection.
  unique_fd accept(clock::duration within) const {
    pollfd p{fd.get(), POLLIN, 0};
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(within).count();
    if (::poll(&p, 1, static_cast<int>(ms)) != 1) throw std::runtime_error("nobody connected");
    unique_fd c(::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) throw std::runtime_error("accept failed");
    return c;
  }
  unique_fd fd;
  std::string uri;
};

// echo-client's stream side runs on the library's stream_client over the --model
// backend: every backend echoes in count mode and in stdin line mode, and reports a
// refused connect and a server that closes before echoing.
class echo_client_model_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }
};

TEST_P(echo_client_model_test, counts_and_verifies_on_this_backend) {
  fd_leak_guard leaks;
  server_config cfg;
  cfg.codec = "length";
  server_process server(cfg);
  auto r = run_netkit({"echo-client", "--connect", server.uri(), "--model", GetParam(), "--codec",
                       "length", "--count", "300", "--size", "3000"});
  EXPECT_TRUE(r.status.exited_normally()) << r.status.describe() << r.err;
  EXPECT_NE(r.out.find("300 messages of 3000 bytes echoed by " + server.uri()), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(": 0 mismatches"), std::string::npos) << r.out;
  auto end = server.terminate();
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->exited_normally()) << end->describe();
}

TEST_P(echo_client_model_test, stdin_lines_are_echoed_in_order) {
  temp_dir dir;
  server_config cfg;
  cfg.listen = "unix://" + (dir.path / "e.sock").string();
  server_process server(cfg);
  std::string command = "printf 'one\\ntwo\\nthree\\n' | '" + netkit_cli() +
                        "' echo-client --connect " + cfg.listen + " --model " + GetParam();
  auto r = run_program({"/bin/sh", "-c", command});
  EXPECT_TRUE(r.status.exited_normally()) << r.status.describe() << r.err;
  EXPECT_EQ(r.out, "one\ntwo\nthree\n");
  auto end = server.terminate();
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->exited_normally()) << end->describe();
}

TEST_P(echo_client_model_test, refused_connect_names_the_endpoint_and_errno) {
  unlistened_port port;
  auto r =
      run_netkit({"echo-client", "--connect", port.uri, "--model", GetParam(), "--count", "1"});
  EXPECT_EQ(r.status.code, 1) << r.status.describe();
  EXPECT_NE(r.err.find("netkit: connect " + port.uri + ": Connection refused (ECONNREFUSED)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_P(echo_client_model_test, server_closing_before_the_echo_is_an_error_naming_it) {
  unlistened_port port;
  port.listen(4);
  child_process child(child_options{
      {netkit_cli(), "echo-client", "--connect", port.uri, "--model", GetParam(), "--count", "1"},
      std::nullopt,
      {}});
  {
    auto conn = port.accept(stretch(30s));
    // Take the request, then close without echoing it.
    auto got = read_line(conn.get(), deadline_after(stretch(10s)));
    EXPECT_EQ(got.end, read_end::data) << to_string(got.end);
  }
  auto st = child.wait(deadline_after(stretch(30s)));
  ASSERT_TRUE(st);
  EXPECT_EQ(st->code, 1) << st->describe();
  EXPECT_NE(child.stderr_text().find(port.uri + " closed the connection before echoing"),
            std::string::npos)
      << child.stderr_text();
}

// --retries: the port refuses at first and listens a moment later; the client's retries
// (100 ms, 200 ms, ... back-off) reach it and the echo completes.
TEST_P(echo_client_model_test, retries_reach_a_server_that_starts_late) {
  unlistened_port port;
  child_process child(child_options{{netkit_cli(), "echo-client", "--connect", port.uri, "--model",
                                     GetParam(), "--retries", "6", "--count", "1", "--size", "10"},
                                    std::nullopt,
                                    {}});
  std::this_thread::sleep_for(150ms);  // the first attempt (and maybe a retry) is refused
  port.listen(4);
  auto conn = port.accept(stretch(30s));
  auto got = read_line(conn.get(), deadline_after(stretch(10s)));
  ASSERT_EQ(got.end, read_end::data) << to_string(got.end);
  send_all(conn.get(), got.text());
  auto line = child.read_line(deadline_after(stretch(30s)));
  ASSERT_TRUE(line) << child.stderr_text();
  EXPECT_NE(line->find("1 messages of 10 bytes echoed by " + port.uri), std::string::npos) << *line;
  EXPECT_NE(line->find(": 0 mismatches"), std::string::npos) << *line;
  auto st = child.wait(deadline_after(stretch(30s)));
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->exited_normally()) << st->describe() << child.stderr_text();
}

// --connect-timeout: a listener whose accept queue is full drops new SYNs, so the connect
// neither succeeds nor is refused; the attempt ends at the timeout, naming ETIMEDOUT.
TEST_P(echo_client_model_test, connect_timeout_ends_an_unanswered_connect) {
  unlistened_port port;
  port.listen(0);
  // Fill the accept queue (backlog 0 admits one), never accepting.
  std::vector<unique_fd> fillers;
  for (int i = 0; i < 2; ++i)
    fillers.push_back(start_connect(endpoint::parse(port.uri)));
  std::this_thread::sleep_for(50ms);
  auto start = clock::now();
  auto r = run_netkit({"echo-client", "--connect", port.uri, "--model", GetParam(),
                       "--connect-timeout", "0.3", "--count", "1"});
  auto took = clock::now() - start;
  EXPECT_EQ(r.status.code, 1) << r.status.describe();
  EXPECT_NE(r.err.find("connect " + port.uri + ": Connection timed out (ETIMEDOUT)"),
            std::string::npos)
      << r.err;
  EXPECT_LT(took, stretch(5s));
}

INSTANTIATE_TEST_SUITE_P(all, echo_client_model_test, every_backend(), param_name{});

TEST(echo_client_options, retries_that_all_fail_report_the_last_error) {
  unlistened_port port;
  auto start = clock::now();
  auto r = run_netkit({"echo-client", "--connect", port.uri, "--retries", "2", "--count", "1"});
  EXPECT_EQ(r.status.code, 1) << r.status.describe();
  EXPECT_NE(r.err.find("connect " + port.uri + ": Connection refused (ECONNREFUSED)"),
            std::string::npos)
      << r.err;
  // Two back-off waits: about 100 ms and 200 ms, each within ±20 % jitter.
  EXPECT_GE(clock::now() - start, 240ms);
}

TEST(echo_client_options, model_is_checked_and_stream_only) {
  auto unknown = run_netkit(
      {"echo-client", "--connect", "tcp://127.0.0.1:9", "--model", "nope", "--count", "1"});
  EXPECT_EQ(unknown.status.code, 1);
  EXPECT_NE(unknown.err.find("unknown I/O model 'nope'"), std::string::npos) << unknown.err;
  auto dgram = run_netkit(
      {"echo-client", "--connect", "udp://127.0.0.1:9", "--model", "poll", "--count", "1"});
  EXPECT_EQ(dgram.status.code, 1);
  EXPECT_NE(dgram.err.find("--model applies only to stream URIs"), std::string::npos) << dgram.err;
}

TEST(cli_resolve, prints_every_address_with_family) {
  auto r = run_netkit({"resolve", "localhost"});
  EXPECT_TRUE(r.status.exited_normally()) << r.err;
  EXPECT_NE(r.out.find("IPv4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("127.0.0.1"), std::string::npos) << r.out;
  auto missing = run_netkit({"resolve", "no-such-host.invalid"});
  EXPECT_EQ(missing.status.code, 1);
  EXPECT_NE(missing.err.find("resolve no-such-host.invalid"), std::string::npos) << missing.err;
}

TEST(cli_help, every_subcommand_has_help_and_version_works) {
  auto version = run_netkit({"--version"});
  EXPECT_TRUE(version.status.exited_normally());
  EXPECT_NE(version.out.find("netkit "), std::string::npos);
  for (const char* sub : {"resolve", "echo-server", "echo-client", "udp-relay", "fd-pass"}) {
    auto r = run_netkit({sub, "--help"});
    EXPECT_TRUE(r.status.exited_normally()) << sub << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub << ": " << r.out;
  }
}

}  // namespace
}  // namespace netkit::test
