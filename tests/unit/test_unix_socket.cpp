// Unix-domain sockets: path limits, stale files, modes, abstract names, credentials,
// socketpair, and the full-backlog behaviour (reliability cases 29-32).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "netkit/message.hpp"
#include "netkit/process.hpp"
#include "netkit/socket.hpp"
#include "netkit/unix_socket.hpp"
#include "support/fd_leak_guard.hpp"

namespace netkit {
namespace {

using namespace std::chrono_literals;

constexpr uid_t nobody = 65534;

class temp_dir {
 public:
  temp_dir() {
    char tmpl[] = "/tmp/netkit-unix-XXXXXX";
    if (!::mkdtemp(tmpl)) throw_sys_error("mkdtemp");
    path_ = tmpl;
  }
  ~temp_dir() {
    for (auto& f : files_)
      ::unlink((path_ + "/" + f).c_str());
    ::rmdir(path_.c_str());
  }
  std::string file(const std::string& name) {
    files_.push_back(name);
    return path_ + "/" + name;
  }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Runs fn in a forked child and returns its exit code (fn's return value); always reaps.
template <typename Fn>
int in_child(Fn&& fn) {
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = fn();
    } catch (...) {
    }
    ::_exit(rc);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string unique_name() {
  std::random_device rd;
  return "netkit-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
}

// Case 29: 108 bytes or more never fit; rejected before any bind/connect, never truncated.
TEST(UnixSocket, LongPathRejectedNeverTruncated) {
  std::string base = "/tmp/" + std::string(200, 'x');
  std::string p107 = base.substr(0, 107);
  EXPECT_NO_THROW(endpoint::unix_path(transport::unix_stream, p107));
  for (std::size_t len : {108u, 109u, 200u}) {
    try {
      endpoint::parse("unix://" + base.substr(0, len));
      ADD_FAILURE() << len << " bytes accepted";
    } catch (const sys_error& e) {
      EXPECT_EQ(e.errno_value(), ENAMETOOLONG);
      EXPECT_NE(std::string(e.what()).find(std::to_string(len) + " bytes"), std::string::npos)
          << e.what();
    }
  }
  // Two paths that would be equal if cut at 107 bytes: both rejected, so never confused.
  auto a = base.substr(0, 107) + "A", b = base.substr(0, 107) + "B";
  EXPECT_THROW(endpoint::parse("unix://" + a), sys_error);
  EXPECT_THROW(endpoint::parse("unix-dgram://" + b), sys_error);
  EXPECT_THROW(endpoint::parse("unix://@" + std::string(108, 'n')), sys_error);
}

// Case 30: the socket of a SIGKILLed server is stale; restart reclaims it.
TEST(UnixSocket, StaleSocketFromKilledServerIsReplaced) {
  test::fd_leak_guard guard;
  temp_dir dir;
  for (auto scheme : {"unix://", "unix-dgram://"}) {
    auto path = dir.file(std::string(scheme) == "unix://" ? "stream.sock" : "dgram.sock");
    auto ep = endpoint::parse(scheme + path);
    int pipefd[2];
    ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      auto l = listen_on(ep, io_mode::blocking);
      char c = 'r';
      [[maybe_unused]] auto n = ::write(pipefd[1], &c, 1);
      ::pause();
      ::_exit(0);
    }
    ::close(pipefd[1]);
    char c;
    ASSERT_EQ(::read(pipefd[0], &c, 1), 1);
    ::close(pipefd[0]);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ASSERT_TRUE(exists(path)) << "a killed server leaves its socket file";
    auto l = listen_unix(ep, io_mode::blocking);
    ASSERT_TRUE(l.fd.valid());
    auto client = connect_to(ep);  // the new one serves (stream) / accepts datagrams
    EXPECT_TRUE(client.valid());
  }
}

TEST(UnixSocket, LiveServerIsNeverStolen) {
  test::fd_leak_guard guard;
  temp_dir dir;
  auto path = dir.file("live.sock");
  auto ep = endpoint::parse("unix://" + path);
  auto first = listen_unix(ep, io_mode::blocking);
  try {
    listen_on(ep, io_mode::blocking);
    FAIL() << "second server bound a live server's path";
  } catch (const sys_error& e) {
    EXPECT_EQ(e.errno_value(), EADDRINUSE);
    std::string what = e.what();
    EXPECT_NE(what.find("address in use"), std::string::npos) << what;
    EXPECT_NE(what.find(path), std::string::npos) << what;
  }
  // The first server still has its file and still serves.
  auto c = connect_to(ep);
  unique_fd accepted(::accept4(first.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(accepted.valid());
}

TEST(UnixSocket, LiveServerWithFullBacklogIsNeverStolen) {
  test::fd_leak_guard guard;
  temp_dir dir;
  auto ep = endpoint::parse("unix://" + dir.file("busy.sock"));
  listen_options lo;
  lo.backlog = 0;
  auto first = listen_unix(ep, io_mode::blocking, lo);
  std::vector<unique_fd> clients;
  for (int i = 0; i < 8; ++i) {  // fills the backlog; later ones get EAGAIN
    unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    [[maybe_unused]] int rc = ::connect(s.get(), ep.addr(), ep.length());
    clients.push_back(std::move(s));
  }
  EXPECT_THROW(listen_on(ep, io_mode::blocking), sys_error);
}

TEST(UnixSocket, RegularFileAtPathIsNeverRemoved) {
  test::fd_leak_guard guard;
  temp_dir dir;
  auto path = dir.file("data.txt");
  { std::ofstream(path) << "precious"; }
  try {
    listen_on(endpoint::parse("unix://" + path), io_mode::blocking);
    FAIL() << "bound over a regular file";
  } catch (const sys_error& e) {
    EXPECT_EQ(e.errno_value(), EADDRINUSE);
    EXPECT_NE(std::string(e.what()).find("regular file"), std::string::npos) << e.what();
  }
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST(UnixSocket, SocketFileRemovedOnCleanExitButNotASuccessors) {
  test::fd_leak_guard guard;
  temp_dir dir;
  auto path = dir.file("s.sock");
  auto ep = endpoint::parse("unix://" + path);
  {
    auto l = listen_unix(ep, io_mode::blocking);
    EXPECT_TRUE(exists(path));
  }
  EXPECT_FALSE(exists(path));
  // A guard whose file was replaced by another server's leaves the new file alone.
  auto old_listener = listen_unix(ep, io_mode::blocking);
  ::unlink(path.c_str());
  auto successor = listen_unix(ep, io_mode::blocking);
  old_listener.file.remove();
  EXPECT_TRUE(exists(path));
}

// Case 31: the mode is right at the moment the file appears (checked between bind and
// listen), and another uid cannot connect.
TEST(UnixSocket, ModeIsTightFromBindAndOtherUidIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to uid 65534";
  test::fd_leak_guard guard;
  temp_dir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0711),
            0);  // others may traverse, so the socket's own mode decides
  auto path = dir.file("private.sock");
  auto ep = endpoint::parse("unix://" + path);
  mode_t old_umask = ::umask(0);  // the mode must not depend on a lenient umask
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  bind_unix(fd.get(), ep, 0600);
  ::umask(old_umask);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::listen(fd.get(), 8), 0);
  unix_socket_file cleanup(ep);

  auto connect_as_nobody = [&] {
    return in_child([&] {
      if (::setgid(nobody) != 0 || ::setuid(nobody) != 0) return 98;
      unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (::connect(s.get(), ep.addr(), ep.length()) == 0) return 0;
      return errno == EACCES ? 13 : 97;
    });
  };
  EXPECT_EQ(connect_as_nobody(), 13) << "uid 65534 must get EACCES";
  // Control: the same child connects once the mode allows it, so EACCES came from the mode.
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  EXPECT_EQ(connect_as_nobody(), 0);
  unique_fd pending(::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
}

TEST(UnixSocket, ListenOnAppliesModeForDatagramToo) {
  test::fd_leak_guard guard;
  temp_dir dir;
  auto path = dir.file("d.sock");
  listen_options lo;
  lo.unix_mode = 0660;
  auto l = listen_unix(endpoint::parse("unix-dgram://" + path), io_mode::blocking, lo);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

// Case 32: abstract names have no file; a wrong uid is told apart by SO_PEERCRED; a taken
// name is a live owner.
TEST(UnixSocket, AbstractNameCredentialsAndAddressInUse) {
  test::fd_leak_guard guard;
  auto name = unique_name();
  auto ep = endpoint::parse("unix://@" + name);
  auto l = listen_unix(ep, io_mode::blocking);
  EXPECT_FALSE(l.file.owns_file());
  EXPECT_FALSE(exists(name));
  EXPECT_FALSE(exists("@" + name));
  {
    std::ifstream net("/proc/net/unix");
    std::string all((std::istreambuf_iterator<char>(net)), std::istreambuf_iterator<char>());
    EXPECT_NE(all.find("@" + name), std::string::npos);
  }
  try {
    listen_on(ep, io_mode::blocking);
    FAIL() << "abstract name bound twice";
  } catch (const sys_error& e) {
    EXPECT_EQ(e.errno_value(), EADDRINUSE);
    EXPECT_NE(std::string(e.what()).find("live owner"), std::string::npos) << e.what();
  }

  if (::geteuid() == 0) {
    // A peer running as another uid connects (abstract sockets have no permissions);
    // the server sees its uid and rejects it by closing; the child sees EOF.
    int rc = 0;
    std::fflush(stdout);
    pid_t pid = ::fork();
    if (pid == 0) {
      if (::setgid(nobody) != 0 || ::setuid(nobody) != 0) ::_exit(98);
      unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (::connect(s.get(), ep.addr(), ep.length()) != 0) ::_exit(97);
      char c;
      ::_exit(::read(s.get(), &c, 1) == 0 ? 0 : 96);
    }
    unique_fd peer(::accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(peer.valid());
    auto cred = peer_credentials_of(peer.get());
    EXPECT_EQ(cred.uid, nobody);
    EXPECT_EQ(cred.pid, pid);
    if (cred.uid != ::getuid()) peer.reset();  // rejected
    int status = 0;
    ::waitpid(pid, &status, 0);
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    EXPECT_EQ(rc, 0) << "the rejected peer should see EOF";
  }
}

TEST(UnixSocket, PeerCredentialsOfSocketPair) {
  test::fd_leak_guard guard;
  auto [a, b] = make_socket_pair();
  auto cred = peer_credentials_of(a.get());
  EXPECT_EQ(cred.pid, ::getpid());
  EXPECT_EQ(cred.uid, ::getuid());
  EXPECT_EQ(cred.gid, ::getgid());
  int fl = ::fcntl(a.get(), F_GETFD);
  EXPECT_TRUE(fl & FD_CLOEXEC);
}

// A socketpair channel between parent and child: requests one way, replies the other.
TEST(UnixSocket, SocketPairChannelBetweenParentAndChild) {
  test::fd_leak_guard guard;
  auto [parent_end, child_end] = make_socket_pair(transport::unix_dgram);
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid == 0) {
    parent_end.reset();
    char buf[64];
    for (;;) {
      auto n = ::recv(child_end.get(), buf, sizeof buf, 0);
      // A zero-length datagram is a message (echoed empty), not an end of stream.
      if (n < 0 || std::string_view(buf, static_cast<std::size_t>(n)) == "quit") break;
      for (ssize_t i = 0; i < n; ++i)
        buf[i] = static_cast<char>(std::toupper(buf[i]));
      if (::send(child_end.get(), buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) ::_exit(2);
    }
    ::_exit(0);
  }
  child_end.reset();
  for (std::string msg : {"hello", "", "socketpair"}) {
    ASSERT_EQ(::send(parent_end.get(), msg.data(), msg.size(), 0),
              static_cast<ssize_t>(msg.size()));
    char buf[64];
    auto n = ::recv(parent_end.get(), buf, sizeof buf, 0);
    ASSERT_EQ(n, static_cast<ssize_t>(msg.size()));
    std::string up = msg;
    for (auto& ch : up)
      ch = static_cast<char>(std::toupper(ch));
    EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n)), up);
  }
  ::send(parent_end.get(), "quit", 4, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// A Unix stream connect to a full backlog fails at once with EAGAIN (non-blocking), where
// TCP queues the SYN and retries (EINPROGRESS). See docs/transports.md.
TEST(UnixSocket, FullBacklogConnectFailsAtOnceWhereTcpRetries) {
  test::fd_leak_guard guard;
  temp_dir dir;
  auto ep = endpoint::parse("unix://" + dir.file("full.sock"));
  listen_options lo;
  lo.backlog = 1;
  auto l = listen_unix(ep, io_mode::blocking, lo);
  std::vector<unique_fd> clients;
  int err = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 64 && err == 0; ++i) {
    unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (::connect(s.get(), ep.addr(), ep.length()) != 0) err = errno;
    clients.push_back(std::move(s));
  }
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(err, EAGAIN);
  EXPECT_LT(took, 100ms) << "the refusal must be immediate";
  EXPECT_LE(clients.size(), 4u);

  // TCP: the same situation leaves the connect in progress (SYN retried), not refused.
  listen_options tl;
  tl.backlog = 1;
  auto t = listen_on(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking, tl);
  auto tep = local_endpoint(t.get(), transport::tcp);
  int tcp_err = 0;
  std::vector<unique_fd> tcp_clients;
  for (int i = 0; i < 8; ++i) {
    unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (::connect(s.get(), tep.addr(), tep.length()) != 0) tcp_err = errno;
    tcp_clients.push_back(std::move(s));
  }
  EXPECT_EQ(tcp_err, EINPROGRESS) << "TCP keeps retrying instead of failing";
}

}  // namespace
}  // namespace netkit
