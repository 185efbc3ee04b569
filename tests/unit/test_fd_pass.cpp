// Descriptor passing over Unix sockets (reliability cases 33-34) and the fd-pass demo.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "netkit/message.hpp"
#include "netkit/process.hpp"
#include "netkit/socket.hpp"
#include "netkit/unix_socket.hpp"
#include "support/child_process.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"

namespace netkit {
namespace {

using namespace std::chrono_literals;

class temp_file {
 public:
  explicit temp_file(std::string_view content) {
    char tmpl[] = "/tmp/netkit-fdpass-XXXXXX";
    unique_fd fd(::mkstemp(tmpl));
    if (!fd) throw_sys_error("mkstemp");
    path_ = tmpl;
    if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size()))
      throw_sys_error("write", path_);
  }
  ~temp_file() { ::unlink(path_.c_str()); }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

unique_fd open_read(const std::string& path) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_sys_error("open", path);
  return fd;
}

bool same_file(int a, int b) {
  struct stat sa {
  }, sb{};
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

TEST(FdPass, ReceivedDescriptorIsTheSameOpenFileAndCloexec) {
  test::fd_leak_guard guard;
  temp_file file("0123456789");
  auto fd = open_read(file.path());
  auto [a, b] = make_socket_pair();
  int raw = fd.get();
  std::string_view hello = "here";
  ASSERT_TRUE(send_fds(a.get(), {&raw, 1}, std::as_bytes(std::span(hello))).ok());
  std::array<std::byte, 16> buf{};
  auto m = recv_fds(b.get(), 4, buf);
  ASSERT_TRUE(m.ok()) << errno_text(m.err);
  ASSERT_EQ(m.fds.size(), 1u);
  EXPECT_EQ(m.n, 4);
  EXPECT_NE(m.fds[0].get(), raw);
  EXPECT_TRUE(same_file(m.fds[0].get(), raw));
  EXPECT_TRUE(::fcntl(m.fds[0].get(), F_GETFD) & FD_CLOEXEC);
  // Same open file description: the offset is shared.
  char c;
  ASSERT_EQ(::read(m.fds[0].get(), &c, 1), 1);
  EXPECT_EQ(::lseek(raw, 0, SEEK_CUR), 1);
}

TEST(FdPass, SeveralDescriptorsAtOnceOverStreamAndDatagram) {
  test::fd_leak_guard guard;
  temp_file file("x");
  for (auto t : {transport::unix_stream, transport::unix_dgram}) {
    auto [a, b] = make_socket_pair(t);
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    unique_fd r(p[0]), w(p[1]);
    auto f = open_read(file.path());
    int fds[3] = {r.get(), w.get(), f.get()};
    ASSERT_TRUE(send_fds(a.get(), fds).ok());
    auto m = recv_fds(b.get(), 3);
    ASSERT_TRUE(m.ok());
    ASSERT_EQ(m.fds.size(), 3u);
    for (int i = 0; i < 3; ++i)
      EXPECT_TRUE(same_file(m.fds[i].get(), fds[i]));
    // The received write end reaches the original read end.
    ASSERT_EQ(::write(m.fds[1].get(), "!", 1), 1);
    char c;
    ASSERT_EQ(::read(r.get(), &c, 1), 1);
    EXPECT_EQ(c, '!');
  }
}

// Case 34: an empty payload still carries the descriptor (one byte is added).
TEST(FdPass, EmptyPayloadStillDeliversDescriptor) {
  test::fd_leak_guard guard;
  temp_file file("y");
  auto f = open_read(file.path());
  auto [a, b] = make_socket_pair();
  int raw = f.get();
  auto s = send_fds(a.get(), {&raw, 1});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.n, 1) << "one padding byte travels with the descriptor";
  auto m = recv_fds(b.get(), 1);
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m.fds.size(), 1u);
  EXPECT_TRUE(same_file(m.fds[0].get(), raw));
}

// Case 34: 254 descriptors is over SCM_MAX_FD: EINVAL, nothing leaked; 253 works.
TEST(FdPass, TooManyDescriptorsIsEinvalAndNothingLeaks) {
  test::fd_leak_guard guard;
  raise_nofile_limit(4096);
  auto [a, b] = make_socket_pair();
  temp_file file("z");
  std::vector<unique_fd> owned;
  std::vector<int> raw;
  for (int i = 0; i < 254; ++i) {
    owned.push_back(open_read(file.path()));
    raw.push_back(owned.back().get());
  }
  auto before = open_fd_count();
  auto r = send_fds(a.get(), raw);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(open_fd_count(), before);
  // Nothing was queued: the receiver sees no data.
  auto m = recv_fds(b.get(), 254, {}, recv_flags::dont_wait);
  EXPECT_TRUE(m.would_block());
  // The kernel agrees with our limit: 253 go through.
  ASSERT_TRUE(send_fds(a.get(), std::span(raw).first(max_fds_per_message)).ok());
  auto got = recv_fds(b.get(), max_fds_per_message);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got.fds.size(), max_fds_per_message);
}

// Case 33: a control buffer too small for what was sent: MSG_CTRUNC reported, every
// descriptor that did arrive closed, the fd count unchanged.
TEST(FdPass, SmallControlBufferIsCtruncAndArrivedDescriptorsAreClosed) {
  test::fd_leak_guard guard;
  temp_file file("c");
  auto [a, b] = make_socket_pair();
  std::vector<unique_fd> owned;
  std::vector<int> raw;
  for (int i = 0; i < 4; ++i) {
    owned.push_back(open_read(file.path()));
    raw.push_back(owned.back().get());
  }
  ASSERT_TRUE(send_fds(a.get(), raw).ok());
  auto before = open_fd_count();
  auto m = recv_fds(b.get(), 1);
  EXPECT_TRUE(m.control_truncated);
  EXPECT_EQ(m.err, EMSGSIZE);
  EXPECT_TRUE(m.fds.empty());
  EXPECT_EQ(m.n, 1) << "the payload byte is still reported";
  EXPECT_EQ(open_fd_count(), before);
}

// Case 33 near RLIMIT_NOFILE: the kernel cannot install every descriptor, sets MSG_CTRUNC;
// the ones it did install are closed. Run in a child so the lowered limit stays there.
TEST(FdPass, ReceiverAtNofileLimitSeesCtruncAndLeaksNothing) {
  test::fd_leak_guard guard;
  temp_file file("n");
  auto [a, b] = make_socket_pair();
  std::vector<unique_fd> owned;
  std::vector<int> raw;
  for (int i = 0; i < 4; ++i) {
    owned.push_back(open_read(file.path()));
    raw.push_back(owned.back().get());
  }
  ASSERT_TRUE(send_fds(a.get(), raw).ok());
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid == 0) {
    owned.clear();
    a.reset();
    // Room for two more descriptors: two of the four arrive, two cannot.
    int count = open_fd_count();
    int highest = 0;
    for (int fd = 0; fd < 1024; ++fd)
      if (::fcntl(fd, F_GETFD) >= 0) highest = fd;
    // Lowest free descriptors must stay below the limit: fill holes below `highest`.
    rlimit rl{static_cast<rlim_t>(highest + 3), static_cast<rlim_t>(highest + 3)};
    std::vector<unique_fd> fillers;
    for (int fd = 0; fd <= highest; ++fd)
      if (::fcntl(fd, F_GETFD) < 0) fillers.push_back(open_read(file.path()));
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(90);
    int before = open_fd_count();
    auto m = recv_fds(b.get(), 4);
    if (!m.control_truncated) ::_exit(91);
    if (!m.fds.empty()) ::_exit(92);
    if (open_fd_count() != before) ::_exit(93);
    (void)count;
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "91: no MSG_CTRUNC, 92: fds kept, 93: leak";
}

TEST(FdPass, NoLeakAfterTenThousandPasses) {
  test::fd_leak_guard guard;
  temp_file file("leak");
  auto f = open_read(file.path());
  auto [a, b] = make_socket_pair();
  int raw = f.get();
  auto before = open_fd_count();
  for (int i = 0; i < 10'000; ++i) {
    ASSERT_TRUE(send_fds(a.get(), {&raw, 1}).ok());
    auto m = recv_fds(b.get(), 1);
    ASSERT_EQ(m.fds.size(), 1u);
    if (i % 1000 == 0) {
      EXPECT_TRUE(same_file(m.fds[0].get(), raw));
    }
  }
  EXPECT_EQ(open_fd_count(), before);
}

TEST(FdPass, PeerClosedIsEofNotAnError) {
  test::fd_leak_guard guard;
  auto [a, b] = make_socket_pair();
  a.reset();
  auto m = recv_fds(b.get(), 1);
  EXPECT_TRUE(m.eof());
}

// The CLI demo: serve hands a file descriptor to an unrelated receiver process.
TEST(FdPass, CliServeAndReceiveAFile) {
  test::fd_leak_guard guard;
  temp_file file("contents passed by descriptor\n");
  char tmpl[] = "/tmp/netkit-fdcli-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string sock = std::string(tmpl) + "/pass.sock";
  {
    test::child_process server({{NETKIT_CLI, "fd-pass", "serve", "--listen", "unix://" + sock,
                                 "--file", file.path(), "--count", "2", "--mode", "0600"}});
    auto banner = server.read_line(test::deadline_after(10s));
    ASSERT_TRUE(banner) << server.stderr_text();
    EXPECT_NE(banner->find("listening on unix://" + sock), std::string::npos);
    for (int i = 0; i < 2; ++i) {
      test::child_process receiver(
          {{NETKIT_CLI, "fd-pass", "receive", "--connect", "unix://" + sock}});
      auto line = receiver.read_line(test::deadline_after(10s));
      ASSERT_TRUE(line) << receiver.stderr_text();
      EXPECT_EQ(*line, "contents passed by descriptor");
      auto st = receiver.wait(test::deadline_after(10s));
      ASSERT_TRUE(st);
      EXPECT_TRUE(st->exited_normally()) << receiver.stderr_text();
      auto handed = server.read_line(test::deadline_after(10s));
      ASSERT_TRUE(handed);
      EXPECT_NE(handed->find("pid=" + std::to_string(receiver.pid())), std::string::npos)
          << *handed;
    }
    auto st = server.wait(test::deadline_after(10s));
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->exited_normally()) << server.stderr_text();
  }
  struct stat s {};
  EXPECT_NE(::lstat(sock.c_str(), &s), 0) << "the socket file is removed on clean exit";
  ::rmdir(tmpl);
}

// The CLI demo with a TCP connection: the receiver serves a connection it never accepted.
TEST(FdPass, CliHandsAnAcceptedTcpConnection) {
  test::fd_leak_guard guard;
  char tmpl[] = "/tmp/netkit-fdcli-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string sock = std::string(tmpl) + "/pass.sock";
  {
    test::child_process server({{NETKIT_CLI, "fd-pass", "serve", "--listen", "unix://" + sock,
                                 "--accept", "tcp://127.0.0.1:0", "--count", "1"}});
    auto banner = server.read_line(test::deadline_after(10s));
    ASSERT_TRUE(banner) << server.stderr_text();
    auto at = banner->find("tcp://");
    ASSERT_NE(at, std::string::npos) << *banner;
    auto tcp = endpoint::parse(banner->substr(at));
    test::child_process receiver(
        {{NETKIT_CLI, "fd-pass", "receive", "--connect", "unix://" + sock}});
    auto client = connect_to(tcp);
    std::string_view msg = "echo me";
    ASSERT_EQ(::send(client.get(), msg.data(), msg.size(), MSG_NOSIGNAL), 7);
    char buf[16];
    pollfd p{client.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1);
    ASSERT_EQ(::recv(client.get(), buf, sizeof buf, 0), 7);
    EXPECT_EQ(std::string_view(buf, 7), msg);
    client.reset();
    auto st = receiver.wait(test::deadline_after(10s));
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->exited_normally()) << receiver.stderr_text();
    EXPECT_TRUE(server.wait(test::deadline_after(10s)));
  }
  ::rmdir(tmpl);
}

}  // namespace
}  // namespace netkit
