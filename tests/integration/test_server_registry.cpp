// The server-model registry (servers/registry.hpp) and the `netkit echo-server` command
// line built from it: the registry holds exactly today's models, --list-models prints what
// the registry says, an option a model does not take and a transport it does not serve are
// refused with messages naming them, and every registered model echoes on every transport
// it declares.
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "registry.hpp"
#include "support/child_process.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;
using servers::common_option;
using servers::transport_family;
using testing::HasSubstr;
namespace fs = std::filesystem;

struct run_result {
  exit_status status;
  std::string out;
  std::string err;
};

run_result run_echo_server(const std::vector<std::string>& args) {
  child_process child(echo_server_command(args));
  run_result r;
  auto until = deadline_after(stretch(20s));
  while (auto line = child.read_line(until))
    r.out += *line + "\n";
  auto st = child.wait(until);
  if (!st) throw std::runtime_error("echo-server did not finish in time: " + r.out);
  r.status = *st;
  r.err = child.stderr_text();
  return r;
}

// A private directory for Unix socket files, removed with everything in it.
struct scratch_dir {
  fs::path path;
  scratch_dir() {
    std::string tmpl = (fs::temp_directory_path() / "netkit-registry-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~scratch_dir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

std::vector<std::string> names_of(transport_family family) {
  std::vector<std::string> names;
  for (const auto& m : servers::server_models())
    if (m.family == family) names.push_back(m.name);
  return names;
}

// A value each option accepts, and the listen URI of each family.
std::vector<std::string> option_args(std::string_view flag) {
  if (flag == "--reuse-port") return {std::string(flag)};
  static const std::map<std::string_view, std::string> values = {
      {"--codec", "raw"},      {"--mode", "0600"},         {"--max-conns", "5"},
      {"--idle-timeout", "1"}, {"--high-water", "100000"}, {"--hard-limit", "1000000"},
      {"--threads", "2"},      {"--max-datagram", "100"}};
  if (auto v = values.find(flag); v != values.end()) return {std::string(flag), v->second};
  // A model's own option: a value it accepts.
  for (const auto& o : servers::own_options())
    if (o.flag == flag)
      return {std::string(flag), o.choices.empty() ? std::to_string(std::max<std::size_t>(o.min, 1))
                                                   : std::string(o.choices.front())};
  ADD_FAILURE() << "no value for " << flag;
  return {std::string(flag)};
}

std::string listen_uri(transport_family f) {
  return f == transport_family::stream ? "tcp://127.0.0.1:0" : "udp://127.0.0.1:0";
}

TEST(server_registry, lists_exactly_the_models) {
  EXPECT_THAT(names_of(transport_family::stream),
              testing::ElementsAre("select", "poll", "epoll", "epoll-et", "uring", "multi-reactor",
                                   "prefork", "iterative", "fork", "thread", "nonblocking", "aio"));
  EXPECT_THAT(names_of(transport_family::datagram),
              testing::ElementsAre("blocking", "epoll", "sigio"));
  for (const auto& m : servers::server_models()) {
    EXPECT_FALSE(m.description.empty()) << m.name;
    EXPECT_NE(m.run, nullptr) << m.name;
  }
}

TEST(server_registry, finds_by_name_and_family_and_names_the_defaults) {
  auto tcp = endpoint::parse("tcp://127.0.0.1:0");
  auto udp = endpoint::parse("udp://127.0.0.1:0");
  EXPECT_EQ(servers::find_model("epoll", tcp).family, transport_family::stream);
  EXPECT_EQ(servers::find_model("epoll", udp).family, transport_family::datagram);
  EXPECT_EQ(servers::default_model(tcp), "epoll");
  EXPECT_EQ(servers::default_model(udp), "blocking");
  EXPECT_THROW(servers::find_model("nope", tcp), usage_error);
}

TEST(server_registry, list_models_prints_the_registry) {
  auto r = run_echo_server({"--list-models"});
  ASSERT_TRUE(r.status.exited_normally()) << r.status.describe() << r.err;
  EXPECT_EQ(r.out, servers::list_models_text());
  for (const auto& m : servers::server_models())
    EXPECT_THAT(r.out, HasSubstr("  " + m.name + " ")) << m.name;
}

TEST(server_registry, help_names_the_models_of_each_option) {
  auto r = run_echo_server({"--help"});
  ASSERT_TRUE(r.status.exited_normally()) << r.status.describe() << r.err;
  EXPECT_THAT(r.out, HasSubstr("[--model prefork]"));
  EXPECT_THAT(r.out, HasSubstr("multi-reactor"));
  EXPECT_THAT(r.out, HasSubstr("sigio"));
}

// Every model refuses every common option it does not take, and every other model's own
// options, naming the option and the models that take it.
TEST(server_registry, an_option_a_model_does_not_take_is_refused) {
  std::size_t refused = 0;
  for (const auto& m : servers::server_models()) {
    std::vector<std::string> flags;
    for (std::size_t i = 0; i < servers::common_option_count; ++i) {
      auto o = static_cast<common_option>(i);
      if (!m.takes.contains(o)) flags.emplace_back(servers::flag_of(o));
    }
    for (const auto& own : servers::own_options())
      if (!m.takes_own(own.flag)) flags.emplace_back(own.flag);
    for (const auto& flag : flags) {
      std::vector<std::string> args = {"--listen", listen_uri(m.family), "--model", m.name};
      for (auto& a : option_args(flag))
        args.push_back(a);
      auto r = run_echo_server(args);
      EXPECT_NE(r.status.code, 0) << m.name << " " << flag << ": " << r.status.describe();
      EXPECT_THAT(r.err, HasSubstr(flag + " is only for --model " + servers::models_taking(flag)))
          << m.name;
      EXPECT_EQ(r.out.find("listening on"), std::string::npos) << m.name << " " << flag;
      ++refused;
    }
  }
  EXPECT_GT(refused, 10u);
}

TEST(server_registry, workers_is_only_for_prefork) {
  auto r = run_echo_server({"--listen", "tcp://127.0.0.1:0", "--model", "epoll", "--workers", "2"});
  EXPECT_EQ(r.status.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--workers is only for --model prefork"));
}

TEST(server_registry, a_transport_the_model_does_not_serve_is_refused) {
  auto prefork = run_echo_server({"--listen", "udp://127.0.0.1:0", "--model", "prefork"});
  EXPECT_EQ(prefork.status.code, 1);
  EXPECT_THAT(prefork.err, HasSubstr("--model prefork serves tcp:// and unix:// (stream), not "
                                     "udp://127.0.0.1:0"));
  auto sigio = run_echo_server({"--listen", "tcp://127.0.0.1:0", "--model", "sigio"});
  EXPECT_EQ(sigio.status.code, 1);
  EXPECT_THAT(sigio.err, HasSubstr("--model sigio serves udp:// and unix-dgram:// (datagram), "
                                   "not tcp://127.0.0.1:0"));
  // The multi-reactor serves unix:// by dispatch only: reuseport is refused, saying why.
  auto multi = run_echo_server({"--listen", "unix:///nonexistent/s.sock", "--model",
                                "multi-reactor", "--accept", "reuseport"});
  EXPECT_EQ(multi.status.code, 1);
  EXPECT_THAT(multi.err, HasSubstr("--accept reuseport (the multi-reactor's --threads"));
  EXPECT_THAT(multi.err, HasSubstr("serves tcp:// only"));
  auto threads = run_echo_server({"--listen", "unix:///nonexistent/s.sock", "--model", "poll",
                                  "--threads", "2", "--accept", "reuseport"});
  EXPECT_EQ(threads.status.code, 1);
  EXPECT_THAT(threads.err, HasSubstr("serves tcp:// only"));
}

// A model and a listen URI of a transport it declares.
struct model_transport {
  std::string model;
  transport_family family;
  std::string scheme;  // "tcp", "unix", "udp", "unix-dgram"
};

std::vector<model_transport> every_model_and_transport() {
  std::vector<model_transport> out;
  for (const auto& m : servers::server_models())
    for (auto t : {transport::tcp, transport::unix_stream, transport::udp, transport::unix_dgram})
      if (m.serves(t)) out.push_back({m.name, m.family, std::string(scheme_of(t))});
  return out;
}

class every_model : public testing::TestWithParam<model_transport> {};

TEST_P(every_model, serves_a_short_echo) {
  const auto& p = GetParam();
  const auto& model = servers::find_model(
      p.model, endpoint::parse(p.family == transport_family::stream ? "tcp://127.0.0.1:0"
                                                                    : "udp://127.0.0.1:0"));
  if (model.probe)
    if (auto a = model.probe(model); !a.available) GTEST_SKIP() << p.model << ": " << a.problem;
  fd_leak_guard leaks;
  scratch_dir dir;
  server_config cfg;
  cfg.model = p.model;
  if (p.scheme == "tcp") cfg.listen = "tcp://127.0.0.1:0";
  if (p.scheme == "udp") cfg.listen = "udp://127.0.0.1:0";
  if (p.scheme == "unix") cfg.listen = "unix://" + (dir.path / "s.sock").string();
  if (p.scheme == "unix-dgram") cfg.listen = "unix-dgram://" + (dir.path / "d.sock").string();
  // An explicit count: the default follows the CPU count.
  if (p.model == "multi-reactor") cfg.extra_args = {"--threads", "2"};
  server_process server(cfg);
  EXPECT_THAT(server.banner(), HasSubstr("model=" + p.model));

  child_process client(child_options{{netkit_cli(), "echo-client", "--connect", server.uri(),
                                      "--count", "20", "--size", "64", "--timeout", "1"},
                                     std::nullopt,
                                     {}});
  std::string out;
  auto until = deadline_after(stretch(30s));
  while (auto line = client.read_line(until))
    out += *line + "\n";
  auto st = client.wait(until);
  ASSERT_TRUE(st) << "echo-client did not finish";
  EXPECT_TRUE(st->exited_normally()) << st->describe() << client.stderr_text() << out;
  if (p.family == transport_family::stream)
    EXPECT_THAT(out, HasSubstr("0 mismatches"));
  else
    EXPECT_THAT(out, HasSubstr("replies=20 lost=0"));

  auto end = server.terminate();
  ASSERT_TRUE(end) << "server did not stop within 10 s of SIGTERM";
  EXPECT_TRUE(end->exited_normally()) << end->describe() << server.log();
  if (p.scheme == "unix" || p.scheme == "unix-dgram") {
    EXPECT_TRUE(fs::is_empty(dir.path)) << "socket file left behind";
  }
}

INSTANTIATE_TEST_SUITE_P(all, every_model, testing::ValuesIn(every_model_and_transport()),
                         [](const auto& p) {
                           std::string name = p.param.model + "_" + p.param.scheme;
                           for (auto& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

}  // namespace
}  // namespace netkit::test
