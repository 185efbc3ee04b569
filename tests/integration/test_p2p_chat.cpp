// `netkit p2p-chat`, both sides on pseudo-terminals as two users run it: the exact text each
// side sees, and in every way of leaving (EOF, /quit, Ctrl-C, a peer process killed with
// SIGKILL) every one of the four processes ends promptly with the documented status. This
// test process is a child subreaper, so a helper orphaned by its parent would become our
// child: ending with no child at all (waitpid ECHILD) proves there was no orphan and no
// zombie. Also: stdin and stdout as pipes (scripted use), with framing intact.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/backend_params.hpp"
#include "support/child_process.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/pty_process.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

const std::string hint = "(type a line to send it; /quit, Ctrl-D or Ctrl-C to leave)";

// No child left at all: every process this test started, and any orphan reparented to us,
// has been reaped.
void expect_no_children() {
  int st = 0;
  pid_t r = ::waitpid(-1, &st, WNOHANG);
  EXPECT_EQ(r, -1) << "an unreaped or orphaned process is left: " << r;
  EXPECT_EQ(errno, ECHILD);
}

class p2p_chat_test : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    a.emplace(std::vector<std::string>{netkit_cli(), "p2p-chat", "--listen", "tcp://127.0.0.1:0"});
    ASSERT_TRUE(a->wait_for("\n", deadline_after(stretch(10s)))) << a->screen();
    auto first = a->screen().substr(0, a->screen().find('\n'));
    ASSERT_TRUE(first.starts_with("listening on ")) << first;
    uri = first.substr(std::string_view("listening on ").size());
    b.emplace(std::vector<std::string>{netkit_cli(), "p2p-chat", "--connect", uri});
    ASSERT_TRUE(b->wait_for(hint, deadline_after(stretch(10s)))) << b->screen();
    ASSERT_TRUE(a->wait_for(hint, deadline_after(stretch(10s)))) << a->screen();
    a_child = helper_of(*a);
    b_child = helper_of(*b);
    ASSERT_GT(a_child, 0);
    ASSERT_GT(b_child, 0);
    a_banner = a->screen();
    b_banner = b->screen();
    EXPECT_EQ(b_banner, fmt::format("connected to {} {}\n", uri, hint));
    EXPECT_TRUE(
        a_banner.starts_with(fmt::format("listening on {}\nconnected: tcp://127.0.0.1:", uri)));
    EXPECT_TRUE(a_banner.ends_with(fmt::format(" {}\n", hint))) << a_banner;
  }

  // The receiving child of a side (it forks once connected).
  static pid_t helper_of(pty_process& p) {
    for (int i = 0; i < 500; ++i) {
      auto kids = p.children();
      if (!kids.empty()) return kids.front();
      std::this_thread::sleep_for(2ms);
    }
    return -1;
  }

  // Both users say something; each screen shows the typed line (terminal echo) and the
  // other's message.
  void converse() {
    a->type("hello\r");
    ASSERT_TRUE(b->wait_for("peer: hello\n", deadline_after(stretch(5s)))) << b->screen();
    b->type("hi there\r");
    ASSERT_TRUE(a->wait_for("peer: hi there\n", deadline_after(stretch(5s)))) << a->screen();
    EXPECT_EQ(a->screen(), a_banner + "hello\npeer: hi there\n");
    EXPECT_EQ(b->screen(), b_banner + "peer: hello\nhi there\n");
  }

  // `quitter` left; the other side says so; both end with status 0, helpers included.
  void expect_clean_end(pty_process& quitter, pty_process& other) {
    auto q = quitter.wait(deadline_after(stretch(5s)));
    auto o = other.wait(deadline_after(stretch(5s)));
    ASSERT_TRUE(q) << "the quitting side did not end: " << quitter.screen();
    ASSERT_TRUE(o) << "the other side did not end: " << other.screen();
    EXPECT_EQ(q->code, 0) << q->describe() << quitter.screen();
    EXPECT_EQ(o->code, 0) << o->describe() << other.screen();
    EXPECT_TRUE(other.screen().ends_with("*** peer left\n")) << other.screen();
    EXPECT_FALSE(process_exists(a_child));
    EXPECT_FALSE(process_exists(b_child));
    expect_no_children();
  }

  std::optional<pty_process> a, b;
  std::string uri, a_banner, b_banner;
  pid_t a_child = -1, b_child = -1;
};

TEST_F(p2p_chat_test, eof_on_stdin_ends_both_sides) {
  converse();
  a->type("\x04");  // Ctrl-D at the start of a line: EOF
  expect_clean_end(*a, *b);
  EXPECT_EQ(a->screen(), a_banner + "hello\npeer: hi there\n");
  EXPECT_EQ(b->screen(), b_banner + "peer: hello\nhi there\n*** peer left\n");
}

TEST_F(p2p_chat_test, slash_quit_ends_both_sides) {
  converse();
  b->type("/quit\r");
  expect_clean_end(*b, *a);
  EXPECT_EQ(b->screen(), b_banner + "peer: hello\nhi there\n/quit\n");
  EXPECT_EQ(a->screen(), a_banner + "hello\npeer: hi there\n*** peer left\n");
}

TEST_F(p2p_chat_test, ctrl_c_ends_both_sides_with_status_0) {
  converse();
  a->type("\x03");  // SIGINT to a's foreground group: both of its processes
  expect_clean_end(*a, *b);
  EXPECT_EQ(a->screen(), a_banner + "hello\npeer: hi there\n^C");
  EXPECT_EQ(b->screen(), b_banner + "peer: hello\nhi there\n*** peer left\n");
}

// SIGTERM to a side's whole process group (kill -TERM -PGID, a session ending): a quit like
// Ctrl-C, status 0 for both of its processes, and the other side is told.
TEST_F(p2p_chat_test, sigterm_to_the_process_group_ends_both_sides_with_status_0) {
  converse();
  ASSERT_EQ(::kill(-a->pid(), SIGTERM), 0);  // a is its session's and group's leader
  expect_clean_end(*a, *b);
  EXPECT_EQ(a->screen(), a_banner + "hello\npeer: hi there\n");
  EXPECT_EQ(b->screen(), b_banner + "peer: hello\nhi there\n*** peer left\n");
}

// SIGTERM to the receiving process alone: it stops, its parent follows with status 0.
TEST_F(p2p_chat_test, sigterm_to_the_receiver_alone_ends_that_side_with_status_0) {
  converse();
  ASSERT_EQ(::kill(a_child, SIGTERM), 0);
  expect_clean_end(*a, *b);
  EXPECT_EQ(b->screen(), b_banner + "peer: hello\nhi there\n*** peer left\n");
}

TEST_F(p2p_chat_test, peer_parent_killed_with_sigkill) {
  converse();
  ASSERT_EQ(::kill(b->pid(), SIGKILL), 0);
  auto killed = b->wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(killed);
  EXPECT_EQ(killed->signal, SIGKILL);
  // b's helper, orphaned, sees its pipe close and exits at once (reparented to us, the
  // subreaper, so we reap it here). The session leader's death also hangs up b's terminal,
  // whose SIGHUP may end the helper first: either way it is gone at once.
  int st = 0;
  auto until = deadline_after(stretch(5s));
  pid_t r = 0;
  while ((r = ::waitpid(b_child, &st, WNOHANG)) == 0 && clock::now() < until)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(r, b_child) << "b's helper did not exit after its parent was killed";
  EXPECT_TRUE((WIFEXITED(st) && WEXITSTATUS(st) == 0) ||
              (WIFSIGNALED(st) && WTERMSIG(st) == SIGHUP))
      << "status " << st;
  auto o = a->wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(o) << a->screen();
  EXPECT_EQ(o->code, 0);
  EXPECT_EQ(a->screen(), a_banner + "hello\npeer: hi there\n*** peer left\n");
  EXPECT_FALSE(process_exists(a_child));
  expect_no_children();
}

TEST_F(p2p_chat_test, peer_helper_killed_with_sigkill) {
  converse();
  ASSERT_EQ(::kill(b_child, SIGKILL), 0);
  auto b_end = b->wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(b_end) << b->screen();
  EXPECT_EQ(b_end->code, 1);
  EXPECT_EQ(b->screen(), b_banner + "peer: hello\nhi there\n" +
                             "netkit: p2p-chat: the receiving process was killed by signal 9 "
                             "(Killed)\n");
  auto o = a->wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(o) << a->screen();
  EXPECT_EQ(o->code, 0);
  EXPECT_EQ(a->screen(), a_banner + "hello\npeer: hi there\n*** peer left\n");
  EXPECT_FALSE(process_exists(a_child));
  EXPECT_FALSE(process_exists(b_child));
  expect_no_children();
}

// Scripted: stdin and stdout are pipes; a burst of messages of many sizes, written at once,
// arrives as exactly those messages. Over TCP and over a Unix socket (whose file is gone
// once the peer is in).
class p2p_chat_pipes : public testing::TestWithParam<std::string> {};

TEST_P(p2p_chat_pipes, scripted_with_pipes_and_framing_intact) {
  fd_leak_guard guard;
  std::string dir = (std::filesystem::temp_directory_path() / "netkit-p2p-XXXXXX").string();
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string socket_path = dir + "/p2p.sock";
  child_options lo;
  lo.argv = {netkit_cli(), "p2p-chat", "--listen",
             GetParam() == "tcp" ? "tcp://127.0.0.1:0" : "unix://" + socket_path};
  lo.stdin_from = child_options::input::pipe;
  child_process a(lo);
  auto first = a.read_line(deadline_after(stretch(10s)));
  ASSERT_TRUE(first && first->starts_with("listening on ")) << a.stderr_text();
  child_options co;
  co.argv = {netkit_cli(), "p2p-chat", "--connect",
             first->substr(std::string_view("listening on ").size())};
  co.stdin_from = child_options::input::pipe;
  child_process b(co);
  ASSERT_TRUE(b.read_line(deadline_after(stretch(10s))));  // "connected to ..."
  ASSERT_TRUE(a.read_line(deadline_after(stretch(10s))));  // "connected: ..."
  std::string burst;
  std::vector<std::string> sent;
  for (int i = 0; i < 200; ++i) {
    sent.push_back(
        fmt::format("{} {}", i, std::string(static_cast<std::size_t>(i * 97 % 5000), 'm')));
    burst += sent.back() + "\n";
  }
  // Written while b's output is read: the burst is more than the pipes and a Unix
  // socket's buffer hold together.
  std::thread writer([&] { a.write_stdin(burst); });
  struct joiner {
    std::thread& t;
    ~joiner() { t.join(); }
  } join_writer{writer};
  for (const auto& m : sent) {
    auto line = b.read_line(deadline_after(stretch(10s)));
    ASSERT_TRUE(line);
    ASSERT_EQ(*line, "peer: " + m);
  }
  b.write_stdin("/quit\n");
  auto b_end = b.wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(b_end);
  EXPECT_EQ(b_end->code, 0);
  EXPECT_EQ(a.read_line(deadline_after(stretch(5s))), "*** peer left");
  auto a_end = a.wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(a_end);
  EXPECT_EQ(a_end->code, 0) << a.stderr_text();
  EXPECT_FALSE(std::filesystem::exists(socket_path));
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(transports, p2p_chat_pipes, testing::Values("tcp", "unix"), param_name{});

TEST(p2p_chat_errors, refused_connect_names_the_address_and_exits_1) {
  fd_leak_guard guard;
  child_options co;
  co.argv = {netkit_cli(), "p2p-chat", "--connect", "unix:///nonexistent/p2p.sock"};
  child_process c(co);
  auto end = c.wait(deadline_after(stretch(5s)));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->code, 1);
  EXPECT_NE(c.stderr_text().find("unix:///nonexistent/p2p.sock"), std::string::npos)
      << c.stderr_text();
  EXPECT_NE(c.stderr_text().find("(ENOENT)"), std::string::npos) << c.stderr_text();
}

}  // namespace
}  // namespace netkit::test
