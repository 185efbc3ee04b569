// Every lab of `netkit lab` asserts what the kernel did: one test per lab (through the
// library), and the command itself (--list, --json, exit status, a bad name).
#include <chrono>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lab.hpp"
#include "support/child_process.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/seccomp.hpp"
#include "support/server_process.hpp"

namespace netkit::labs {
namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;

// Runs lab `name`; every check must pass (not merely be "not provoked") on Linux loopback,
// within a few seconds, leaving no descriptor or child behind.
lab_report expect_lab_passes(const char* name, const lab_options& options = {},
                             std::chrono::seconds budget = 5s) {
  test::fd_leak_guard leaks;
  const lab* l = find_lab(name);
  EXPECT_NE(l, nullptr) << name;
  if (!l) return {};
  auto started = std::chrono::steady_clock::now();
  auto report = run_lab(*l, options);
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(report.passed()) << format_text(report);
  EXPECT_FALSE(report.checks.empty());
  for (const auto& c : report.checks)
    EXPECT_EQ(c.result, outcome::pass) << c.name << ": " << c.observed;
  EXPECT_FALSE(report.observations.empty());
  EXPECT_GE(report.look_for.size(), 2u);
  EXPECT_LT(took, test::stretch(budget)) << name;
  return report;
}

const check* find_check(const lab_report& r, std::string_view name) {
  for (const auto& c : r.checks)
    if (c.name == name) return &c;
  return nullptr;
}

TEST(labs, states_reaches_all_eleven_states) {
  auto r = expect_lab_passes("states");
  for (auto s : {"LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                 "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSING", "CLOSED"}) {
    const auto* c = find_check(r, s);
    ASSERT_NE(c, nullptr) << s;
    EXPECT_EQ(c->result, outcome::pass) << s << ": " << c->observed;
  }
  const auto* tw =
      find_check(r, "the side that closes first ends in TIME_WAIT, the other does not");
  ASSERT_NE(tw, nullptr);
  EXPECT_THAT(tw->observed, HasSubstr("client TIME_WAIT"));
}

TEST(labs, states_with_the_proc_fallback_forced) {
  // Reading all of /proc/net/tcp per look is slower than a filtered netlink dump on a host
  // with thousands of sockets.
  auto r = expect_lab_passes("states", {.table = inspect::table_source::proc}, 10s);
  EXPECT_THAT(r.observations.front(), HasSubstr("/proc/net/tcp"));
}

TEST(labs, reuseaddr) {
  expect_lab_passes("reuseaddr");
}
TEST(labs, sigpipe) {
  auto r = expect_lab_passes("sigpipe");
  const auto* killed = find_check(r, "without MSG_NOSIGNAL and with SIGPIPE's default action");
  ASSERT_NE(killed, nullptr);
  EXPECT_THAT(killed->observed, HasSubstr("signal 13"));
}
TEST(labs, half_close) {
  expect_lab_passes("half-close");
}
TEST(labs, close_wait) {
  expect_lab_passes("close-wait");
}
TEST(labs, rst) {
  expect_lab_passes("rst");
}
TEST(labs, backlog) {
  expect_lab_passes("backlog");
}
TEST(labs, oob) {
  expect_lab_passes("oob");
}
TEST(labs, fd_limit) {
  expect_lab_passes("fd-limit");
}
TEST(labs, udp_source) {
  expect_lab_passes("udp-source");
}
TEST(labs, udp_icmp) {
  expect_lab_passes("udp-icmp");
}
TEST(labs, zombies) {
  expect_lab_passes("zombies");
}

struct run_result {
  std::vector<std::string> lines;
  test::exit_status status;
  std::string stderr_text;
};

run_result run_netkit(std::vector<std::string> args, bool (*before_exec)() = nullptr) {
  args.insert(args.begin(), test::netkit_cli());
  test::child_options options{args, std::nullopt, {}};
  options.before_exec = before_exec;
  test::child_process child(options);
  auto until = test::deadline_after(test::stretch(30s));
  run_result r;
  while (auto line = child.read_line(until))
    r.lines.push_back(*line);
  auto st = child.wait(until);
  EXPECT_TRUE(st.has_value()) << "netkit did not end";
  if (st) r.status = *st;
  r.stderr_text = child.stderr_text();
  return r;
}

TEST(lab_command, lists_every_lab) {
  test::fd_leak_guard leaks;
  auto r = run_netkit({"lab", "--list"});
  EXPECT_TRUE(r.status.exited_normally()) << r.stderr_text;
  ASSERT_EQ(r.lines.size(), all_labs().size());
  for (std::size_t i = 0; i < r.lines.size(); ++i)
    EXPECT_THAT(r.lines[i], HasSubstr(std::string(all_labs()[i].name)));
}

TEST(lab_command, json_is_one_object_per_lab_with_expected_observed_and_pass) {
  test::fd_leak_guard leaks;
  auto r = run_netkit({"lab", "rst", "oob", "--json"});
  EXPECT_TRUE(r.status.exited_normally()) << r.stderr_text;
  ASSERT_EQ(r.lines.size(), 2u);
  EXPECT_TRUE(r.lines[0].starts_with("{\"lab\":\"rst\",")) << r.lines[0];
  EXPECT_TRUE(r.lines[1].starts_with("{\"lab\":\"oob\",")) << r.lines[1];
  for (const auto& line : r.lines) {
    EXPECT_THAT(line, HasSubstr("\"expected\":["));
    EXPECT_THAT(line, HasSubstr("\"observed\":["));
    EXPECT_THAT(line, HasSubstr("\"result\":\"pass\""));
    EXPECT_TRUE(line.ends_with(",\"pass\":true}")) << line;
  }
}

TEST(lab_command, text_says_what_to_look_for_then_what_the_kernel_did) {
  test::fd_leak_guard leaks;
  auto r = run_netkit({"lab", "half-close"});
  EXPECT_TRUE(r.status.exited_normally()) << r.stderr_text;
  ASSERT_GE(r.lines.size(), 4u);
  EXPECT_EQ(r.lines[1], "look for:");
  EXPECT_THAT(r.lines, testing::Contains("what the kernel did:"));
  EXPECT_EQ(r.lines.back(), "result: PASS (4 of 4 checks passed)");
}

// Where netlink is refused (a seccomp filter), the labs read /proc/net/tcp instead and say
// so; forced to netlink, the lab fails, says why, and the command exits 1.
TEST(lab_command, falls_back_to_proc_or_fails_with_exit_1_when_netlink_is_refused) {
  test::fd_leak_guard leaks;
  auto fallback = run_netkit({"lab", "close-wait", "--json"}, test::deny_netlink_sockets);
  if (fallback.status.code == 126) GTEST_SKIP() << "seccomp unavailable";
  EXPECT_TRUE(fallback.status.exited_normally()) << fallback.stderr_text;
  ASSERT_EQ(fallback.lines.size(), 1u);
  EXPECT_THAT(fallback.lines[0], HasSubstr("netlink refused"));
  EXPECT_THAT(fallback.lines[0], HasSubstr("EPERM"));
  EXPECT_TRUE(fallback.lines[0].ends_with("\"pass\":true}")) << fallback.lines[0];

  auto forced = run_netkit({"lab", "close-wait", "--json", "--table-source", "netlink"},
                           test::deny_netlink_sockets);
  EXPECT_EQ(forced.status.code, 1);
  EXPECT_THAT(forced.stderr_text, HasSubstr("lab failed: close-wait"));
  ASSERT_EQ(forced.lines.size(), 1u);
  EXPECT_THAT(forced.lines[0], HasSubstr("\"result\":\"fail\""));
  EXPECT_THAT(forced.lines[0], HasSubstr("AF_NETLINK"));
  EXPECT_TRUE(forced.lines[0].ends_with("\"pass\":false}")) << forced.lines[0];
}

TEST(lab_command, refuses_an_unknown_lab) {
  test::fd_leak_guard leaks;
  auto r = run_netkit({"lab", "nosuch"});
  EXPECT_EQ(r.status.code, 1);
  EXPECT_THAT(r.stderr_text, HasSubstr("no lab named 'nosuch'"));
  auto none = run_netkit({"lab"});
  EXPECT_EQ(none.status.code, 1);
  EXPECT_THAT(none.stderr_text, HasSubstr("name a lab"));
}

}  // namespace
}  // namespace netkit::labs
