// Multi-reactor (N event loops, one per thread, one SO_REUSEPORT listener each) on every
// backend:
//  - case 7: 1000 short connections reach every reactor; closing one reactor's listener
//    (and then shutting that reactor down) does not disturb the others' established
//    connections;
//  - case 19: post_send / post_close from a foreign thread while the loop is inside that
//    connection's callback → no use-after-free or data race (run under ASan and TSan),
//    exactly one on_close per connection, foreign messages arrive unless the connection
//    closed first;
//  - dispatch (one acceptor thread, connections handed round robin): every loop gets its
//    exact share, on tcp:// and unix://, and no thread outlives join();
//  - `netkit echo-server --threads 2` end to end with both accept strategies, on tcp://
//    and (dispatch) unix://; reuseport on unix:// refused with a clear message.
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "netkit/net/multi_reactor.hpp"
#include "netkit/socket.hpp"
#include "support/backend_params.hpp"
#include "support/client_io.hpp"
#include "support/echo_driver.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/process_tree.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

// Which reactor the current thread runs (set on each loop thread by tag_reactors()), so a
// handler shared by every reactor knows whose server a connection belongs to.
thread_local std::size_t t_reactor = SIZE_MAX;

// Runs `fn` on reactor i's loop thread and returns its result (the server may only be
// touched there). Fails the test instead of hanging if the loop does not run it.
template <class Fn>
auto on_loop(multi_reactor& mr, std::size_t i, Fn fn) -> decltype(fn()) {
  using result = decltype(fn());
  auto done = std::make_shared<std::promise<result>>();
  auto future = done->get_future();
  mr.loop(i).post([done, fn = std::move(fn)]() mutable {
    if constexpr (std::is_void_v<result>) {
      fn();
      done->set_value();
    } else {
      done->set_value(fn());
    }
  });
  if (future.wait_for(stretch(10s)) != std::future_status::ready)
    throw std::runtime_error(fmt::format("reactor {} did not run posted work within 10 s", i));
  return future.get();
}

void tag_reactors(multi_reactor& mr) {
  for (std::size_t i = 0; i < mr.size(); ++i)
    on_loop(mr, i, [i] { t_reactor = i; });
}

server_stats stats_of(multi_reactor& mr, std::size_t i) {
  return on_loop(mr, i, [&mr, i] { return mr.server(i).stats(); });
}

// Bounded poll of reactor stats until `done` holds.
template <class Pred>
bool wait_for_stats(multi_reactor& mr, Pred done, deadline until) {
  for (;;) {
    std::vector<server_stats> all;
    for (std::size_t i = 0; i < mr.size(); ++i)
      all.push_back(stats_of(mr, i));
    if (done(all)) return true;
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(5ms);
  }
}

// Bounded wait until the reactors together accepted `accepted` connections and have none open.
bool wait_for_all_closed(multi_reactor& mr, std::uint64_t accepted, deadline until) {
  return wait_for_stats(
      mr,
      [accepted](const std::vector<server_stats>& all) {
        std::uint64_t sum = 0, open = 0;
        for (auto& s : all) {
          sum += s.accepted;
          open += s.open;
        }
        return sum == accepted && open == 0;
      },
      until);
}

std::uint16_t local_port(int fd) {
  return local_endpoint(fd, transport::tcp).port();
}

server_options line_options() {
  server_options o;
  o.listen = endpoint::parse("tcp://127.0.0.1:0");
  o.codec = codec_spec::parse("line");
  o.drain_timeout = 2s;
  return o;
}

// Open/close bookkeeping shared by the reactor threads (hence the mutex): every accepted
// connection must get exactly one on_close.
struct close_ledger {
  struct key {
    std::size_t reactor;
    std::uint32_t slot, generation;
    auto operator<=>(const key&) const = default;
  };
  std::mutex mutex;
  std::set<key> open;
  std::map<key, int> closes;
  std::uint64_t connects = 0;
  std::vector<std::string> errors;

  static key key_of(const connection& c) { return {t_reactor, c.id().slot, c.id().generation}; }
  void on_connect(const connection& c) {
    std::lock_guard lock(mutex);
    ++connects;
    if (!open.insert(key_of(c)).second)
      errors.push_back(
          fmt::format("connection {}/{} opened twice", c.id().slot, c.id().generation));
  }
  void on_close(const connection& c) {
    std::lock_guard lock(mutex);
    auto k = key_of(c);
    if (++closes[k] != 1)
      errors.push_back(fmt::format("reactor {} connection {}/{}: on_close #{}", k.reactor, k.slot,
                                   k.generation, closes[k]));
    if (open.erase(k) != 1)
      errors.push_back(
          fmt::format("on_close for a connection never opened: {}/{}", k.slot, k.generation));
  }
  // Empty when every connection opened was closed exactly once.
  std::string problems() {
    std::lock_guard lock(mutex);
    std::string out;
    for (auto& e : errors)
      out += e + "\n";
    if (!open.empty()) out += fmt::format("{} connections never got on_close\n", open.size());
    if (closes.size() != connects)
      out += fmt::format("{} connects but {} distinct closes\n", connects, closes.size());
    return out;
  }
};

class multi_reactor_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }
};

// Case 7: 4 reactors on one SO_REUSEPORT port; 1000 short connections (one echo each)
// → every reactor accepted at least one. Then one reactor stops accepting (its listener
// closed, stop_accepting()) → every established connection, on it and on the others,
// keeps echoing exactly, and new connections only reach the others. Then that reactor
// shuts down (begin_shutdown) → its own clients get EOF, the others still echo exactly.
TEST_P(multi_reactor_test, reuseport_spreads_connections_and_one_listener_closing_spares_others) {
  fd_leak_guard guard;
  constexpr std::size_t reactors = 4;
  close_ledger ledger;
  std::mutex ports_mutex;
  std::map<std::uint16_t, std::size_t> reactor_of_port;  // client port → reactor
  stream_handler h;
  h.on_connect = [&](connection& c) {
    ledger.on_connect(c);
    std::lock_guard lock(ports_mutex);
    reactor_of_port[c.peer().port()] = t_reactor;
  };
  h.on_message = [](connection& c, std::span<const std::byte> m) { c.send(m); };
  h.on_close = [&](connection& c, close_reason) { ledger.on_close(c); };
  {
    multi_reactor mr(reactors, GetParam(), line_options(), h);
    ASSERT_EQ(mr.size(), reactors);
    tag_reactors(mr);

    constexpr std::size_t short_conns = 1000;
    for (std::size_t i = 0; i < short_conns; ++i) {
      auto fd = connect_client(mr.local());
      auto problem =
          line_round_trip(fd.get(), fmt::format("short {}", i), deadline_after(stretch(5s)));
      ASSERT_EQ(problem, "") << "short connection " << i;
    }
    // Every short connection was served, and every reactor took some.
    ASSERT_TRUE(wait_for_all_closed(mr, short_conns, deadline_after(stretch(10s))))
        << "short connections not all accepted and closed";
    for (std::size_t i = 0; i < reactors; ++i) {
      auto s = stats_of(mr, i);
      EXPECT_GE(s.accepted, 1u) << "reactor " << i << " accepted nothing of " << short_conns;
      RecordProperty(fmt::format("reactor{}_accepted", i), static_cast<int>(s.accepted));
    }

    // Long-lived connections spread over the reactors.
    constexpr std::size_t long_conns = 40;
    std::vector<unique_fd> clients;
    std::vector<std::size_t> owner;
    for (std::size_t i = 0; i < long_conns; ++i) {
      clients.push_back(connect_client(mr.local()));
      ASSERT_EQ(line_round_trip(clients.back().get(), "hello", deadline_after(stretch(5s))), "");
      std::lock_guard lock(ports_mutex);
      auto it = reactor_of_port.find(local_port(clients.back().get()));
      ASSERT_NE(it, reactor_of_port.end());
      owner.push_back(it->second);
    }
    // The victim: the reactor with the most long-lived connections (so it has some).
    std::vector<std::size_t> per(reactors);
    for (auto o : owner)
      ++per[o];
    std::size_t victim = 0;
    for (std::size_t i = 1; i < reactors; ++i)
      if (per[i] > per[victim]) victim = i;
    ASSERT_LT(per[victim], long_conns) << "every long-lived connection landed on one reactor";

    // Payloads of many sizes (up to several socket reads) in every round.
    std::mt19937_64 rng(7);
    auto line_of = [&](std::size_t round, std::size_t i) {
      std::string s = fmt::format("r{} c{} ", round, i);
      s.append(rng() % 5000, static_cast<char>('a' + rng() % 26));
      return s;
    };
    auto all_echo = [&](std::size_t round, bool victim_too) {
      for (std::size_t i = 0; i < clients.size(); ++i) {
        if (!victim_too && owner[i] == victim) continue;
        auto problem =
            line_round_trip(clients[i].get(), line_of(round, i), deadline_after(stretch(5s)));
        EXPECT_EQ(problem, "") << "client " << i << " on reactor " << owner[i] << " (victim "
                               << victim << "), round " << round;
        if (!problem.empty()) return false;
      }
      return true;
    };

    auto before = stats_of(mr, victim);
    on_loop(mr, victim, [&mr, victim] { mr.server(victim).stop_accepting(); });
    for (std::size_t round = 0; round < 3; ++round)
      ASSERT_TRUE(all_echo(round, true));
    // New connections go to the listeners still open.
    for (std::size_t i = 0; i < 200; ++i) {
      auto fd = connect_client(mr.local());
      ASSERT_EQ(line_round_trip(fd.get(), fmt::format("new {}", i), deadline_after(stretch(5s))),
                "")
          << "new connection " << i << " after reactor " << victim << " stopped accepting";
    }
    EXPECT_EQ(stats_of(mr, victim).accepted, before.accepted)
        << "a reactor whose listener is closed accepted a connection";

    // Shutting the victim down drains and closes only its own connections.
    on_loop(mr, victim, [&mr, victim] { mr.server(victim).begin_shutdown(); });
    for (std::size_t i = 0; i < clients.size(); ++i)
      if (owner[i] == victim) {
        auto r = wait_for_close(clients[i].get(), deadline_after(stretch(5s)));
        EXPECT_EQ(r.end, read_end::eof)
            << "client " << i << " of the stopped reactor: " << to_string(r.end) << " "
            << printable(r.bytes);
      }
    for (std::size_t round = 3; round < 6; ++round)
      ASSERT_TRUE(all_echo(round, false));
    EXPECT_EQ(stats_of(mr, victim).open, 0u);

    clients.clear();
    mr.stop();
    mr.join();
    auto totals = mr.totals();
    EXPECT_EQ(totals.accepted, short_conns + long_conns + 200);
    EXPECT_EQ(totals.open, 0u);
  }
  EXPECT_EQ(ledger.problems(), "");
}

// Case 19: the handler of "block MODE R" hands the connection to a foreign thread and
// waits (bounded) until that thread has posted send and/or close for it, then replies
// "ack R" itself. So every post happens while the loop is inside that connection's
// callback. What the client sees is exact for each mode:
//   send        ack, foreign                (client closes)
//   close       ack, EOF                    (close delivers queued output first)
//   send_close  ack, foreign, EOF
//   close_send  ack, EOF                    (the send comes after close: dropped)
//   self_close  ack, EOF                    (the callback closes; the posts are late)
//   reset       -                           (the client resets while the callback waits)
// Every connection gets exactly one on_close.
TEST_P(multi_reactor_test, foreign_thread_send_and_close_during_the_callback) {
  fd_leak_guard guard;
  static const std::vector<std::string> modes = {"send",       "close",      "send_close",
                                                 "close_send", "self_close", "reset"};
  struct request {
    std::size_t reactor;
    conn_id id;
    std::string mode, round;
    std::shared_ptr<std::promise<void>> posted;
  };
  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<request> queue;
  std::atomic<int> latch_timeouts{0};
  std::atomic<std::size_t> handed_over{0};  // callbacks the foreign thread posted for
  multi_reactor* mr_ptr = nullptr;          // set before any client connects, read-only after
  close_ledger ledger;

  stream_handler h;
  h.on_connect = [&](connection& c) { ledger.on_connect(c); };
  h.on_close = [&](connection& c, close_reason) { ledger.on_close(c); };
  h.on_message = [&](connection& c, std::span<const std::byte> m) {
    std::string_view text(reinterpret_cast<const char*>(m.data()), m.size());
    // "block MODE ROUND"
    auto first = text.find(' '), second = text.rfind(' ');
    std::string mode(text.substr(first + 1, second - first - 1));
    std::string round(text.substr(second + 1));
    auto posted = std::make_shared<std::promise<void>>();
    auto done = posted->get_future();
    {
      std::lock_guard lock(queue_mutex);
      queue.push_back({t_reactor, c.id(), mode, round, posted});
    }
    queue_cv.notify_one();
    if (done.wait_for(stretch(10s)) != std::future_status::ready) ++latch_timeouts;
    c.send(fmt::format("ack {}", round));
    if (mode == "self_close") c.close();
  };

  {
    multi_reactor mr(2, GetParam(), line_options(), h);
    tag_reactors(mr);
    mr_ptr = &mr;
    std::atomic<bool> stop_foreign{false};
    std::thread foreign_thread([&] {
      // Bound: until stop_foreign, re-checked at least every 20 ms.
      while (!stop_foreign.load()) {
        std::unique_lock lock(queue_mutex);
        if (!queue_cv.wait_for(lock, 20ms, [&] { return !queue.empty(); })) continue;
        auto r = std::move(queue.front());
        queue.pop_front();
        lock.unlock();
        auto& loop = mr_ptr->loop(r.reactor);
        auto& server = mr_ptr->server(r.reactor);  // the reference only; used on its loop
        auto foreign_message = [&] {
          auto s = fmt::format("foreign {}", r.round);
          auto b = std::as_bytes(std::span(s.data(), s.size()));
          return std::vector<std::byte>(b.begin(), b.end());
        };
        if (r.mode == "send" || r.mode == "send_close")
          post_send(loop, server, r.id, foreign_message());
        if (r.mode == "close" || r.mode == "send_close" || r.mode == "close_send" ||
            r.mode == "self_close" || r.mode == "reset")
          post_close(loop, server, r.id);
        if (r.mode == "close_send" || r.mode == "self_close" || r.mode == "reset")
          post_send(loop, server, r.id, foreign_message());
        ++handed_over;
        r.posted->set_value();
      }
    });
    // Joined on every way out (a failed connect throws), before the reactors go.
    struct joiner {
      std::atomic<bool>& stop;
      std::thread& thread;
      ~joiner() {
        stop.store(true);
        if (thread.joinable()) thread.join();
      }
    } join_foreign{stop_foreign, foreign_thread};

    const std::size_t rounds = scaled(150, 40);
    for (std::size_t round = 0; round < rounds; ++round) {
      // One connection per mode, all at once, so both reactors have callbacks blocked
      // while the foreign thread posts.
      std::vector<unique_fd> clients;
      for (std::size_t m = 0; m < modes.size(); ++m) {
        clients.push_back(connect_client(mr.local()));
        send_all(clients.back().get(), fmt::format("block {} {}.{}\n", modes[m], round, m));
        if (modes[m] == "reset") {
          set_reset_on_close(clients.back().get());
          clients.back().reset();
        }
      }
      for (std::size_t m = 0; m < modes.size(); ++m) {
        const auto& mode = modes[m];
        if (mode == "reset") continue;
        auto ack = fmt::format("ack {}.{}\n", round, m);
        auto foreign = fmt::format("foreign {}.{}\n", round, m);
        int fd = clients[m].get();
        if (mode == "send") {
          auto r = read_exactly(fd, ack.size() + foreign.size(), deadline_after(stretch(10s)));
          EXPECT_EQ(r.text(), ack + foreign)
              << mode << " round " << round << ": " << to_string(r.end);
        } else {
          auto r = wait_for_close(fd, deadline_after(stretch(10s)));
          auto expected = mode == "send_close" ? ack + foreign : ack;
          EXPECT_EQ(r.text(), expected) << mode << " round " << round;
          EXPECT_EQ(r.end, read_end::eof) << mode << " round " << round;
        }
      }
      if (HasFailure()) break;
    }
    // Every connection closed on the server side before we count.
    EXPECT_TRUE(wait_for_stats(
        mr,
        [](const std::vector<server_stats>& all) {
          for (auto& s : all)
            if (s.open != 0) return false;
          return true;
        },
        deadline_after(stretch(10s))));
    stop_foreign.store(true);
    foreign_thread.join();
    mr.stop();
    mr.join();
    // Every callback except the resets' (whose data may be lost to the RST) went
    // through the foreign thread.
    EXPECT_GE(handed_over.load(), rounds * (modes.size() - 1));
    RecordProperty("handed_over", static_cast<int>(handed_over.load()));
    // A "reset" client may be gone before its connection is accepted.
    EXPECT_GE(mr.totals().accepted, rounds * (modes.size() - 1));
    std::lock_guard lock(queue_mutex);
    EXPECT_TRUE(queue.empty());
  }
  EXPECT_EQ(latch_timeouts.load(), 0) << "the foreign thread did not answer a blocked callback";
  EXPECT_EQ(ledger.problems(), "");
}

// Dispatch: the acceptor thread hands connections to the loops in turn, so 4 loops and
// 400 short connections → each loop accepted exactly 100, on tcp:// and unix:// alike;
// every echo exact; after join() every thread it started (4 loops + the acceptor) is gone.
TEST_P(multi_reactor_test, dispatch_hands_connections_round_robin_to_every_loop) {
  fd_leak_guard guard;
  constexpr std::size_t reactors = 4;
  constexpr std::size_t per_reactor = 100;
  temp_dir dir;
  for (auto listen :
       {std::string("tcp://127.0.0.1:0"), "unix://" + (dir.path / "mr.sock").string()}) {
    SCOPED_TRACE(listen);
    // A sanitizer starts a helper thread of its own with the first thread: have that
    // happen before the threads are listed.
    std::thread([] {}).join();
    const auto threads_before = thread_ids(::getpid());
    close_ledger ledger;
    stream_handler h;
    h.on_connect = [&](connection& c) { ledger.on_connect(c); };
    h.on_message = [](connection& c, std::span<const std::byte> m) { c.send(m); };
    h.on_close = [&](connection& c, close_reason) { ledger.on_close(c); };
    auto options = line_options();
    options.listen = endpoint::parse(listen);
    {
      multi_reactor mr({.threads = reactors,
                        .backend = GetParam(),
                        .accept = accept_strategy::dispatch,
                        .listeners = {}},
                       options, h);
      ASSERT_EQ(mr.size(), reactors);
      EXPECT_EQ(mr.strategy(), accept_strategy::dispatch);
      const auto ours = threads_started_since(::getpid(), threads_before);
      EXPECT_EQ(ours.size(), reactors + 1) << "want the loops and the acceptor; started: "
                                           << fmt::format("{}", fmt::join(ours, ", "));
      tag_reactors(mr);
      std::mt19937_64 rng(11);
      for (std::size_t i = 0; i < reactors * per_reactor; ++i) {
        auto fd = connect_client(mr.local());
        std::string line = fmt::format("conn {} ", i);
        line.append(rng() % 3000, static_cast<char>('a' + rng() % 26));
        ASSERT_EQ(line_round_trip(fd.get(), line, deadline_after(stretch(5s))), "")
            << "connection " << i;
      }
      ASSERT_TRUE(wait_for_all_closed(mr, reactors * per_reactor, deadline_after(stretch(10s))));
      for (std::size_t i = 0; i < reactors; ++i)
        EXPECT_EQ(stats_of(mr, i).accepted, per_reactor) << "reactor " << i;
      mr.stop();
      mr.join();
      EXPECT_EQ(mr.totals().accepted, reactors * per_reactor);
      // A joined thread may still be listed for a moment while the kernel finishes its exit;
      // any thread started since (not only those seen above) must be gone.
      EXPECT_TRUE(
          eventually([&] { return threads_started_since(::getpid(), threads_before).empty(); },
                     deadline_after(stretch(2s))))
          << "threads outlived join(): "
          << fmt::format("{}", fmt::join(threads_started_since(::getpid(), threads_before), ", "));
    }
    EXPECT_EQ(ledger.problems(), "");
  }
}

// reuseport cannot serve a Unix socket: refused before any thread starts, saying why.
TEST_P(multi_reactor_test, reuseport_refuses_a_unix_socket_and_names_dispatch) {
  fd_leak_guard guard;
  auto options = line_options();
  options.listen = endpoint::parse("unix://@netkit-mr-refused-" + std::to_string(::getpid()));
  try {
    multi_reactor mr({.threads = 2,
                      .backend = GetParam(),
                      .accept = accept_strategy::reuseport,
                      .listeners = {}},
                     options, {});
    ADD_FAILURE() << "reuseport on a Unix socket was accepted";
  } catch (const usage_error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("SO_REUSEPORT"), std::string::npos) << what;
    EXPECT_NE(what.find("dispatch"), std::string::npos) << what;
  }
}

// `netkit echo-server --threads 2 [ARGS]` on `listen`: exact echoes for many concurrent
// clients, then SIGTERM → exit 0 with the totals logged and no worker thread left.
void echo_server_with_two_threads(const std::string& backend, const std::string& listen,
                                  std::vector<std::string> args, std::string_view banner_has) {
  fd_leak_guard guard;
  server_config config;
  config.model = backend;
  config.codec = "length";
  config.listen = listen;
  config.extra_args = {"--threads", "2"};
  config.extra_args.insert(config.extra_args.end(), args.begin(), args.end());
  server_process server(config);
  EXPECT_NE(server.banner().find("threads=2"), std::string::npos) << server.banner();
  EXPECT_NE(server.banner().find(banner_has), std::string::npos) << server.banner();
  std::mt19937_64 rng(19);
  auto spec = codec_spec::parse(config.codec);
  std::vector<echo_plan> plans(scaled(64, 24));
  for (auto& p : plans) {
    p.block = std::make_shared<std::vector<std::byte>>(
        make_framed_stream(spec, rng, scaled(60, 20), 3000));
    p.max_split = 257;
  }
  auto run = run_echo_clients(server.local(), plans, deadline_after(stretch(60s)), 23, backend);
  EXPECT_EQ(run.problems(plans), "");
  EXPECT_TRUE(server.alive());
  auto status = server.terminate();
  ASSERT_TRUE(status) << "echo-server --threads 2 did not stop within 10 s of SIGTERM";
  EXPECT_TRUE(status->exited_normally()) << status->describe() << "\n" << server.log();
  EXPECT_NE(server.log().find(fmt::format("{} connections served", plans.size())),
            std::string::npos)
      << server.log();
}

TEST_P(multi_reactor_test, echo_server_with_two_threads_end_to_end) {
  // Without --accept: the default strategy.
  echo_server_with_two_threads(GetParam(), "tcp://127.0.0.1:0", {},
                               fmt::format(" accept={} ", to_string(default_accept_strategy)));
}

TEST_P(multi_reactor_test, echo_server_with_two_threads_reuseport_end_to_end) {
  echo_server_with_two_threads(GetParam(), "tcp://127.0.0.1:0", {"--accept", "reuseport"},
                               " accept=reuseport ");
}

TEST_P(multi_reactor_test, echo_server_with_two_threads_dispatching_end_to_end) {
  echo_server_with_two_threads(GetParam(), "tcp://127.0.0.1:0", {"--accept", "dispatch"},
                               " accept=dispatch ");
}

TEST_P(multi_reactor_test, echo_server_with_two_busy_polling_threads_end_to_end) {
  echo_server_with_two_threads(GetParam(), "tcp://127.0.0.1:0", {"--busy-poll", "100"},
                               " busy-poll=100us ");
}

// Unix: reuseport is refused with the reason; dispatch (also what --threads picks there
// when --accept is not given) serves.
TEST_P(multi_reactor_test, echo_server_with_two_threads_on_a_unix_socket) {
  temp_dir dir;
  auto listen = "unix://" + (dir.path / "echo.sock").string();
  echo_server_with_two_threads(GetParam(), listen, {}, " accept=dispatch ");
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(dir.path / "echo.sock")));

  child_process refused(echo_server_command(
      {"--listen", listen, "--model", GetParam(), "--threads", "2", "--accept", "reuseport"}));
  auto st = refused.wait(deadline_after(stretch(10s)));
  ASSERT_TRUE(st);
  EXPECT_NE(st->code, 0);
  auto err = refused.stderr_text();
  EXPECT_NE(err.find("--accept reuseport"), std::string::npos) << err;
  EXPECT_NE(err.find("Unix sockets do not have"), std::string::npos) << err;
  EXPECT_NE(err.find("--accept dispatch"), std::string::npos) << err;
}

INSTANTIATE_TEST_SUITE_P(all, multi_reactor_test, every_backend(), param_name{});

}  // namespace
}  // namespace netkit::test
