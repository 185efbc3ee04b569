// `netkit chat-server` end to end, on every event-loop backend and on the multi-reactor
// (--threads 2): the protocol as nc sees it (exact lines), nick rules, errors that reach
// only their sender, the login and idle deadlines, SIGTERM, and the hostile cases of
// reliability-cases.md "Chat server and client":
//  - 35: a member that stops reading while the others chat at full speed is cut off at
//    its output cap, the others are told and keep their latency, server RSS stays bounded;
//  - 36: 1000 slowloris connections (silent, or one byte and no newline) are closed at the
//    login deadline while legitimate clients join throughout;
//  - 37: a client reset in the middle of a line: nothing of it is broadcast, the others
//    see only its leave notice;
// and 1000 concurrent scripted clients (one loop in this process drives them all), each
// receiving every broadcast exactly once and in order, with clients joining and leaving
// under load.
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "netkit/process.hpp"
#include "support/backend_params.hpp"
#include "support/chat_crowd.hpp"
#include "support/client_io.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

// "MODEL" or "MODEL/threads=N".
struct chat_model {
  std::string model;
  std::size_t threads = 1;
};

chat_model parse_param(const std::string& p) {
  auto slash = p.find('/');
  if (slash == std::string::npos) return {p, 1};
  return {p.substr(0, slash), std::stoul(p.substr(p.find('=') + 1))};
}

std::vector<std::string> chat_params() {
  auto names = backend_names();
  names.push_back("epoll/threads=2");
  return names;
}

server_config chat_config(const std::string& param, std::vector<std::string> extra = {}) {
  auto m = parse_param(param);
  server_config c;
  c.command = "chat-server";
  c.model = m.model;
  c.extra_args = std::move(extra);
  if (m.threads > 1) {
    c.extra_args.push_back("--threads");
    c.extra_args.push_back(std::to_string(m.threads));
  }
  // ASan keeps freed blocks resident in its quarantine (256 MiB by default): at full chat
  // speed that alone outgrows any memory bound. Kept small, RSS bounds mean the same in
  // every build (as test_stream_models and test_server_connection do).
  if (sanitized_build) c.env.push_back("ASAN_OPTIONS=quarantine_size_mb=1:detect_leaks=1");
  return c;
}

// One nc-like client: blocking socket, one line at a time, every read with a deadline.
struct line_peer {
  unique_fd fd;
  explicit line_peer(const endpoint& ep) : fd(connect_client(ep)) {}
  void send(std::string_view line) const { send_all(fd.get(), fmt::format("{}\n", line)); }
  // The next line without '\n', or "<EOF>", "<reset>", "<timeout>".
  std::string next(clock::duration within = stretch(5s)) const {
    auto r = read_line(fd.get(), deadline_after(within));
    if (r.end != read_end::data)
      return fmt::format("<{}>", to_string(r.end));  // "<EOF>", "<reset>"...
    auto text = r.text();
    text.pop_back();
    return text;
  }
  // Skips the two motd lines.
  void skip_motd() const {
    EXPECT_EQ(next(), "*** welcome to netkit chat");
    EXPECT_TRUE(next().starts_with("*** choose a nick with /nick NAME within"));
  }
  // Nothing else is waiting (checked by sending a /who round trip).
  void expect_quiet() const {
    send("/who");
    EXPECT_TRUE(next().starts_with("*** here (")) << "an unexpected line came first";
  }
};

line_peer join(const server_process& s, const std::string& nick,
               std::vector<const line_peer*> present) {
  line_peer p(s.local());
  p.skip_motd();
  p.send(fmt::format("/nick {}", nick));
  EXPECT_EQ(p.next(), fmt::format("*** {} joined", nick));
  for (const auto* other : present)
    EXPECT_EQ(other->next(), fmt::format("*** {} joined", nick));
  return p;
}

void expect_all(std::vector<const line_peer*> peers, const std::string& line) {
  for (const auto* p : peers)
    EXPECT_EQ(p->next(), line);
}

class chat_server_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(parse_param(GetParam()).model); }
};

TEST_P(chat_server_test, commands_messages_and_errors_reach_exactly_who_they_should) {
  fd_leak_guard guard;
  server_process s(chat_config(GetParam()));
  EXPECT_TRUE(s.banner().ends_with(fmt::format("threads={}", parse_param(GetParam()).threads)));
  auto alice = join(s, "alice", {});
  auto bob = join(s, "bob", {&alice});
  auto carol = join(s, "carol", {&alice, &bob});

  alice.send("hello all");
  expect_all({&alice, &bob, &carol}, "<alice> hello all");
  // /msg reaches only its target; carol's next line is the /me that follows.
  alice.send("/msg bob psst");
  EXPECT_EQ(alice.next(), "-> *bob* psst");
  EXPECT_EQ(bob.next(), "*alice* psst");
  bob.send("/me waves");
  expect_all({&alice, &bob, &carol}, "* bob waves");
  // "//" escapes a message that starts with '/'.
  carol.send("//not a command");
  expect_all({&alice, &bob, &carol}, "<carol> /not a command");

  // Bad lines are answered to their sender only, who stays connected.
  carol.send("/bogus x");
  EXPECT_EQ(carol.next(), "! unknown command /bogus: /help lists the commands");
  carol.send(std::string(5000, 'x'));
  EXPECT_EQ(carol.next(), "! line too long (at most 1024 bytes): discarded");
  carol.send("/me");
  EXPECT_EQ(carol.next(), "! usage: /me ACTION");
  carol.send("/msg dave hi");
  EXPECT_EQ(carol.next(), "! no one called 'dave' is here (/who lists them)");
  carol.send("/msg bob");
  EXPECT_EQ(carol.next(), "! usage: /msg NICK TEXT");
  carol.send("still here\r");  // telnet's "\r\n"
  expect_all({&alice, &bob, &carol}, "<carol> still here");
  alice.send("/who");
  EXPECT_EQ(alice.next(), "*** here (3): alice bob carol");
  alice.send("/help");
  EXPECT_TRUE(alice.next().starts_with("*** commands: /nick NAME, /who"));

  bob.send("/quit bye now");
  EXPECT_EQ(bob.next(), "*** bye");
  EXPECT_EQ(bob.next(), "<EOF>");
  expect_all({&alice, &carol}, "*** bob left (quit: bye now)");
  carol.fd.reset();
  EXPECT_EQ(alice.next(), "*** carol left (connection closed)");
  alice.expect_quiet();
  alice.fd.reset();
  EXPECT_EQ(s.terminate()->code, 0);
}

TEST_P(chat_server_test, nick_rules) {
  fd_leak_guard guard;
  server_process s(chat_config(GetParam()));
  auto alice = join(s, "alice", {});
  line_peer guest(s.local());
  guest.skip_motd();
  guest.send("hi");
  EXPECT_EQ(guest.next(), "! choose a nick first: /nick NAME");
  guest.send("/me waves");
  EXPECT_EQ(guest.next(), "! choose a nick first: /nick NAME");
  guest.send("/nick alice");
  EXPECT_EQ(guest.next(), "! nick 'alice' is taken: choose another");
  guest.send("/nick 1abc");
  EXPECT_EQ(guest.next(), "! nick '1abc' must start with a letter");
  guest.send("/nick abcdefghijklmnopq");
  EXPECT_EQ(guest.next(), "! nick 'abcdefghijklmnopq' is too long: at most 16 characters");
  guest.send("/nick a.b");
  EXPECT_EQ(guest.next(), "! nick 'a.b' may hold only letters, digits, '_' and '-'");
  guest.send("/nick a b");
  EXPECT_EQ(guest.next(), "! a nick is one word: /nick NAME");
  guest.send("/nick");
  EXPECT_EQ(guest.next(), "! a nick is needed: /nick NAME");
  // A guest sees nothing of the room; alice saw nothing of its attempts.
  alice.send("only members hear this");
  EXPECT_EQ(alice.next(), "<alice> only members hear this");
  guest.send("/nick bob");
  // With --threads, alice's line reaches the guest's loop by a post, which may run after
  // the guest's /nick there: a member sees what reaches its loop after it joined.
  if (parse_param(GetParam()).threads > 1) {
    auto line = guest.next();
    EXPECT_TRUE(line == "*** bob joined" || line == "<alice> only members hear this") << line;
    if (line != "*** bob joined") {
      EXPECT_EQ(guest.next(), "*** bob joined");
    }
    EXPECT_EQ(alice.next(), "*** bob joined");
  } else {
    expect_all({&guest, &alice}, "*** bob joined");
  }
  guest.send("/nick bob");
  EXPECT_EQ(guest.next(), "*** you are already bob");
  guest.send("/nick robert");
  expect_all({&guest, &alice}, "*** bob is now known as robert");
  alice.send("/msg bob x");
  EXPECT_EQ(alice.next(), "! no one called 'bob' is here (/who lists them)");
  alice.send("/nick bob");  // the old nick is free again
  expect_all({&guest, &alice}, "*** alice is now known as bob");
  guest.expect_quiet();
  alice.expect_quiet();
}

TEST_P(chat_server_test, login_and_idle_deadlines_close_with_a_notice) {
  fd_leak_guard guard;
  server_process s(chat_config(GetParam(), {"--login-timeout", "0.3", "--idle-timeout", "1"}));
  line_peer guest(s.local());
  EXPECT_EQ(guest.next(), "*** welcome to netkit chat");
  EXPECT_EQ(guest.next(),
            "*** choose a nick with /nick NAME within 0.3 s; /help lists the commands");
  EXPECT_EQ(guest.next(), "*** no nick chosen within 0.3 s: disconnecting");
  EXPECT_EQ(guest.next(), "<EOF>");

  auto alice = join(s, "alice", {});
  auto bob = join(s, "bob", {&alice});
  // bob keeps talking (/who is a valid line); alice stays silent and is dropped.
  bool saw_leave = false;
  for (int i = 0; i < 40 && !saw_leave; ++i) {
    bob.send("/who");
    for (;;) {
      auto line = bob.next();
      if (line == "*** alice left (idle for 1 s)") saw_leave = true;
      if (line.starts_with("*** here") || line.starts_with("<")) break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(saw_leave);
  EXPECT_EQ(alice.next(), "*** idle for 1 s: disconnecting");
  EXPECT_EQ(alice.next(), "<EOF>");
}

TEST_P(chat_server_test, sigterm_tells_every_client_flushes_and_exits_0) {
  fd_leak_guard guard;
  server_process s(chat_config(GetParam()));
  auto alice = join(s, "alice", {});
  line_peer guest(s.local());
  guest.skip_motd();
  alice.expect_quiet();  // the server has seen both
  auto status = s.terminate();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0) << status->describe() << "\n" << s.log();
  for (const auto* p : {&alice, &guest}) {
    EXPECT_EQ(p->next(), "*** server stopping: goodbye");
    EXPECT_EQ(p->next(), "<EOF>");
  }
}

// Case 37: a client reset in the middle of a line, while the room is busy.
TEST_P(chat_server_test, reset_mid_line_broadcasts_nothing_of_it) {
  fd_leak_guard guard;
  server_process s(chat_config(GetParam()));
  auto alice = join(s, "alice", {});
  auto bob = join(s, "bob", {&alice});
  constexpr int lines = 200;
  std::string burst;
  for (int i = 0; i < lines; ++i)
    burst += fmt::format("line {}\n", i);
  send_all(alice.fd.get(), burst);
  send_all(bob.fd.get(), "half a li");
  set_reset_on_close(bob.fd.get());
  bob.fd.reset();
  int mine = 0;
  std::string leave;
  while (mine < lines || leave.empty()) {
    auto line = alice.next();
    if (line == fmt::format("<alice> line {}", mine)) {
      ++mine;
    } else if (line.starts_with("*** bob left (")) {
      leave = line;
    } else {
      ADD_FAILURE() << "unexpected line: " << line;
      break;
    }
  }
  EXPECT_TRUE(leave == "*** bob left (connection reset)" ||
              leave == "*** bob left (connection closed)")
      << leave;
  auto carol = join(s, "carol", {&alice});
  carol.send("ok");
  expect_all({&alice, &carol}, "<carol> ok");
}

INSTANTIATE_TEST_SUITE_P(models, chat_server_test, testing::ValuesIn(chat_params()), param_name{});

// --threads on a Unix socket (no SO_REUSEPORT): one acceptor hands members to the loops,
// and a line still reaches every member, whichever loop holds it.
TEST(chat_server_unix, threads_serve_a_unix_socket_through_one_acceptor) {
  fd_leak_guard guard;
  temp_dir dir;
  server_config c = chat_config("epoll/threads=2");
  c.listen = "unix://" + (dir.path / "chat.sock").string();
  server_process s(c);
  EXPECT_TRUE(s.banner().ends_with("threads=2")) << s.banner();
  auto alice = join(s, "alice", {});
  auto bob = join(s, "bob", {&alice});
  auto carol = join(s, "carol", {&alice, &bob});
  bob.send("over unix");
  expect_all({&alice, &bob, &carol}, "<bob> over unix");
}

// The load cases: the default model, and the multi-reactor.
class chat_load_test : public chat_server_test {};

// Every member receives every broadcast exactly once: in one server order on one loop,
// and in each sender's order with --threads (loops are not ordered among themselves).
TEST_P(chat_load_test, thousand_clients_each_receive_every_broadcast_once_in_order) {
  raise_nofile_limit();
  fd_leak_guard guard;
  server_process s(chat_config(GetParam()));
  const std::size_t clients = scaled(1000, 200);
  constexpr std::size_t senders = 10, per_sender = 20, transients = 20;
  chat_crowd crowd(s.local());
  ASSERT_TRUE(crowd.join(clients, stretch(90s))) << "not every client joined";
  for (std::size_t k = 0; k < per_sender; ++k)
    for (std::size_t i = 0; i < senders; ++i)
      crowd.say(i, fmt::format("m {} {}", i, k));
  // Joining and leaving under load: these come and go while the messages flow.
  crowd.connect(transients);
  auto all_arrived = [&] {
    for (std::size_t i = 0; i < clients; ++i)
      if (crowd.at(i).messages.size() < senders * per_sender) return false;
    return true;
  };
  ASSERT_TRUE(crowd.run_until(all_arrived, stretch(60s)));
  ASSERT_TRUE(crowd.run_until(
      [&] {
        for (std::size_t i = clients; i < crowd.size(); ++i)
          if (!crowd.at(i).joined) return false;
        return true;
      },
      stretch(30s)));
  for (std::size_t i = clients; i < crowd.size(); ++i)
    crowd.close(i);
  // Every stable member sees each transient leave.
  auto left_count = [&](std::size_t i) {
    std::size_t n = 0;
    for (const auto& line : crowd.at(i).notices)
      n += line.find(" left (") != std::string::npos ? 1 : 0;
    return n;
  };
  EXPECT_TRUE(crowd.run_until(
      [&] {
        for (std::size_t i = 0; i < clients; ++i)
          if (left_count(i) < transients) return false;
        return true;
      },
      stretch(30s)));
  crowd.run_until([] { return false; }, 100ms);  // anything extra would arrive now

  const bool one_loop = parse_param(GetParam()).threads == 1;
  const auto& first = crowd.at(0).messages;
  for (std::size_t i = 0; i < clients; ++i) {
    const auto& got = crowd.at(i).messages;
    ASSERT_EQ(got.size(), senders * per_sender) << "client " << i;
    if (one_loop) {
      ASSERT_EQ(got, first) << "client " << i << " saw another order";
    }
    std::vector<std::size_t> next(senders, 0);
    for (const auto& line : got) {
      unsigned sender = 0, k = 0;
      ASSERT_EQ(std::sscanf(line.c_str(), "<u%*u> m %u %u", &sender, &k), 2) << line;
      ASSERT_LT(sender, senders);
      ASSERT_EQ(k, next[sender]++) << "client " << i << ": " << line << " out of order";
      ASSERT_EQ(line, fmt::format("<u{}> m {} {}", sender, sender, k));
    }
    EXPECT_EQ(left_count(i), transients) << "client " << i;
  }
}

// Case 35: a member stops reading while the others chat at full speed.
TEST_P(chat_load_test, slow_consumer_is_cut_off_and_server_memory_stays_bounded) {
  fd_leak_guard guard;
  server_process s(chat_config(GetParam(), {"--max-output", "65536"}));
  const std::size_t talkers = scaled(50, 10);
  chat_crowd crowd(s.local());
  ASSERT_TRUE(crowd.join(talkers, stretch(30s)));

  // The sloth: a small receive window (set before connect, so the server sees it), joins,
  // then never reads again.
  unique_fd sloth(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int small = 4096;
  ASSERT_EQ(::setsockopt(sloth.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  ASSERT_EQ(::connect(sloth.get(), s.local().addr(), s.local().length()), 0);
  send_all(sloth.get(), "/nick sloth\n");
  ASSERT_TRUE(crowd.run_until(
      [&] {
        for (std::size_t i = 0; i < talkers; ++i)
          if (crowd.at(i).notices.empty() || crowd.at(i).notices.back() != "*** sloth joined")
            return false;
        return true;
      },
      stretch(10s)));
  const long rss_before = s.sample().rss_kib;

  // Every talker keeps 2 messages of ~200 bytes in flight (sends the next when one of its
  // own comes back) for 3 s; the latency of each is measured from its send. The bound on
  // it is a no-stall check (a server that waited on the sloth would stall the room for
  // good), loose because this machine's load decides the queueing; the figures are
  // printed.
  const std::string filler(180, 'f');
  using namespace std::chrono;
  std::vector<clock::time_point> sent_at;  // by message number
  std::chrono::nanoseconds worst{0};
  std::size_t delivered = 0;
  bool sending = true;
  auto send_one = [&](std::size_t i) {
    crowd.say(i, fmt::format("{} {}", sent_at.size(), filler));
    sent_at.push_back(clock::now());
  };
  for (std::size_t i = 0; i < talkers; ++i) {
    crowd.at(i).on_line = [&, i](chat_crowd::member& m, const std::string& line) {
      if (!line.starts_with("<")) return;
      ++delivered;
      std::size_t n = 0;
      if (std::sscanf(line.c_str(), "<%*s %zu", &n) != 1 || n >= sent_at.size()) return;
      worst = std::max(worst, clock::now() - sent_at[n]);
      if (sending && line.starts_with(fmt::format("<{}> ", m.nick))) send_one(i);
      m.messages.clear();  // bounded memory here too
    };
    for (int k = 0; k < 2; ++k)
      send_one(i);
  }
  std::string cut = "*** sloth left (disconnected: not reading, over 65536 bytes of output queued)";
  auto saw_cut = [&] {
    for (std::size_t i = 0; i < talkers; ++i) {
      const auto& n = crowd.at(i).notices;
      if (std::find(n.begin(), n.end(), cut) == n.end()) return false;
    }
    return true;
  };
  auto start = clock::now();
  crowd.run_until([&] { return clock::now() - start > 3s; }, stretch(10s));
  sending = false;
  EXPECT_TRUE(crowd.run_until(saw_cut, stretch(10s)))
      << delivered
      << " delivered in 3 s; sloth not cut off; last notice: " << crowd.at(0).notices.back() << "\n"
      << s.log();
  const long rss_after = s.sample().rss_kib;
  // Bound: the cap (64 KiB) plus allocator slack, 4 MiB on one loop; with --threads each
  // loop thread has its own malloc arena that keeps its freed memory, 16 MiB. An unbounded
  // queue for the sloth would grow by every message of 3 s (about 1 MiB/s here, the
  // kernel's share fixed by the 64 KiB SO_SNDBUF) and never shrink. Sanitizer builds get
  // 64 MiB: ASan's shadow memory and its (small, see chat_config) quarantine.
  const long bound_kib = sanitized_build                       ? 64 * 1024
                         : parse_param(GetParam()).threads > 1 ? 16 * 1024
                                                               : 4 * 1024;
  EXPECT_LT(rss_after - rss_before, bound_kib)
      << "RSS " << rss_before << " -> " << rss_after << " KiB";
  EXPECT_GT(delivered, talkers * 100) << "the others did not chat at full speed";
  EXPECT_LT(worst, stretch(5s)) << "the others' delivery stalled";
  std::printf("delivered %zu, worst latency %lld us, RSS %ld -> %ld KiB\n", delivered,
              static_cast<long long>(duration_cast<microseconds>(worst).count()), rss_before,
              rss_after);
  RecordProperty("delivered", static_cast<int>(delivered));
  RecordProperty("worst_latency_us", static_cast<int>(duration_cast<microseconds>(worst).count()));
  RecordProperty("rss_growth_kib", static_cast<int>(rss_after - rss_before));
  // The sloth's connection is gone (reset, since its unread data was discarded, or EOF).
  auto end = wait_for_close(sloth.get(), deadline_after(stretch(10s)));
  EXPECT_NE(end.end, read_end::timeout);
}

// Case 36: slowloris connections are closed at the login deadline; legitimate clients can
// still join throughout.
TEST_P(chat_load_test, slowloris_connections_are_closed_while_others_join) {
  raise_nofile_limit();
  fd_leak_guard guard;
  server_process s(chat_config(GetParam(), {"--login-timeout", "1"}));
  const std::size_t loris = scaled(1000, 200);
  std::vector<unique_fd> fds;
  for (std::size_t i = 0; i < loris; ++i) {
    fds.push_back(start_client(s.local()));
  }
  std::vector<pollfd> pfds;
  for (auto& fd : fds)
    pfds.push_back({fd.get(), POLLOUT, 0});
  // Half silent, half one byte and no newline.
  auto connected_until = deadline_after(stretch(20s));
  std::size_t pending = loris;
  std::vector<bool> started(loris, false);
  while (pending > 0 && clock::now() < connected_until) {
    ::poll(pfds.data(), pfds.size(), 100);
    for (std::size_t i = 0; i < loris; ++i) {
      if (started[i] || !(pfds[i].revents & POLLOUT)) continue;
      started[i] = true;
      --pending;
      pfds[i].events = POLLIN;
      if (i % 2 == 1) {
        ASSERT_EQ(::send(fds[i].get(), "x", 1, MSG_NOSIGNAL), 1);
      }
    }
  }
  ASSERT_EQ(pending, 0u) << "connects did not complete";
  // Legitimate clients join and talk while the slowloris connections sit there.
  std::vector<line_peer> members;
  std::vector<std::string> nicks;
  for (int k = 0; k < 5; ++k) {
    std::vector<const line_peer*> present;
    for (auto& m : members)
      present.push_back(&m);
    members.push_back(join(s, fmt::format("legit{}", k), present));
    members.back().send("hi");
    for (auto& m : members)
      EXPECT_EQ(m.next(), fmt::format("<legit{}> hi", k));
    std::this_thread::sleep_for(150ms);
  }
  // Every slowloris connection ends (after its notice) within the deadline plus slack.
  std::size_t closed = 0;
  std::vector<bool> done(loris, false);
  auto until = deadline_after(stretch(15s));
  char buf[4096];
  while (closed < loris && clock::now() < until) {
    for (auto& p : pfds)
      p.revents = 0;
    ::poll(pfds.data(), pfds.size(), 100);
    for (std::size_t i = 0; i < loris; ++i) {
      if (done[i] || !(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::recv(fds[i].get(), buf, sizeof buf, 0);
      if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
        done[i] = true;
        pfds[i].fd = -1;
        ++closed;
      }
    }
  }
  EXPECT_EQ(closed, loris);
  for (auto& m : members)
    m.expect_quiet();  // the members are still served
}

INSTANTIATE_TEST_SUITE_P(load, chat_load_test, testing::Values("epoll", "epoll/threads=2"),
                         param_name{});

}  // namespace
}  // namespace netkit::test
