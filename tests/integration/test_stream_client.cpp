// The client side of the library on every backend: the connector (errors, timeout,
// retries with back-off, source address, self-connect, Unix and abstract targets) and the
// stream client (echo through a server on the same loop, reconnect, on_connect_failed).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "netkit/net/connector.hpp"
#include "netkit/net/stream_client.hpp"
#include "netkit/net/stream_server.hpp"
#include "netkit/socket.hpp"
#include "support/backend_params.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/loop_run.hpp"
#include "support/test_env.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

// A TCP port on 127.0.0.1 that nobody listens on (bound, then closed).
endpoint closed_tcp_port() {
  auto fd = listen_on(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking);
  auto ep = local_endpoint(fd.get(), transport::tcp);
  return ep;  // fd closes here: connects are refused
}

class client_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }
};

// ---- connector ---------------------------------------------------------------------

TEST(backoff, doubles_up_to_the_cap_within_the_jitter) {
  connect_options o;
  o.backoff_initial = 100ms;
  o.backoff_max = 1000ms;
  o.jitter = 0;
  EXPECT_EQ(backoff_delay(o, 0, 0.5), 100ms);
  EXPECT_EQ(backoff_delay(o, 1, 0.5), 200ms);
  EXPECT_EQ(backoff_delay(o, 3, 0.5), 800ms);
  EXPECT_EQ(backoff_delay(o, 4, 0.5), 1000ms);
  EXPECT_EQ(backoff_delay(o, 40, 0.5), 1000ms);
  o.jitter = 0.25;
  EXPECT_EQ(backoff_delay(o, 0, 0.0), 75ms);
  EXPECT_EQ(backoff_delay(o, 0, 0.5), 100ms);
  EXPECT_EQ(backoff_delay(o, 0, 0.999999), 125ms);
}

TEST_P(client_test, refused_connect_names_the_endpoint_and_errno) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  auto target = closed_tcp_port();
  std::string message;
  int err = 0;
  auto c = make_connector(
      loop, target, {}, [](unique_fd, const endpoint&) { ADD_FAILURE() << "connected"; },
      [&](const sys_error& e) {
        message = e.what();
        err = e.errno_value();
      });
  c->start();
  ASSERT_TRUE(run_until(loop, [&] { return err != 0; }));
  EXPECT_EQ(err, ECONNREFUSED);
  EXPECT_EQ(message, "connect " + target.to_uri() + ": Connection refused (ECONNREFUSED)");
  EXPECT_EQ(c->attempts(), 1);
}

TEST_P(client_test, retries_back_off_before_giving_up) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  connect_options o;
  o.retries = 3;
  o.backoff_initial = 20ms;
  o.jitter = 0;
  int failures = 0;
  auto c = make_connector(
      loop, closed_tcp_port(), o, [](unique_fd, const endpoint&) { ADD_FAILURE(); },
      [&](const sys_error&) { ++failures; });
  auto start = clock::now();
  c->start();
  ASSERT_TRUE(run_until(loop, [&] { return failures > 0; }));
  auto took = clock::now() - start;
  EXPECT_EQ(failures, 1);       // reported once, after the last attempt
  EXPECT_EQ(c->attempts(), 4);  // the first and three retries
  EXPECT_GE(took, 20ms + 40ms + 80ms);
}

// When each of `n` connectors given no seed, started together against a refused port with
// the widest jitter, failed after its one retry (0-400 ms of back-off): milliseconds from
// the start, by connector.
std::vector<long> unseeded_failure_times(int n) {
  event_loop loop("epoll");
  connect_options o;
  o.retries = 1;
  o.backoff_initial = 200ms;
  o.jitter = 1.0;
  auto target = closed_tcp_port();
  std::vector<long> failed_after(static_cast<std::size_t>(n), -1);
  int failures = 0;
  std::vector<std::unique_ptr<connector>> connectors;
  auto start = clock::now();
  for (int i = 0; i < n; ++i) {
    connectors.push_back(make_connector(
        loop, target, o, [](unique_fd, const endpoint&) { ADD_FAILURE() << "connected"; },
        [&, i](const sys_error&) {
          failed_after[static_cast<std::size_t>(i)] =
              std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start).count();
          ++failures;
        }));
    connectors.back()->start();
  }
  if (!run_until(loop, [&] { return failures == n; })) ADD_FAILURE() << "retries never ended";
  for (const auto& c : connectors)
    EXPECT_EQ(c->attempts(), 2);
  return failed_after;
}

// Connectors given no seed draw their own (clients must not retry in step).
TEST(backoff, unseeded_connectors_retry_out_of_step) {
  fd_leak_guard guard;
  auto times = unseeded_failure_times(8);
  auto [first, last] = std::minmax_element(times.begin(), times.end());
  // All eight within 50 ms of each other by chance: about 4 in a million.
  EXPECT_GT(*last - *first, 50);
}

// A forked child inherits its parent's seed generator; two children must still not draw
// the same jitter (the same seeds would put each pair of retries within a few ms).
TEST(backoff, forked_children_draw_their_own_jitter) {
  fd_leak_guard guard;
  {
    event_loop loop("epoll");  // the parent's generator is in use before the forks
    auto c = make_connector(
        loop, closed_tcp_port(), {}, [](unique_fd, const endpoint&) {}, [](const sys_error&) {});
  }
  constexpr int n = 4;
  std::array<std::vector<long>, 2> times;
  for (auto& child_times : times) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      int code = 0;
      try {
        auto got = unseeded_failure_times(n);
        auto bytes = static_cast<ssize_t>(got.size() * sizeof(long));
        code = ::write(fds[1], got.data(), static_cast<std::size_t>(bytes)) == bytes ? 0 : 2;
      } catch (...) {
        code = 1;
      }
      ::_exit(code);
    }
    ::close(fds[1]);
    child_times.resize(n);
    auto want = static_cast<ssize_t>(n * sizeof(long));
    ssize_t got = 0;
    while (got < want) {
      ssize_t r = ::read(fds[0], reinterpret_cast<char*>(child_times.data()) + got,
                         static_cast<std::size_t>(want - got));
      if (r <= 0) break;
      got += r;
    }
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    ASSERT_EQ(got, want);
  }
  long apart = 0;
  for (int i = 0; i < n; ++i)
    apart +=
        std::abs(times[0][static_cast<std::size_t>(i)] - times[1][static_cast<std::size_t>(i)]);
  // Independent draws: four gaps of 133 ms each on average; under 20 ms in all about 1 in
  // 100,000.
  EXPECT_GT(apart, 20);
}

TEST_P(client_test, connect_timeout_fires_when_the_syn_is_not_answered) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  // A listener with a full accept queue: the kernel drops further SYNs, so the connect
  // hangs until our timeout.
  auto listener =
      listen_on(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking, {.backlog = 0});
  auto target = local_endpoint(listener.get(), transport::tcp);
  std::vector<unique_fd> queued;
  for (int i = 0; i < 4; ++i)
    queued.push_back(start_connect(target));
  connect_options o;
  o.timeout = 200ms;
  int err = 0;
  std::string message;
  bool connected = false;
  auto c = make_connector(
      loop, target, o, [&](unique_fd, const endpoint&) { connected = true; },
      [&](const sys_error& e) {
        err = e.errno_value();
        message = e.what();
      });
  auto start = clock::now();
  c->start();
  ASSERT_TRUE(run_until(loop, [&] { return err != 0 || connected; }));
  if (connected) GTEST_SKIP() << "this kernel answered the SYN of a full accept queue";
  EXPECT_EQ(err, ETIMEDOUT) << message;
  EXPECT_GE(clock::now() - start, 200ms);
  EXPECT_NE(message.find(target.to_uri()), std::string::npos) << message;
}

TEST_P(client_test, tcp_self_connect_is_detected) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  // Source == destination, nobody listening: TCP's simultaneous open connects the socket
  // to itself, which must be reported as a failure, never delivered as a connection.
  auto target = closed_tcp_port();
  connect_options o;
  o.source = target;
  std::string message;
  bool connected = false;
  auto c = make_connector(
      loop, target, o, [&](unique_fd, const endpoint&) { connected = true; },
      [&](const sys_error& e) { message = e.what(); });
  c->start();
  ASSERT_TRUE(run_until(loop, [&] { return !message.empty() || connected; }));
  EXPECT_FALSE(connected);
  EXPECT_NE(message.find("self-connect"), std::string::npos) << message;
}

TEST_P(client_test, source_address_is_the_one_the_server_sees) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  server_options so;
  so.listen = endpoint::parse("tcp://127.0.0.1:0");
  std::string seen;
  stream_handler sh;
  sh.on_connect = [&](connection& c) { seen = c.peer().host(); };
  auto server = make_stream_server(loop, so, sh);
  connect_options o;
  o.source = endpoint::parse("tcp://127.0.0.2:0");
  unique_fd got;
  auto c = make_connector(
      loop, server->local(), o, [&](unique_fd fd, const endpoint&) { got = std::move(fd); },
      [&](const sys_error& e) { ADD_FAILURE() << e.what(); });
  c->start();
  ASSERT_TRUE(run_until(loop, [&] { return got && !seen.empty(); }));
  EXPECT_EQ(seen, "127.0.0.2");
  EXPECT_EQ(local_endpoint(got.get(), transport::tcp).host(), "127.0.0.2");
}

TEST(connector, source_of_another_family_is_a_usage_error) {
  event_loop loop("epoll");
  connect_options o;
  o.source = endpoint::parse("tcp://[::1]:0");
  EXPECT_THROW(make_connector(
                   loop, endpoint::parse("tcp://127.0.0.1:9"), o, [](unique_fd, const endpoint&) {},
                   [](const sys_error&) {}),
               usage_error);
  EXPECT_THROW(make_connector(
                   loop, endpoint::parse("udp://127.0.0.1:9"), {},
                   [](unique_fd, const endpoint&) {}, [](const sys_error&) {}),
               usage_error);
}

TEST_P(client_test, cancel_stops_an_attempt_with_no_callback) {
  fd_leak_guard guard;
  {
    event_loop loop(GetParam());
    connect_options o;
    o.retries = 5;
    o.backoff_initial = 10ms;
    bool called = false;
    auto c = make_connector(
        loop, closed_tcp_port(), o, [&](unique_fd, const endpoint&) { called = true; },
        [&](const sys_error&) { called = true; });
    c->start();
    loop.run_once(0ms);
    c->cancel();
    run_until(
        loop, [] { return false; }, 150ms);
    EXPECT_FALSE(called);
  }
}

// ---- stream client -------------------------------------------------------------------

struct echo_pair {
  explicit echo_pair(const std::string& backend, const std::string& listen = "tcp://127.0.0.1:0")
      : loop(backend) {
    server_options so;
    so.listen = endpoint::parse(listen);
    so.codec = codec_spec::parse("line");
    stream_handler echo;
    echo.on_message = [](connection& c, std::span<const std::byte> m) { c.send(m); };
    server = make_stream_server(loop, so, echo);
  }
  event_loop loop;
  std::unique_ptr<stream_server> server;
};

void expect_echo_through_client(echo_pair& p, const endpoint& target) {
  client_options co;
  co.codec = codec_spec::parse("line");
  std::vector<std::string> got;
  std::vector<close_reason> closes;
  stream_handler h;
  h.on_connect = [](connection& c) {
    c.send(std::string_view("hello"));
    c.send(std::string_view("world"));
  };
  h.on_message = [&](connection& c, std::span<const std::byte> m) {
    got.push_back(text_of(m));
    EXPECT_EQ(&c.owner(), c.owner().find(c.id()) ? &c.owner() : nullptr);
    if (got.size() == 2) c.close();
  };
  h.on_close = [&](connection&, close_reason why) { closes.push_back(why); };
  h.on_connect_failed = [](stream_client&, const endpoint&, const sys_error& e) {
    ADD_FAILURE() << e.what();
  };
  auto client = make_stream_client(p.loop, co, h);
  client->connect(target);
  EXPECT_EQ(client->connecting(), 1u);
  ASSERT_TRUE(run_until(p.loop, [&] { return !closes.empty(); }));
  EXPECT_EQ(got, (std::vector<std::string>{"hello", "world"}));
  EXPECT_EQ(closes, std::vector<close_reason>{close_reason::local});
  EXPECT_EQ(client->stats().accepted, 1u);
  EXPECT_EQ(client->stats().open, 0u);
  EXPECT_EQ(client->connecting(), 0u);
  ASSERT_TRUE(run_until(p.loop, [&] { return p.server->stats().open == 0; }));
}

TEST_P(client_test, echo_over_tcp) {
  fd_leak_guard guard;
  echo_pair p(GetParam());
  expect_echo_through_client(p, p.server->local());
}

TEST_P(client_test, echo_over_tcp6) {
  fd_leak_guard guard;
  echo_pair p(GetParam(), "tcp://[::1]:0");
  expect_echo_through_client(p, p.server->local());
}

TEST_P(client_test, echo_over_unix_path_and_abstract) {
  fd_leak_guard guard;
  auto dir = std::filesystem::temp_directory_path() /
             ("netkit-client-" + std::to_string(::getpid()) + "-" + sanitize_name(GetParam()));
  std::filesystem::create_directories(dir);
  {
    echo_pair p(GetParam(), "unix://" + (dir / "echo.sock").string());
    expect_echo_through_client(p, p.server->local());
  }
  {
    echo_pair p(GetParam(),
                "unix://@netkit-client-" + std::to_string(::getpid()) + sanitize_name(GetParam()));
    expect_echo_through_client(p, p.server->local());
  }
  std::filesystem::remove_all(dir);
}

TEST_P(client_test, failed_connect_reaches_on_connect_failed) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  auto target = closed_tcp_port();
  endpoint failed_target;
  std::string message;
  stream_handler h;
  h.on_connect = [](connection&) { ADD_FAILURE() << "connected"; };
  h.on_connect_failed = [&](stream_client&, const endpoint& t, const sys_error& e) {
    failed_target = t;
    message = e.what();
  };
  auto client = make_stream_client(loop, {}, h);
  client->connect(target);
  ASSERT_TRUE(run_until(loop, [&] { return !message.empty(); }));
  EXPECT_EQ(failed_target, target);
  EXPECT_EQ(message, "connect " + target.to_uri() + ": Connection refused (ECONNREFUSED)");
  EXPECT_EQ(client->stats().connect_failures, 1u);
  EXPECT_EQ(client->connecting(), 0u);
}

TEST_P(client_test, reconnects_after_the_server_restarts) {
  fd_leak_guard guard;
  auto path = std::filesystem::temp_directory_path() /
              ("netkit-reconnect-" + std::to_string(::getpid()) + sanitize_name(GetParam()));
  event_loop loop(GetParam());
  server_options so;
  so.listen = endpoint::parse("unix://" + path.string());
  auto server = make_stream_server(loop, so, {});
  client_options co;
  co.reconnect = true;
  co.connecting.backoff_initial = 20ms;
  co.connecting.retries = 50;
  int connects = 0;
  std::vector<close_reason> closes;
  stream_handler h;
  h.on_connect = [&](connection&) { ++connects; };
  h.on_close = [&](connection&, close_reason why) { closes.push_back(why); };
  auto client = make_stream_client(loop, co, h);
  client->connect(server->local());
  ASSERT_TRUE(run_until(loop, [&] { return connects == 1 && server->stats().open == 1; }));
  server.reset();  // the client sees EOF: lost, so it reconnects (retrying until it is back)
  ASSERT_TRUE(run_until(loop, [&] { return closes.size() == 1; }));
  EXPECT_EQ(closes[0], close_reason::peer_closed);
  server = make_stream_server(loop, so, {});
  ASSERT_TRUE(run_until(loop, [&] { return connects == 2; }));
  client->begin_shutdown();
  ASSERT_TRUE(run_until(loop, [&] { return client->stats().open == 0; }));
  EXPECT_EQ(client->connecting(), 0u);
  client.reset();
  server.reset();
  std::filesystem::remove(path);
}

TEST_P(client_test, reconnects_back_off_when_the_server_drops_every_connection) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  server_options so;
  so.listen = endpoint::parse("tcp://127.0.0.1:0");
  stream_handler drop;
  drop.on_connect = [](connection& c) { c.close(); };  // accepts, then hangs up at once
  auto server = make_stream_server(loop, so, drop);
  client_options co;
  co.reconnect = true;
  co.connecting.backoff_initial = 40ms;
  co.connecting.backoff_max = 2000ms;
  co.connecting.jitter = 0;
  int connects = 0;
  stream_handler h;
  h.on_connect = [&](connection&) { ++connects; };
  auto client = make_stream_client(loop, co, h);
  client->connect(server->local());
  // Losses in a row wait 80, 160, 320, 640 ms...: within 1 s at most 5 connections, where
  // a fixed 40 ms back-off would have made about 20.
  run_until(
      loop, [] { return false; }, 1000ms);
  EXPECT_GE(connects, 3);
  EXPECT_LE(connects, 5);
  client->begin_shutdown();
  ASSERT_TRUE(run_until(loop, [&] { return client->stats().open == 0; }));
}

TEST_P(client_test, closing_in_on_connect_is_not_reconnected_and_leaves_nothing_behind) {
  fd_leak_guard guard;
  echo_pair p(GetParam());
  client_options co;
  co.reconnect = true;
  int connects = 0;
  stream_handler h;
  h.on_connect = [&](connection& c) {
    ++connects;
    c.close();  // a local close: not a loss
  };
  auto client = make_stream_client(p.loop, co, h);
  client->connect(p.server->local());
  ASSERT_TRUE(run_until(p.loop, [&] { return connects == 1 && client->stats().open == 0; }));
  run_until(
      p.loop, [] { return false; }, 300ms);
  EXPECT_EQ(connects, 1);
  EXPECT_EQ(client->connecting(), 0u);
}

TEST_P(client_test, many_connections_on_one_client) {
  fd_leak_guard guard;
  echo_pair p(GetParam());
  client_options co;
  co.codec = codec_spec::parse("line");
  const std::size_t n = scaled(200, 50);
  std::size_t echoed = 0;
  stream_handler h;
  h.on_connect = [](connection& c) { c.send(fmt::format("{}", c.id().slot)); };
  h.on_message = [&](connection& c, std::span<const std::byte> m) {
    EXPECT_EQ(text_of(m), fmt::format("{}", c.id().slot));
    ++echoed;
  };
  auto client = make_stream_client(p.loop, co, h);
  for (std::size_t i = 0; i < n; ++i)
    client->connect(p.server->local());
  ASSERT_TRUE(run_until(p.loop, [&] { return echoed == n; }));
  std::size_t walked = 0;
  client->for_each([&](connection&) { ++walked; });
  EXPECT_EQ(walked, n);
  client.reset();  // closes every connection
  ASSERT_TRUE(run_until(p.loop, [&] { return p.server->stats().open == 0; }));
}

// A client destroyed from another client's callback on the same loop. On io_uring that
// callback runs while the loop walks a batch of completions, and the destructor waits for
// its own operations' completions, some of them in that very batch: each is delivered
// once, none is lost (a lost one made the destructor wait out its 5 s bound), and the
// destroyed client's handler is never called again.
TEST_P(client_test, a_client_destroyed_from_another_clients_callback_ends_at_once) {
  fd_leak_guard guard;
  echo_pair p(GetParam());
  client_options co;
  co.codec = codec_spec::parse("line");
  const std::size_t per_client = 20;
  const std::size_t a_limit = scaled(4000, 1000);
  std::size_t a_echoes = 0;
  std::size_t b_echoes = 0;
  std::size_t b_calls_after = 0;
  bool b_gone = false;
  std::unique_ptr<stream_client> b;
  std::optional<clock::duration> destroy_took;
  // Both clients ping-pong on every connection, so their completions share batches.
  stream_handler hb;
  hb.on_connect = [](connection& c) { c.send(std::string_view("b")); };
  hb.on_message = [&](connection& c, std::span<const std::byte> m) {
    b_calls_after += b_gone;
    ++b_echoes;
    c.send(m);
  };
  hb.on_close = [&](connection&, close_reason) { b_calls_after += b_gone; };
  stream_handler ha;
  ha.on_connect = [](connection& c) { c.send(std::string_view("a")); };
  ha.on_message = [&](connection& c, std::span<const std::byte> m) {
    ++a_echoes;
    if (!b_gone && b_echoes >= per_client * 10) {
      auto start = clock::now();
      b.reset();
      destroy_took = clock::now() - start;
      b_gone = true;
    }
    if (a_echoes < a_limit) c.send(m);
  };
  auto a = make_stream_client(p.loop, co, ha);
  b = make_stream_client(p.loop, co, hb);
  for (std::size_t i = 0; i < per_client; ++i) {
    a->connect(p.server->local());
    b->connect(p.server->local());
  }
  ASSERT_TRUE(run_until(
      p.loop, [&] { return a_echoes >= a_limit; }, stretch(30s)))
      << a_echoes << " echoes to a, " << b_echoes << " to b, b destroyed: " << b_gone;
  ASSERT_TRUE(destroy_took);
  EXPECT_LT(*destroy_took, stretch(1s)) << "the destructor waited for completions already taken";
  EXPECT_EQ(b_calls_after, 0u) << "the destroyed client's handler was called";
  EXPECT_EQ(a->stats().open, per_client);
  ASSERT_TRUE(run_until(p.loop, [&] { return p.server->stats().open == per_client; }));
  a.reset();
  ASSERT_TRUE(run_until(p.loop, [&] { return p.server->stats().open == 0; }));
}

INSTANTIATE_TEST_SUITE_P(all, client_test, every_backend(), param_name());

}  // namespace
}  // namespace netkit::test
