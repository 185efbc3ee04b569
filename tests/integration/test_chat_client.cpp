// `netkit chat`, the terminal client, against a real `netkit chat-server`:
//  - on a pseudo-terminal: a message that arrives while a line is half typed appears above
//    it and the half line is redrawn, the line then sent is exactly what was typed;
//    timestamps and colours are shown; Ctrl-C ends it with status 0 and the terminal back
//    in canonical mode with echo;
//  - with pipes: plain lines, EOF sends /quit and every reply up to "*** bye" is printed;
//  - --reconnect: the server restarts on the same address and the client comes back (nick
//    sent again); without it, a lost server is status 1 with a clear message.
#include <termios.h>

#include <cctype>
#include <string_view>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/child_process.hpp"
#include "support/client_io.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/pty_process.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

server_config chat_server(std::string listen = "tcp://127.0.0.1:0") {
  server_config c;
  c.command = "chat-server";
  c.listen = std::move(listen);
  return c;
}

// A second member, nc-style.
struct peer {
  unique_fd fd;
  explicit peer(const endpoint& ep, const std::string& nick) : fd(connect_client(ep)) {
    send_all(fd.get(), fmt::format("/nick {}\n", nick));
  }
  // The next line that starts with `prefix` (others skipped), or "" at the deadline.
  std::string next_starting(std::string_view prefix) const {
    for (int i = 0; i < 50; ++i) {
      auto r = read_line(fd.get(), deadline_after(stretch(5s)));
      if (r.end != read_end::data) return "";
      auto t = r.text();
      t.pop_back();
      if (t.starts_with(prefix)) return t;
    }
    return "";
  }
};

// "\x1b[2mHH:MM:SS"
bool is_dim_timestamp(std::string_view s) {
  if (!s.starts_with("\x1b[2m") || s.size() != 12) return false;
  s.remove_prefix(4);
  for (std::size_t i = 0; i < 8; ++i)
    if (i % 3 == 2 ? s[i] != ':' : !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

child_options piped_client(const std::string& uri, std::vector<std::string> extra = {}) {
  child_options o;
  o.argv = {netkit_cli(), "chat", "--connect", uri, "--nick", "bob"};
  o.argv.insert(o.argv.end(), extra.begin(), extra.end());
  o.stdin_from = child_options::input::pipe;
  return o;
}

TEST(chat_client, typing_while_receiving_keeps_the_line_and_redraws_it) {
  server_process s(chat_server());
  pty_process alice({netkit_cli(), "chat", "--connect", s.uri(), "--nick", "alice"},
                    {"TERM=xterm"});
  // Notices in cyan after a dimmed HH:MM:SS, then the prompt redrawn (waited for whole:
  // the prompt may come in a later read than the notice).
  const std::string joined = "\x1b[0m \x1b[36m*** alice joined\x1b[0m\nalice> ";
  ASSERT_TRUE(alice.wait_for(joined, deadline_after(stretch(10s)))) << alice.screen();
  auto at = alice.screen().find(joined);
  ASSERT_NE(at, std::string::npos) << alice.screen();
  ASSERT_GE(at, 12u);
  EXPECT_TRUE(is_dim_timestamp(alice.screen().substr(at - 12, 12))) << alice.screen();
  peer bob(s.local(), "bob");
  ASSERT_TRUE(alice.wait_for("*** bob joined", deadline_after(stretch(5s)))) << alice.screen();
  // Where the screen stands before typing: screen() reads what has arrived, so a position
  // taken after type() may already be past the echoed keys.
  const auto typing_from = alice.screen().size();
  alice.type("hel");
  ASSERT_TRUE(alice.wait_for("hel", deadline_after(stretch(5s)), typing_from)) << alice.screen();
  ASSERT_TRUE(alice.wait_for("alice> hel", deadline_after(stretch(5s)),
                             typing_from - std::min<std::size_t>(typing_from, 7)))
      << alice.screen();
  auto before = alice.screen().size();
  send_all(bob.fd.get(), "hi alice\n");
  // The half line is cleared, the message printed, then prompt and half line redrawn.
  ASSERT_TRUE(alice.wait_for("<bob> hi alice\nalice> hel", deadline_after(stretch(5s)), before))
      << alice.screen().substr(before);
  EXPECT_NE(alice.screen().find("\x1b[K", before), std::string::npos);
  alice.type("lo\r");
  EXPECT_EQ(bob.next_starting("<alice>"), "<alice> hello");  // exactly what was typed
  ASSERT_TRUE(alice.wait_for("<alice> hello\nalice> ", deadline_after(stretch(5s)), before));
  // A second line right after: the editor is still live (not stuck in a blocking read).
  send_all(bob.fd.get(), "and again\n");
  ASSERT_TRUE(alice.wait_for("<bob> and again\nalice> ", deadline_after(stretch(5s)), before));
  alice.type("ok\r");
  EXPECT_EQ(bob.next_starting("<alice>"), "<alice> ok");

  alice.type("\x03");  // Ctrl-C
  auto end = alice.wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->code, 0) << end->describe();
  // Ctrl-C leaves at once: a line the client had not read yet (its own "<alice> ok" may
  // still be on the way) turns its close into an RST, which the server names as such.
  const auto left = bob.next_starting("*** alice left");
  EXPECT_TRUE(left == "*** alice left (connection closed)" ||
              left == "*** alice left (connection reset)")
      << left;
}

TEST(chat_client, the_terminal_is_restored_on_exit) {
  server_process s(chat_server());
  pty_process alice({netkit_cli(), "chat", "--connect", s.uri(), "--nick", "alice"},
                    {"TERM=xterm"});
  ASSERT_TRUE(alice.wait_for("*** alice joined", deadline_after(stretch(10s))));
  alice.type("/quit\r");
  auto end = alice.wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->code, 0);
  EXPECT_NE(alice.screen().find("*** bye"), std::string::npos);
  termios t{};
  ASSERT_EQ(::tcgetattr(alice.master(), &t), 0);
  EXPECT_TRUE(t.c_lflag & ICANON);
  EXPECT_TRUE(t.c_lflag & ECHO);
}

TEST(chat_client, plain_lines_when_piped_and_eof_quits_after_the_replies) {
  fd_leak_guard guard;
  server_process s(chat_server());
  child_process bob(piped_client(s.uri()));
  bob.write_stdin("hello\n/who\n/bogus\n");
  bob.close_stdin();
  std::vector<std::string> lines;
  while (auto line = bob.read_line(deadline_after(stretch(5s))))
    lines.push_back(*line);
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "*** welcome to netkit chat",
                       "*** choose a nick with /nick NAME within 30 s; /help lists the commands",
                       "*** bob joined", "<bob> hello", "*** here (1): bob",
                       "! unknown command /bogus: /help lists the commands", "*** bye"}));
  auto end = bob.wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->code, 0) << bob.stderr_text();
}

TEST(chat_client, reconnects_after_the_server_restarts) {
  fd_leak_guard guard;
  std::optional<server_process> s(chat_server());
  const std::string uri = s->uri();
  child_process bob(piped_client(uri, {"--reconnect"}));
  auto expect_line = [&](const std::string& want) {
    auto line = bob.read_line(deadline_after(stretch(10s)));
    EXPECT_EQ(line.value_or("<none>"), want) << bob.stderr_text();
  };
  expect_line("*** welcome to netkit chat");
  bob.read_line(deadline_after(stretch(5s)));
  expect_line("*** bob joined");
  ASSERT_EQ(s->terminate()->code, 0);
  s.reset();
  expect_line("*** server stopping: goodbye");
  expect_line("-- connection lost (server closed the connection); reconnecting");
  s.emplace(chat_server(uri));  // the same address again
  expect_line(fmt::format("-- reconnected to {}", uri));
  expect_line("*** welcome to netkit chat");
  bob.read_line(deadline_after(stretch(5s)));
  expect_line("*** bob joined");  // the nick sent again
  bob.write_stdin("back\n");
  expect_line("<bob> back");
  bob.close_stdin();
  expect_line("*** bye");
  auto end = bob.wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->code, 0);
}

TEST(chat_client, a_lost_server_without_reconnect_is_status_1) {
  fd_leak_guard guard;
  std::optional<server_process> s(chat_server());
  const std::string uri = s->uri();
  child_process bob(piped_client(uri));
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(bob.read_line(deadline_after(stretch(10s))));
  s.reset();  // SIGTERM, or killed: either way the connection ends
  auto end = bob.wait(deadline_after(stretch(10s)));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->code, 1);
  EXPECT_NE(bob.stderr_text().find(fmt::format("netkit: chat: connection to {} lost", uri)),
            std::string::npos)
      << bob.stderr_text();
}

TEST(chat_client, a_refused_connect_is_status_1_naming_the_address) {
  fd_leak_guard guard;
  child_process c(piped_client("unix:///nonexistent/chat.sock"));
  auto end = c.wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->code, 1);
  EXPECT_NE(c.stderr_text().find("connect unix:///nonexistent/chat.sock"), std::string::npos)
      << c.stderr_text();
}

}  // namespace
}  // namespace netkit::test
