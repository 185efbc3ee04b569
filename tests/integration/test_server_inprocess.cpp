// Cases that need control over the server's own process, so the server runs on its own
// event loop in a thread of this test process (same code as `netkit echo-server`):
//  - case 15: short writes and EAGAIN, by interposing send(2) and sendmsg(2) for the
//    server thread;
//  - case 16: a SIGUSR1 storm at the server thread, handler installed without SA_RESTART
//    (the echo-server binary has no SIGUSR1 handler, so the default action would kill it:
//    the case is about EINTR handling, which this exercises directly).
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <thread>

#include <gtest/gtest.h>

#include "support/backend_params.hpp"
#include "support/echo_driver.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/in_process_server.hpp"

namespace {
// Interposer state: only the thread marked by mark_server_thread() is affected.
thread_local bool t_inject = false;
std::atomic<bool> g_inject_eagain{false};
std::atomic<std::uint64_t> g_short_writes{0};
std::atomic<std::uint64_t> g_fake_eagains{0};
thread_local std::uint64_t t_calls = 0;
}  // namespace

// Every send(2) in this executable (netkit is linked statically) comes here. On the
// marked server thread it writes at most 1..7 bytes for real, and with
// g_inject_eagain every third call fails with EAGAIN without writing; elsewhere it is
// plain send(2).
namespace {
// The injection shared by send() and sendmsg(): false = fail with EAGAIN now; otherwise
// `len` is cut to what this call may write.
bool inject(std::size_t& len) {
  if (!t_inject || len == 0) return true;
  ++t_calls;
  if (g_inject_eagain.load() && t_calls % 3 == 0) {
    g_fake_eagains.fetch_add(1);
    errno = EAGAIN;
    return false;
  }
  std::size_t cap = 1 + (t_calls * 2654435761u >> 7) % 7;
  if (cap < len) {
    len = cap;
    g_short_writes.fetch_add(1);
  }
  return true;
}
}  // namespace

extern "C" ssize_t send(int fd, const void* buf, size_t len, int flags) {
  if (!inject(len)) return -1;
  return ::syscall(SYS_sendto, fd, buf, len, flags, nullptr, 0);
}

// The server gathers a reply's header and a large payload into one sendmsg(2).
extern "C" ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < msg->msg_iovlen; ++i)
    total += msg->msg_iov[i].iov_len;
  std::size_t len = total;
  if (!inject(len)) return -1;
  if (len == total) return ::syscall(SYS_sendmsg, fd, msg, flags);
  // Cut short: the leading `len` bytes (at most 7) are all in the first pieces.
  std::array<iovec, 8> iov{};
  msghdr cut = *msg;
  std::size_t n = 0;
  for (std::size_t i = 0; i < msg->msg_iovlen && len > 0 && n < iov.size(); ++i) {
    const std::size_t take = std::min(len, msg->msg_iov[i].iov_len);
    if (take == 0) continue;
    iov[n++] = {msg->msg_iov[i].iov_base, take};
    len -= take;
  }
  cut.msg_iov = iov.data();
  cut.msg_iovlen = n;
  return ::syscall(SYS_sendmsg, fd, &cut, flags);
}

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

class inprocess_test : public testing::TestWithParam<backend_codec> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(backend_of(GetParam())); }
  std::vector<echo_plan> plans(std::size_t clients, std::size_t messages, std::size_t max_payload,
                               std::uint64_t seed) const {
    auto spec = codec_spec::parse(codec_of(GetParam()));
    std::mt19937_64 rng(seed);
    std::vector<echo_plan> out(clients);
    for (auto& p : out) {
      p.block = std::make_shared<std::vector<std::byte>>(
          make_framed_stream(spec, rng, messages, max_payload));
      p.max_split = 100;
    }
    return out;
  }
};

// Case 15: the server's sends are cut short (1-7 bytes written per call) and, on
// level-triggered backends, every third fails with EAGAIN → the echo is byte-identical,
// nothing duplicated or lost.
TEST_P(inprocess_test, short_writes_and_eagain_keep_output_byte_identical) {
  const auto& backend = backend_of(GetParam());
  if (backend == "epoll-et")
    GTEST_SKIP() << "a faked short write or EAGAIN leaves the socket buffer empty, so no "
                    "EPOLLOUT edge ever follows and an edge-triggered writer rightly waits; "
                    "real partial writes under epoll-et are covered by the slow-reader and "
                    "flood cases";
  if (is_completion_backend(backend))
    GTEST_SKIP() << backend
                 << " sends through io_uring operations, not send(2): the "
                    "interposer cannot shorten them";
  fd_leak_guard guard;
  g_short_writes = 0;
  g_fake_eagains = 0;
  g_inject_eagain = true;
  {
    in_process_server server(backend, codec_of(GetParam()), "tcp://127.0.0.1:0",
                             [] { t_inject = true; });
    auto p = plans(4, scaled(60, 20), 300, 31);
    auto run = run_echo_clients(server.local(), p, deadline_after(stretch(60s)), 32, backend);
    EXPECT_EQ(run.problems(p), "");
  }
  g_inject_eagain = false;
  EXPECT_GT(g_short_writes.load(), 100u);
  EXPECT_GT(g_fake_eagains.load(), 10u);
}

std::atomic<std::uint64_t> g_signals{0};
void on_usr1(int) {
  g_signals.fetch_add(1, std::memory_order_relaxed);
}

// Case 16: SIGUSR1 at the server thread every 100 µs, handler without SA_RESTART, so
// epoll_wait/poll/select/accept4/recv/send keep failing with EINTR → no spurious
// failure: every client gets its exact echo.
TEST_P(inprocess_test, signal_storm_causes_no_spurious_failures) {
  fd_leak_guard guard;
  struct sigaction sa {
  }, old{};
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: interrupted calls return EINTR
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  g_signals = 0;
  {
    in_process_server server(backend_of(GetParam()), codec_of(GetParam()));
    std::atomic<bool> storm{true};
    pthread_t target = server.native_handle();
    std::thread signaller([&] {
      // Bound: until the clients are done (they have their own deadline).
      while (storm.load()) {
        ::pthread_kill(target, SIGUSR1);
        std::this_thread::sleep_for(100us);
      }
    });
    auto p = plans(10, scaled(100, 30), 400, 33);
    // Clients arrive while the storm is on, so accept4 is interrupted too. A count, not a
    // time: on a loaded machine the signaller's 100 µs naps last far longer.
    const auto storm_on = deadline_after(stretch(10s));
    while (g_signals.load() < 50 && clock::now() < storm_on)
      std::this_thread::sleep_for(1ms);
    const auto before_clients = g_signals.load();
    // Rounds of clients until 200 signals fell on them (a round takes a few ms here),
    // each round checked whole; bounded in rounds and by each round's deadline.
    std::uint64_t during_clients = 0;
    for (int round = 0; round < 100 && during_clients < 200; ++round) {
      const auto at_start = g_signals.load();
      auto run = run_echo_clients(server.local(), p, deadline_after(stretch(60s)), 34,
                                  backend_of(GetParam()));
      during_clients += g_signals.load() - at_start;
      const auto problems = run.problems(p);
      EXPECT_EQ(problems, "") << "round " << round;
      if (!problems.empty()) break;  // not ASSERT: the signaller must still be joined
    }
    storm = false;
    signaller.join();
    EXPECT_GE(before_clients, 50u);
    EXPECT_GE(during_clients, 200u) << "signals while the clients ran";
  }
  ::sigaction(SIGUSR1, &old, nullptr);
}

INSTANTIATE_TEST_SUITE_P(all, inprocess_test, every_backend_and_codec(), param_name{});

}  // namespace
}  // namespace netkit::test
