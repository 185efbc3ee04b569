// The completion (io_uring) server through the real `netkit echo-server --model uring`:
// behaviour specific to owning the I/O operations — multishot accept re-armed after
// bursts, a provided-buffer ring run dry, cancellation of operations still in flight when
// a connection closes, descriptors returned, and a clear refusal when the kernel has no
// io_uring. The cross-backend hostile cases live in test_echo_backends and friends.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "netkit/codec/codec.hpp"
#include "netkit/socket.hpp"
#include "support/backend_params.hpp"
#include "support/client_io.hpp"
#include "support/echo_driver.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

class uring_echo : public testing::Test {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND("uring"); }
  void TearDown() override { ::unsetenv("NETKIT_URING_RECV_BUFFERS"); }

  static server_config config(std::string codec, std::vector<std::string> extra = {}) {
    server_config c;
    c.model = "uring";
    c.codec = std::move(codec);
    c.extra_args = std::move(extra);
    return c;
  }

  static std::vector<echo_plan> plans(const std::string& codec, std::size_t clients,
                                      std::size_t messages, std::size_t max_payload,
                                      std::size_t max_split, std::uint64_t seed) {
    return make_echo_plans(codec_spec::parse(codec), clients, messages, max_payload, max_split,
                           seed);
  }

  // The server's descriptor count returns to `baseline` (closes complete once the
  // cancelled operations come back, so allow it a moment).
  static void expect_fds_back(server_process& server, int baseline) {
    auto until = deadline_after(stretch(5s));
    int now = server.sample().fds;
    while (now != baseline && clock::now() < until) {
      std::this_thread::sleep_for(20ms);
      now = server.sample().fds;
    }
    EXPECT_EQ(now, baseline) << "server descriptors did not return to their baseline";
  }

  static void expect_clean_stop(server_process& server) {
    auto status = server.terminate();
    ASSERT_TRUE(status) << "echo-server did not stop within 10 s of SIGTERM";
    EXPECT_TRUE(status->exited_normally()) << status->describe() << "\n" << server.log();
  }
};

TEST_F(uring_echo, banner_names_the_model) {
  fd_leak_guard guard;
  server_process server(config("line"));
  EXPECT_NE(server.banner().find("model=uring"), std::string::npos) << server.banner();
  auto c = connect_client(server.local());
  EXPECT_EQ(line_round_trip(c.get(), "hello", deadline_after(stretch(5s))), "");
  expect_clean_stop(server);
}

// Smoke: 100 concurrent clients per codec, random splits, exact echoes.
TEST_F(uring_echo, hundred_clients_every_codec) {
  for (std::string codec : {"line", "crlf", "length", "length16", "fixed:64", "raw"}) {
    SCOPED_TRACE(codec);
    fd_leak_guard guard;
    server_process server(config(codec));
    int baseline = server.sample().fds;
    auto p = plans(codec, 100, scaled(30, 10), 2000, 977, 7);
    auto run = run_echo_clients(server.local(), p, deadline_after(stretch(60s)), 21, "uring");
    EXPECT_EQ(run.problems(p), "");
    expect_fds_back(server, baseline);
    expect_clean_stop(server);
  }
}

// One multishot accept serves a burst of 200 connects; after the burst (and after the
// clients leave) it is still armed and serves a second burst.
TEST_F(uring_echo, multishot_accept_serves_repeated_bursts) {
  fd_leak_guard guard;
  server_process server(config("line"));
  int baseline = server.sample().fds;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    std::vector<unique_fd> clients;
    for (int i = 0; i < 200; ++i)
      clients.push_back(connect_client(server.local()));
    for (std::size_t i = 0; i < clients.size(); ++i) {
      auto problem = line_round_trip(clients[i].get(), fmt::format("burst {} client {}", round, i),
                                     deadline_after(stretch(10s)));
      ASSERT_EQ(problem, "") << "client " << i;
    }
    clients.clear();
    expect_fds_back(server, baseline);
  }
  expect_clean_stop(server);
}

// A ring of 4 one-KiB buffers for 50 clients that all send at once: recvs end with
// ENOBUFS and are re-armed as buffers return; nothing is lost or reordered.
TEST_F(uring_echo, exhausted_buffer_ring_recovers_without_loss) {
  fd_leak_guard guard;
  ::setenv("NETKIT_URING_RECV_BUFFERS", "4x1024", 1);
  server_process server(config("length"));
  ::unsetenv("NETKIT_URING_RECV_BUFFERS");
  int baseline = server.sample().fds;
  auto p = plans("length", 50, scaled(40, 15), 8000, 0, 9);  // whole-stream sends
  auto run = run_echo_clients(server.local(), p, deadline_after(stretch(90s)), 23, "uring");
  EXPECT_EQ(run.problems(p), "");
  EXPECT_NE(server.log().find("receive buffers exhausted"), std::string::npos)
      << "the ring never ran dry; the test did not exercise ENOBUFS\n"
      << server.log();
  expect_fds_back(server, baseline);
  expect_clean_stop(server);
}

// Connections closed while the kernel still holds their operations: a send stuck on a
// peer that does not read (its recv cancelled by back-pressure), resets, and
// protocol errors mid-stream. Every socket is really closed (descriptors back), the
// server keeps serving, and it stops cleanly (under ASan: no use after free).
TEST_F(uring_echo, close_with_operations_in_flight) {
  fd_leak_guard guard;
  server_process server(config("length", {"--high-water", "65536", "--hard-limit", "262144"}));
  int baseline = server.sample().fds;
  // Non-readers: tiny receive buffers so the server's send stalls in the kernel.
  std::vector<unique_fd> stuck;
  std::vector<std::byte> frame(4 + 60000, std::byte{'a'});
  std::uint32_t len = htonl(60000);
  std::memcpy(frame.data(), &len, 4);
  for (int i = 0; i < 10; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ASSERT_EQ(::connect(fd, server.local().addr(), server.local().length()), 0);
    stuck.emplace_back(fd);
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
  }
  // Write until every one is stalled: the server has paused its recv (high water) and its
  // send sits in the kernel, waiting for a reader that never reads.
  auto until = deadline_after(stretch(5s));
  auto last_progress = clock::now();
  while (clock::now() < until && clock::now() - last_progress < 300ms) {
    for (auto& fd : stuck) {
      ssize_t n = ::send(fd.get(), frame.data(), frame.size(), MSG_NOSIGNAL);
      if (n > 0) last_progress = clock::now();
    }
    std::this_thread::sleep_for(5ms);
  }
  // Reset them with the server's operations still in flight.
  for (auto& fd : stuck) {
    set_reset_on_close(fd.get());
    fd.reset();
  }
  // Protocol errors with data still arriving behind the bad frame.
  for (int i = 0; i < 20; ++i) {
    auto fd = connect_client(server.local());
    std::vector<std::byte> bad(4096, std::byte{0xff});  // length 0xffffffff: oversize
    ::send(fd.get(), bad.data(), bad.size(), MSG_NOSIGNAL);
    if (i % 2) set_reset_on_close(fd.get());
  }
  // Resets mid-frame.
  for (int i = 0; i < 20; ++i) {
    auto fd = connect_client(server.local());
    ::send(fd.get(), frame.data(), 1000, MSG_NOSIGNAL);
    set_reset_on_close(fd.get());
  }
  expect_fds_back(server, baseline);
  // Still serving.
  auto p = plans("length", 5, 20, 3000, 500, 5);
  auto run = run_echo_clients(server.local(), p, deadline_after(stretch(30s)), 25, "uring");
  EXPECT_EQ(run.problems(p), "");
  EXPECT_NE(server.log().find("protocol error"), std::string::npos) << server.log();
  expect_fds_back(server, baseline);
  expect_clean_stop(server);
}

// SIGTERM while clients are mid-stream with sends and recvs in flight: the server
// cancels, waits for its operations to come back, and exits 0.
TEST_F(uring_echo, stop_with_busy_clients) {
  fd_leak_guard guard;
  server_process server(config("raw"));
  std::vector<unique_fd> clients;
  std::vector<std::byte> chunk(32768, std::byte{'z'});
  for (int i = 0; i < 20; ++i) {
    clients.push_back(connect_client(server.local()));
    ::fcntl(clients.back().get(), F_SETFL, O_NONBLOCK);
    ::send(clients.back().get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
  }
  std::this_thread::sleep_for(50ms);
  expect_clean_stop(server);
}

// The half-close path owns its send: 4 MiB then SHUT_WR, exactly 4 MiB back, then EOF.
TEST_F(uring_echo, half_close_delivers_everything) {
  fd_leak_guard guard;
  server_process server(config("raw"));
  std::vector<echo_plan> p(1);
  std::vector<std::byte> block(1 << 20);
  for (std::size_t i = 0; i < block.size(); ++i)
    block[i] = static_cast<std::byte>(i * 131 + 7);
  p[0].block = std::make_shared<std::vector<std::byte>>(std::move(block));
  p[0].repeat = scaled(4, 2);
  p[0].half_close = true;
  auto run = run_echo_clients(server.local(), p, deadline_after(stretch(60s)), 27, "uring");
  EXPECT_EQ(run.problems(p), "");
  expect_clean_stop(server);
}

// Under a seccomp filter that makes io_uring_setup fail, `--model uring` must fail with a
// message that names the error and the fallback.
TEST(uring_refused, clear_message_names_the_fallback) {
  fd_leak_guard guard;
  int err_pipe[2];
  ASSERT_EQ(::pipe2(err_pipe, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(err_pipe[1], 2);
    ::dup2(err_pipe[1], 1);
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
      _exit(121);
    std::string cli = netkit_cli();
    ::execl(cli.c_str(), cli.c_str(), "echo-server", "--listen", "tcp://127.0.0.1:0", "--model",
            "uring", static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(err_pipe[1]);
  std::string out;
  char buf[4096];
  // Bounded: the child either exits at once or is killed below.
  auto until = deadline_after(10s);
  ::fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
  int status = 0;
  bool reaped = false;
  while (clock::now() < until) {
    ssize_t n = ::read(err_pipe[0], buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0 && ::waitpid(pid, &status, WNOHANG) == pid) {
      reaped = true;
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  if (!reaped) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  ::close(err_pipe[0]);
  ASSERT_TRUE(reaped) << "echo-server did not exit; output:\n" << out;
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 121) GTEST_SKIP() << "seccomp unavailable";
  EXPECT_NE(WEXITSTATUS(status), 0) << out;
  EXPECT_NE(out.find("--model epoll"), std::string::npos) << out;
  EXPECT_NE(out.find("EPERM"), std::string::npos) << out;
  EXPECT_EQ(out.find("listening on"), std::string::npos) << out;
}

}  // namespace
}  // namespace netkit::test
