// echo-server options on every stream backend: --idle-timeout closes only the silent,
// --reuse-port lets two servers share a port, --list-models names every model.
#include <poll.h>

#include <chrono>
#include <optional>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/backend_params.hpp"
#include "support/client_io.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;

// line_round_trip() returns "" when the line came back exactly, else what went wrong.

class server_options_test : public testing::TestWithParam<std::string> {};

TEST_P(server_options_test, idle_timeout_closes_the_silent_and_spares_the_active) {
  NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam());
  fd_leak_guard leaks;
  server_config cfg;
  cfg.model = GetParam();
  cfg.extra_args = {"--idle-timeout", "0.4"};
  server_process server(cfg);
  // Connect well after the server's first turns, at no particular phase of its idle
  // sweep: the idle clock must start at the accept, not when the loop last woke (io_uring
  // runs the accept's handler inside its wait, which once started it up to a sweep early).
  std::this_thread::sleep_for(250ms);
  // The silent connection cannot have been active later than this: its idle clock starts
  // at or after it.
  auto start = clock::now();
  auto silent = connect_client(server.local());
  auto active = connect_client(server.local());
  // The active client talks every 100 ms for 1.2 s (three idle periods); between its
  // lines the test watches the silent one, so it sees the close when it happens.
  std::optional<clock::duration> silent_closed_after;
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(
        line_round_trip(active.get(), "ping " + std::to_string(i), deadline_after(stretch(5s))),
        "");
    pollfd watch{.fd = silent.get(), .events = POLLIN, .revents = 0};
    if (!silent_closed_after && ::poll(&watch, 1, 100) == 1)
      silent_closed_after = clock::now() - start;
    else if (silent_closed_after)
      std::this_thread::sleep_for(100ms);
  }
  auto closed = wait_for_close(silent.get(), deadline_after(stretch(5s)));
  EXPECT_EQ(closed.end, read_end::eof) << to_string(closed.end);
  // Closed after the timeout, not before (the sweep runs every timeout/4); a close later
  // than the 1.2 s watched is later than 400 ms too.
  if (silent_closed_after) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(*silent_closed_after).count();
    RecordProperty("silent_closed_ms", static_cast<int>(ms));
    EXPECT_GE(*silent_closed_after, 400ms) << ms << " ms";
  }
  EXPECT_EQ(line_round_trip(active.get(), "still here", deadline_after(stretch(5s))), "");
  EXPECT_THAT(server.log(), HasSubstr("idle for 400 ms"));
  auto end = server.terminate();
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->exited_normally()) << end->describe();
}

TEST_P(server_options_test, reuse_port_lets_two_servers_share_a_port) {
  NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam());
  server_config first_cfg;
  first_cfg.model = GetParam();
  first_cfg.extra_args = {"--reuse-port"};
  server_process first(first_cfg);
  server_config second_cfg = first_cfg;
  second_cfg.listen = first.uri();
  server_process second(second_cfg);
  EXPECT_EQ(second.uri(), first.uri());
  // Both serve: connections spread between them, and every one is echoed.
  for (int i = 0; i < 20; ++i) {
    auto fd = connect_client(first.local());
    EXPECT_EQ(line_round_trip(fd.get(), "hello", deadline_after(stretch(5s))), "");
  }
  for (auto* s : {&first, &second}) {
    auto end = s->terminate();
    ASSERT_TRUE(end);
    EXPECT_TRUE(end->exited_normally()) << end->describe();
  }
}

INSTANTIATE_TEST_SUITE_P(all, server_options_test, every_backend(),
                         [](const auto& p) { return sanitize_name(p.param); });

TEST(server_options, list_models_names_every_model_and_its_availability) {
  child_process child(child_options{{netkit_cli(), "echo-server", "--list-models"}, {}, {}});
  std::string out;
  auto until = deadline_after(20s);
  while (auto line = child.read_line(until))
    out += *line + "\n";
  auto status = child.wait(until);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited_normally());
  for (const auto& name : backend_names()) {
    auto problem = backend_problem(name);
    EXPECT_THAT(out, HasSubstr(name + std::string(13 - name.size(), ' ') + " " +
                               (problem ? "UNAVAILABLE" : "available")))
        << out;
  }
  for (const char* model : {"prefork", "blocking", "sigio"})
    EXPECT_THAT(out, HasSubstr(model));
}

}  // namespace
}  // namespace netkit::test
