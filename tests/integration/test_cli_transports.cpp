// The `netkit` command on every transport: Unix stream sockets through each stream
// model, abstract names, datagram echo (udp://, unix-dgram://) in each datagram model,
// and the errors a user sees when something is wrong.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "support/backend_params.hpp"
#include "support/child_process.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct temp_dir {
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "netkit-cli-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path path;
};

struct run_result {
  exit_status status;
  std::string out;
  std::string err;
};

// Runs the netkit command to completion (bounded) and collects its output.
run_result run_netkit(std::vector<std::string> args) {
  args.insert(args.begin(), netkit_cli());
  child_process child(child_options{args, std::nullopt, {}});
  run_result r;
  auto until = deadline_after(60s);
  while (auto line = child.read_line(until))
    r.out += *line + "\n";
  auto st = child.wait(until);
  if (!st) throw std::runtime_error("netkit did not finish in time");
  r.status = *st;
  r.err = child.stderr_text();
  return r;
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
