// What an application needs from the server, on every backend: broadcast that frames once
// and shares the bytes (no copy per recipient), for_each, per-connection context with its
// documented lifetime, conn_id as a hash/ordered key, adopt() of a descriptor accepted
// elsewhere, and multi_reactor's cross-thread post_send/post_broadcast by conn_id.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "netkit/inspect/tcp_info.hpp"
#include "netkit/net/multi_reactor.hpp"
#include "netkit/net/stream_client.hpp"
#include "netkit/net/stream_server.hpp"
#include "netkit/socket.hpp"
#include "support/backend_params.hpp"
#include "support/client_io.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/loop_run.hpp"
#include "support/test_env.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

server_options line_server() {
  server_options so;
  so.listen = endpoint::parse("tcp://127.0.0.1:0");
  so.codec = codec_spec::parse("line");
  return so;
}

class app_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }
};

TEST_P(app_test, broadcast_reaches_everyone_once_in_order) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  // Chat-style: every message a client sends goes to every other client.
  stream_handler relay;
  relay.on_message = [](connection& c, std::span<const std::byte> m) {
    c.owner().broadcast(m, c.id());
  };
  auto server = make_stream_server(loop, line_server(), relay);
  const std::size_t clients = 10, per_client = 20;
  std::map<std::uint32_t, std::vector<std::string>> got;  // by client slot
  std::size_t connected = 0;
  client_options co;
  co.codec = codec_spec::parse("line");
  stream_handler h;
  h.on_connect = [&](connection&) { ++connected; };
  h.on_message = [&](connection& c, std::span<const std::byte> m) {
    got[c.id().slot].push_back(text_of(m));
  };
  auto client = make_stream_client(loop, co, h);
  for (std::size_t i = 0; i < clients; ++i)
    client->connect(server->local());
  ASSERT_TRUE(
      run_until(loop, [&] { return connected == clients && server->stats().open == clients; }));
  // Each client sends its numbered messages; the others must see each exactly once and
  // each sender's messages in its order.
  client->for_each([&](connection& c) {
    for (std::size_t k = 0; k < per_client; ++k)
      c.send(fmt::format("{}:{}", c.id().slot, k));
  });
  const std::size_t expected = (clients - 1) * per_client;
  ASSERT_TRUE(run_until(loop, [&] {
    std::size_t total = 0;
    for (auto& [slot, lines] : got)
      total += lines.size();
    return total == clients * expected;
  }));
  for (auto& [slot, lines] : got) {
    EXPECT_EQ(lines.size(), expected) << "client " << slot;
    std::map<std::string, int> next;  // sender -> next expected k
    for (auto& line : lines) {
      auto sender = line.substr(0, line.find(':'));
      EXPECT_NE(sender, std::to_string(slot)) << "a client got its own message back";
      EXPECT_EQ(line, fmt::format("{}:{}", sender, next[sender]++)) << "order broken";
    }
  }
}

TEST_P(app_test, broadcast_shares_one_frame_among_queued_recipients) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  server_options so = line_server();
  so.codec = codec_spec::parse("line,max=8388608");
  so.high_water = 64 << 20;
  so.hard_limit = 64 << 20;
  auto server = make_stream_server(loop, so, {});
  // Peers that never read, with small buffers: a large frame stays queued on each.
  const std::size_t peers = 8;
  std::vector<unique_fd> sockets;
  for (std::size_t i = 0; i < peers; ++i) {
    auto fd = open_socket(server->local(), io_mode::blocking);
    set_recv_buffer(fd.get(), 4096);
    if (::connect(fd.get(), server->local().addr(), server->local().length()) != 0)
      FAIL() << "connect: " << errno;
    sockets.push_back(std::move(fd));
  }
  ASSERT_TRUE(run_until(loop, [&] { return server->stats().open == peers; }));
  std::string big(4 << 20, 'x');
  auto frame = server->frame(big);
  EXPECT_EQ(frame.size(), big.size() + 1);  // line codec: one '\n'
  EXPECT_EQ(server->broadcast(frame), peers);
  loop.run_once(0ms);
  // Every connection's queue holds a reference to the same bytes, none a copy.
  EXPECT_EQ(frame.use_count(), static_cast<long>(peers + 1));
  // (The kernel takes a few MiB per socket into its buffers; the rest waits, shared.)
  server->for_each([&](connection& c) { EXPECT_GT(c.queued_output(), 0u); });
  // Readers drain it: each gets the whole frame, and the references go away.
  for (auto& fd : sockets)
    set_nonblocking(fd.get(), true);
  std::vector<std::size_t> received(peers, 0);
  std::vector<std::byte> sink(1 << 16);
  ASSERT_TRUE(run_until(
      loop,
      [&] {
        bool all = true;
        for (std::size_t i = 0; i < peers; ++i) {
          ssize_t n;
          while ((n = ::recv(sockets[i].get(), sink.data(), sink.size(), 0)) > 0)
            received[i] += static_cast<std::size_t>(n);
          all = all && received[i] == frame.size();
        }
        return all;
      },
      stretch(20s)));
  ASSERT_TRUE(run_until(loop, [&] { return frame.use_count() == 1; }));
}

// A fan-out's cost is its send calls: frames queued on a connection during one loop turn
// (broadcasts from several senders' messages, a timer's notices) leave in one write at
// the end of the turn. Seen from the kernel: TCP_NODELAY is on, so each write of a few
// bytes would be a segment of its own; the ten frames go out in one.
TEST_P(app_test, frames_queued_in_one_turn_leave_in_one_write) {
  if (GetParam() == "uring")
    GTEST_SKIP() << "the completion driver sends what is queued behind the send in flight";
  fd_leak_guard guard;
  event_loop loop(GetParam());
  auto server = make_stream_server(loop, line_server(), {});
  auto fd = connect_client(server->local());
  ASSERT_TRUE(run_until(loop, [&] { return server->stats().open == 1; }));
  int server_side = -1;
  server->for_each([&](connection& c) { server_side = c.fd(); });
  ASSERT_GE(server_side, 0);
  const auto before = inspect::read_tcp_info(server_side).segs_out;
  loop.post([&] {
    for (int i = 0; i < 10; ++i)
      server->broadcast(fmt::format("line {}", i));
  });
  std::string got;
  ASSERT_TRUE(run_until(loop, [&] {
    char buf[256];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    return got.size() >= 70;
  }));
  EXPECT_EQ(got,
            "line 0\nline 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\n");
  // The client sent nothing, so the server's socket sent no ACK: only data segments.
  EXPECT_EQ(inspect::read_tcp_info(server_side).segs_out - before, 1u);
}

TEST_P(app_test, context_lives_until_after_on_close) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  std::weak_ptr<int> watch;  // on the token only the connection's context owns
  bool context_seen_in_on_close = false;
  std::vector<std::string> nicks;
  stream_handler h;
  h.on_connect = [&](connection& c) { c.context() = std::string("anonymous"); };
  h.on_message = [&](connection& c, std::span<const std::byte> m) {
    auto* nick = std::any_cast<std::string>(&c.context());
    ASSERT_NE(nick, nullptr);
    nicks.push_back(*nick);
    auto token = std::make_shared<int>(1);
    watch = token;
    c.context() = std::make_pair(text_of(m), token);  // replaces the string: any type will do
  };
  h.on_close = [&](connection& c, close_reason) {
    context_seen_in_on_close =
        std::any_cast<std::pair<std::string, std::shared_ptr<int>>>(&c.context()) != nullptr;
  };
  auto server = make_stream_server(loop, line_server(), h);
  auto fd = connect_client(server->local());
  send_all(fd.get(), "alice\n");
  ASSERT_TRUE(run_until(loop, [&] { return nicks.size() == 1; }));
  EXPECT_EQ(nicks[0], "anonymous");
  EXPECT_FALSE(watch.expired());  // held by the connection's context
  fd.reset();
  ASSERT_TRUE(run_until(loop, [&] { return server->stats().open == 0; }));
  EXPECT_TRUE(context_seen_in_on_close);
  loop.run_once(0ms);  // the object is freed after the dispatch that closed it
  EXPECT_TRUE(watch.expired());
}

TEST_P(app_test, conn_ids_are_hashable_ordered_and_findable) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  std::unordered_set<conn_id> by_hash;
  std::set<conn_id> ordered;
  stream_handler h;
  h.on_connect = [&](connection& c) {
    by_hash.insert(c.id());
    ordered.insert(c.id());
  };
  auto server = make_stream_server(loop, line_server(), h);
  std::vector<unique_fd> fds;
  for (int i = 0; i < 5; ++i)
    fds.push_back(connect_client(server->local()));
  ASSERT_TRUE(run_until(loop, [&] { return server->stats().open == 5; }));
  EXPECT_EQ(by_hash.size(), 5u);
  EXPECT_EQ(ordered.size(), 5u);
  for (auto id : ordered)
    EXPECT_NE(server->find(id), nullptr);
  // A closed connection's id never finds the next occupant of its slot.
  auto first = *ordered.begin();
  server->find(first)->close();
  loop.run_once(0ms);
  EXPECT_EQ(server->find(first), nullptr);
  fds.push_back(connect_client(server->local()));
  ASSERT_TRUE(run_until(loop, [&] { return by_hash.size() == 6; }));
  EXPECT_EQ(server->find(first), nullptr);
  // for_each visits each open one once, even when the walk closes some.
  std::size_t visited = 0;
  server->for_each([&](connection& c) {
    ++visited;
    if (c.id().slot % 2 == 0) c.close();
  });
  EXPECT_EQ(visited, 5u);
}

// Set once on the listener (tune_listener), inherited by every accepted socket.
TEST_P(app_test, accepted_connections_have_tcp_nodelay) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  std::vector<int> nodelay;
  stream_handler h;
  h.on_connect = [&](connection& c) {
    int on = 0;
    socklen_t len = sizeof on;
    ASSERT_EQ(::getsockopt(c.fd(), IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    nodelay.push_back(on);
  };
  auto server = make_stream_server(loop, line_server(), h);
  auto a = connect_client(server->local());
  auto b = connect_client(server->local());
  ASSERT_TRUE(run_until(loop, [&] { return nodelay.size() == 2; }));
  EXPECT_EQ(nodelay, (std::vector<int>{1, 1}));
}

TEST_P(app_test, send_buffer_fixes_each_connections_so_sndbuf) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  std::vector<int> sizes;
  stream_handler h;
  h.on_connect = [&](connection& c) {
    int size = 0;
    socklen_t len = sizeof size;
    ASSERT_EQ(::getsockopt(c.fd(), SOL_SOCKET, SO_SNDBUF, &size, &len), 0);
    sizes.push_back(size);
  };
  server_options so = line_server();
  so.send_buffer = 8192;
  auto server = make_stream_server(loop, so, h);
  auto fd = connect_client(server->local());
  ASSERT_TRUE(run_until(loop, [&] { return sizes.size() == 1; }));
  EXPECT_EQ(sizes[0], 2 * 8192);  // the kernel doubles what it is given
}

TEST_P(app_test, adopted_descriptor_is_served_like_an_accepted_one) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  stream_handler echo;
  std::vector<close_reason> closes;
  echo.on_message = [](connection& c, std::span<const std::byte> m) { c.send(m); };
  echo.on_close = [&](connection&, close_reason why) { closes.push_back(why); };
  server_options so = line_server();
  so.max_connections = 1;
  auto server = make_stream_server(loop, so, echo);
  // Accepted elsewhere: a listener of our own.
  auto elsewhere = listen_on(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking);
  auto where = local_endpoint(elsewhere.get(), transport::tcp);
  auto client = connect_client(where);
  unique_fd accepted(::accept4(elsewhere.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  ASSERT_TRUE(accepted);
  auto peer = peer_endpoint(accepted.get(), transport::tcp);
  auto id = server->adopt(std::move(accepted), peer);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(server->find(*id)->peer(), peer);
  send_all(client.get(), "adopted\n");
  set_nonblocking(client.get(), true);
  std::string echoed;
  ASSERT_TRUE(run_until(loop,
                        [&] {
                          char buf[64];
                          ssize_t n = ::recv(client.get(), buf, sizeof buf, 0);
                          if (n > 0) echoed.append(buf, static_cast<std::size_t>(n));
                          return echoed == "adopted\n";
                        }))
      << "echoed: " << echoed;
  // Admission applies to adopted descriptors too: over max_connections it is refused.
  auto second = connect_client(where);
  unique_fd extra(::accept4(elsewhere.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  EXPECT_FALSE(server->adopt(std::move(extra), peer).has_value());
  EXPECT_EQ(server->stats().refused, 1u);
  client.reset();
  ASSERT_TRUE(run_until(loop, [&] { return closes.size() == 1; }));
  EXPECT_EQ(closes[0], close_reason::peer_closed);
}

TEST_P(app_test, destroying_a_server_with_open_connections_lets_on_close_use_it) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  std::size_t closes = 0;
  stream_handler h;
  // A chat server tells the others when someone leaves: on_close reaches the server.
  h.on_close = [&](connection& c, close_reason) {
    ++closes;
    c.owner().broadcast("left", c.id());
  };
  auto server = make_stream_server(loop, line_server(), h);
  std::vector<unique_fd> fds;
  for (int i = 0; i < 3; ++i)
    fds.push_back(connect_client(server->local()));
  ASSERT_TRUE(run_until(loop, [&] { return server->stats().open == 3; }));
  server.reset();
  EXPECT_EQ(closes, 3u);
}

TEST_P(app_test, a_throwing_connect_handler_closes_that_connection_only) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  int connects = 0;
  stream_handler h;
  h.on_connect = [&](connection&) {
    if (++connects == 1) throw std::runtime_error("no room");
  };
  h.on_message = [](connection& c, std::span<const std::byte> m) { c.send(m); };
  auto server = make_stream_server(loop, line_server(), h);
  auto first = connect_client(server->local());
  ASSERT_TRUE(run_until(loop, [&] { return connects == 1 && server->stats().open == 0; }));
  auto second = connect_client(server->local());
  send_all(second.get(), "still serving\n");
  set_nonblocking(second.get(), true);
  std::string echoed;
  ASSERT_TRUE(run_until(loop, [&] {
    char buf[64];
    ssize_t n = ::recv(second.get(), buf, sizeof buf, 0);
    if (n > 0) echoed.append(buf, static_cast<std::size_t>(n));
    return echoed == "still serving\n";
  }));
}

TEST_P(app_test, adopt_makes_a_blocking_descriptor_non_blocking) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  auto server = make_stream_server(loop, line_server(), {});
  auto elsewhere = listen_on(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking);
  auto client = connect_client(local_endpoint(elsewhere.get(), transport::tcp));
  unique_fd accepted(::accept4(elsewhere.get(), nullptr, nullptr, SOCK_CLOEXEC));  // blocking
  int raw = accepted.get();
  auto peer = peer_endpoint(raw, transport::tcp);
  ASSERT_TRUE(server->adopt(std::move(accepted), peer));
  EXPECT_TRUE(::fcntl(raw, F_GETFL) & O_NONBLOCK);
}

TEST_P(app_test, broadcast_counts_only_connections_that_take_it) {
  fd_leak_guard guard;
  event_loop loop(GetParam());
  server_options so = line_server();
  so.codec = codec_spec::parse("line,max=16777216");
  so.hard_limit = 64 << 20;
  auto server = make_stream_server(loop, so, {});
  std::vector<unique_fd> fds;
  for (int i = 0; i < 3; ++i)
    fds.push_back(connect_client(server->local()));
  ASSERT_TRUE(run_until(loop, [&] { return server->stats().open == 3; }));
  std::vector<conn_id> ids;
  server->for_each([&](connection& c) { ids.push_back(c.id()); });
  ASSERT_EQ(ids.size(), 3u);
  // Fill one connection's output so its close has to drain: it is closing, not closed.
  auto* draining = server->find(ids[0]);
  std::string big(8 << 20, 'x');
  draining->send(big);
  draining->close();
  if (server->find(ids[0]) == nullptr) GTEST_SKIP() << "the kernel took 8 MiB at once";
  EXPECT_EQ(server->broadcast("hello"), 2u);
}

INSTANTIATE_TEST_SUITE_P(all, app_test, every_backend(), param_name());

TEST(loop_thread_check, a_call_from_another_thread_aborts_with_a_message) {
  if (!NETKIT_LOOP_THREAD_CHECKS)
    GTEST_SKIP() << "release build: loop-thread checks are compiled out (debug and ASan "
                    "builds have them)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        event_loop loop("epoll");
        auto server = make_stream_server(loop, line_server(), {});
        std::thread runner([&] { loop.run_once(0ms); });  // that thread now runs the loop
        runner.join();
        server->for_each([](connection&) {});
      },
      "called from a thread that does not run its event loop");
}

// The conn_ids a multi_reactor's threads connect, recorded under a lock.
struct id_recorder {
  std::mutex mutex;
  std::vector<conn_id> ids;
  stream_handler handler() {
    stream_handler h;
    h.on_connect = [this](connection& c) {
      std::lock_guard lock(mutex);
      ids.push_back(c.id());
    };
    return h;
  }
  // Waits (bounded) until `count` have connected; a copy of the ids.
  std::vector<conn_id> wait_for(std::size_t count) {
    auto until = deadline_after(stretch(5s));
    for (;;) {
      {
        std::lock_guard lock(mutex);
        if (ids.size() >= count || clock::now() > until) return ids;
      }
      std::this_thread::sleep_for(2ms);
    }
  }
};

class multi_app_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }
};

TEST_P(multi_app_test, post_send_and_broadcast_find_the_owning_loop_from_the_id) {
  fd_leak_guard guard;
  id_recorder recorder;
  stream_handler h = recorder.handler();
  const std::size_t clients = 8;
  std::vector<unique_fd> fds;
  {
    multi_reactor reactors(2, GetParam(), line_server(), h);
    for (std::size_t i = 0; i < clients; ++i)
      fds.push_back(connect_client(reactors.local()));
    std::vector<conn_id> snapshot = recorder.wait_for(clients);
    ASSERT_EQ(snapshot.size(), clients);
    std::set<std::uint32_t> groups;
    for (auto id : snapshot) {
      groups.insert(id.group);
      auto text = fmt::format("to {}:{}:{}\n", id.group, id.slot, id.generation);
      std::vector<std::byte> bytes(
          reinterpret_cast<const std::byte*>(text.data()),
          reinterpret_cast<const std::byte*>(text.data()) + text.size() - 1);
      reactors.post_send(id, bytes);
    }
    EXPECT_LE(groups.size(), 2u);
    // Each client reads its own message (post_send found the right loop), then one copy
    // of the broadcast.
    std::string everyone = "everyone";
    reactors.post_broadcast(
        std::span(reinterpret_cast<const std::byte*>(everyone.data()), everyone.size()));
    std::multiset<std::string> firsts;
    for (auto& fd : fds) {
      auto own = read_line(fd.get(), deadline_after(stretch(5s)));
      auto all = read_line(fd.get(), deadline_after(stretch(5s)));
      firsts.insert(own.text());
      EXPECT_EQ(all.text(), "everyone\n");
    }
    std::multiset<std::string> expected;
    for (auto id : snapshot)
      expected.insert(fmt::format("to {}:{}:{}\n", id.group, id.slot, id.generation));
    EXPECT_EQ(firsts, expected);
    fds.clear();
  }
}

TEST_P(multi_app_test, post_each_runs_on_every_loop_thread_in_posting_order) {
  fd_leak_guard guard;
  multi_reactor reactors(3, GetParam(), line_server(), {});
  std::mutex mutex;
  std::map<const stream_server*, std::vector<int>> seen;  // per server, the calls' order
  std::atomic<int> on_wrong_thread{0};
  for (int k = 0; k < 20; ++k)
    reactors.post_each([&, k](stream_server& s) {
      if (!s.loop().in_loop_thread()) ++on_wrong_thread;
      std::lock_guard lock(mutex);
      seen[&s].push_back(k);
    });
  auto until = deadline_after(stretch(5s));
  for (;;) {
    {
      std::lock_guard lock(mutex);
      std::size_t total = 0;
      for (const auto& [server, calls] : seen)
        total += calls.size();
      if (total == 60 || clock::now() > until) break;
    }
    std::this_thread::sleep_for(1ms);
  }
  reactors.stop();
  reactors.join();
  EXPECT_EQ(on_wrong_thread, 0);
  ASSERT_EQ(seen.size(), 3u);
  std::vector<int> in_order(20);
  std::iota(in_order.begin(), in_order.end(), 0);
  for (const auto& [server, calls] : seen)
    EXPECT_EQ(calls, in_order);
}

TEST_P(multi_app_test, a_message_the_codec_refuses_is_dropped_and_the_reactor_serves_on) {
  fd_leak_guard guard;
  id_recorder recorder;
  stream_handler h = recorder.handler();
  h.on_message = [](connection& c, std::span<const std::byte> m) { c.send(m); };
  multi_reactor reactors(1, GetParam(), line_server(), h);
  auto fd = connect_client(reactors.local());
  auto seen = recorder.wait_for(1);
  ASSERT_EQ(seen.size(), 1u);
  conn_id id = seen[0];
  std::string bad = "two\nlines";  // the line codec cannot carry a '\n'
  reactors.post_send(
      id, std::vector<std::byte>(reinterpret_cast<const std::byte*>(bad.data()),
                                 reinterpret_cast<const std::byte*>(bad.data()) + bad.size()));
  EXPECT_EQ(line_round_trip(fd.get(), "still here", deadline_after(stretch(5s))), "");
  fd.reset();
}

INSTANTIATE_TEST_SUITE_P(all, multi_app_test, every_backend(), param_name());

}  // namespace
}  // namespace netkit::test
