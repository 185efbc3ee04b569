#include "netkit/blocking_io.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "netkit/error.hpp"
#include "netkit/fd.hpp"

namespace netkit {
namespace {

using namespace std::chrono_literals;

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

class fd_guard {
 public:
  ~fd_guard() { EXPECT_EQ(open_fd_count(), before_) << "descriptor leak"; }

 private:
  std::size_t before_ = open_fd_count();
};

struct socket_pair {
  unique_fd a, b;
};

// Blocking pair with 10 s send/receive timeouts, so a broken loop fails instead of hanging.
socket_pair make_socketpair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    ADD_FAILURE() << "socketpair: " << std::strerror(errno);
    return {};
  }
  const timeval tv{10, 0};
  for (int fd : fds) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  return {unique_fd(fds[0]), unique_fd(fds[1])};
}

std::vector<std::byte> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> v(n);
  for (auto& b : v)
    b = static_cast<std::byte>(rng());
  return v;
}

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s));
}

void send_all(int fd, std::span<const std::byte> data) {
  ASSERT_EQ(::send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

// SIGUSR1 with a handler and without SA_RESTART: a blocked read/write returns EINTR (or a
// short count). Restores the previous disposition on destruction.
std::atomic<int> signals_handled{0};
class interrupting_signal {
 public:
  interrupting_signal() {
    struct sigaction sa {};
    sa.sa_handler = [](int) { signals_handled.fetch_add(1, std::memory_order_relaxed); };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART
    ::sigaction(SIGUSR1, &sa, &old_);
    signals_handled = 0;
  }
  ~interrupting_signal() { ::sigaction(SIGUSR1, &old_, nullptr); }

 private:
  struct sigaction old_ {};
};

// Signals `target` every 2 ms until stopped; joined on destruction.
class signal_storm {
 public:
  explicit signal_storm(pthread_t target)
      : thread_([this, target] {
          while (!stop_.load()) {
            ::pthread_kill(target, SIGUSR1);
            std::this_thread::sleep_for(2ms);
          }
        }) {}
  ~signal_storm() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// --- read_n ---

TEST(ReadN, ShortReadsAreJoined) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  const auto payload = random_bytes(10'000, 1);
  std::thread writer([&, fd = a.get()] {
    for (std::size_t off = 0; off < payload.size(); off += 997) {
      send_all(fd,
               std::span(payload).subspan(off, std::min<std::size_t>(997, payload.size() - off)));
      std::this_thread::sleep_for(100us);
    }
  });
  std::vector<std::byte> got(payload.size());
  const auto r = read_n(b.get(), got);
  writer.join();
  EXPECT_EQ(r.how, read_n_result::end::complete);
  EXPECT_EQ(r.bytes, payload.size());
  EXPECT_EQ(got, payload);
}

TEST(ReadN, CleanEofVersusMidMessageEof) {
  fd_guard guard;
  {
    auto [a, b] = make_socketpair();
    a.reset();
    std::byte buf[16];
    const auto r = read_n(b.get(), buf);
    EXPECT_EQ(r.how, read_n_result::end::eof_clean);
    EXPECT_EQ(r.bytes, 0u);
  }
  {
    auto [a, b] = make_socketpair();
    send_all(a.get(), bytes("0123456789"));
    a.reset();
    std::byte buf[16];
    const auto r = read_n(b.get(), buf);
    EXPECT_EQ(r.how, read_n_result::end::eof_mid_message);
    EXPECT_EQ(r.bytes, 10u);
  }
  {
    auto [a, b] = make_socketpair();
    send_all(a.get(), bytes("0123456789abcdef"));
    a.reset();
    std::byte buf[16];
    EXPECT_EQ(read_n(b.get(), buf).how, read_n_result::end::complete);
    EXPECT_EQ(read_n(b.get(), buf).how, read_n_result::end::eof_clean);
  }
}

TEST(ReadN, RetriesEintr) {
  fd_guard guard;
  interrupting_signal sig;
  auto [a, b] = make_socketpair();
  const auto payload = random_bytes(4096, 2);
  std::vector<std::byte> got(payload.size());
  read_n_result r{};
  {
    signal_storm storm(::pthread_self());
    std::thread writer([&, fd = a.get()] {
      // Let the reader block and be interrupted several times between pieces.
      for (std::size_t off = 0; off < payload.size(); off += 512) {
        std::this_thread::sleep_for(10ms);
        send_all(fd, std::span(payload).subspan(off, 512));
      }
    });
    r = read_n(b.get(), got);
    writer.join();
  }
  EXPECT_GT(signals_handled.load(), 5) << "the read was expected to be interrupted";
  EXPECT_EQ(r.how, read_n_result::end::complete);
  EXPECT_EQ(got, payload);
}

TEST(ReadN, ErrorsThrowSysError) {
  std::byte buf[4];
  try {
    (void)read_n(-1, buf);
    ADD_FAILURE() << "no exception";
  } catch (const sys_error& e) {
    EXPECT_EQ(e.errno_value(), EBADF);
  }
}

// --- write_n / write_v ---

// Reads everything from fd until EOF, slowly at first so the writer fills the socket buffer.
std::vector<std::byte> slow_drain(int fd) {
  std::vector<std::byte> out;
  std::byte chunk[3000];
  int reads = 0;
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.insert(out.end(), chunk, chunk + n);
    if (++reads < 50) std::this_thread::sleep_for(1ms);
  }
  return out;
}

TEST(WriteN, WritesEverythingThroughAFullSocketWithSignals) {
  fd_guard guard;
  interrupting_signal sig;
  auto [a, b] = make_socketpair();
  int small = 4096;
  ::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  const auto payload = random_bytes(2'000'000, 3);
  std::vector<std::byte> received;
  std::thread reader([&, fd = b.get()] { received = slow_drain(fd); });
  {
    signal_storm storm(::pthread_self());
    write_n(a.get(), payload);
  }
  a.reset();
  reader.join();
  EXPECT_GT(signals_handled.load(), 0);
  EXPECT_EQ(received, payload);
}

TEST(WriteN, ClosedPeerIsEpipeNotSigpipe) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  b.reset();
  try {
    write_n(a.get(), bytes("hello"));
    ADD_FAILURE() << "no exception";
  } catch (const sys_error& e) {
    EXPECT_EQ(e.errno_value(), EPIPE);
  }
}

TEST(WriteN, PipeFallsBackToWrite) {
  fd_guard guard;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  unique_fd r(p[0]), w(p[1]);
  const auto payload = random_bytes(300'000, 4);  // more than the 64 KiB pipe buffer
  std::vector<std::byte> received;
  std::thread reader([&, fd = r.get()] { received = slow_drain(fd); });
  write_n(w.get(), payload);
  w.reset();
  reader.join();
  EXPECT_EQ(received, payload);
}

TEST(WriteV, HeaderAndBodyInOneCall) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  std::string head = "HDR:";
  std::string body = "body bytes";
  const iovec parts[] = {{head.data(), head.size()}, {nullptr, 0}, {body.data(), body.size()}};
  write_v(a.get(), parts);
  char got[32] = {};
  EXPECT_EQ(::recv(b.get(), got, sizeof got, MSG_DONTWAIT), 14);
  EXPECT_STREQ(got, "HDR:body bytes");
}

TEST(WriteV, PartialWritesResumeInsideAnyPartAndManyParts) {
  fd_guard guard;
  interrupting_signal sig;
  auto [a, b] = make_socketpair();
  int small = 4096;
  ::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  // 3000 parts (over IOV_MAX = 1024) of odd sizes, some empty.
  const auto payload = random_bytes(1'500'000, 5);
  std::vector<iovec> parts;
  std::mt19937 rng(6);
  for (std::size_t off = 0; off < payload.size();) {
    const std::size_t len = std::min<std::size_t>(rng() % 1000, payload.size() - off);
    parts.push_back({const_cast<std::byte*>(payload.data() + off), len});
    off += len;
  }
  ASSERT_GT(parts.size(), 2000u);
  std::vector<std::byte> received;
  std::thread reader([&, fd = b.get()] { received = slow_drain(fd); });
  {
    signal_storm storm(::pthread_self());
    write_v(a.get(), parts);
  }
  a.reset();
  reader.join();
  EXPECT_EQ(received, payload);
}

TEST(WriteV, PipeFallsBackToWritev) {
  fd_guard guard;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  unique_fd r(p[0]), w(p[1]);
  std::string x = "ab", y = "cd";
  const iovec parts[] = {{x.data(), 2}, {y.data(), 2}};
  write_v(w.get(), parts);
  char got[8] = {};
  EXPECT_EQ(::read(r.get(), got, sizeof got), 4);
  EXPECT_STREQ(got, "abcd");
}

// --- line_reader ---

TEST(LineReader, LinesEmptyLinesCarriageReturnAndCleanEof) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  send_all(a.get(), bytes("first\n\nthird\r\nlast\n"));
  a.reset();
  line_reader in(b.get());
  EXPECT_EQ(in.read_line(), "first");
  EXPECT_EQ(in.read_line(), "");
  EXPECT_EQ(in.read_line(), "third\r");
  EXPECT_EQ(in.read_line(), "last");
  EXPECT_EQ(in.read_line(), std::nullopt);
  EXPECT_EQ(in.read_line(), std::nullopt);
}

TEST(LineReader, EofMidLineThrows) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  send_all(a.get(), bytes("ok\npartial"));
  a.reset();
  line_reader in(b.get());
  EXPECT_EQ(in.read_line(), "ok");
  try {
    (void)in.read_line();
    ADD_FAILURE() << "no exception";
  } catch (const protocol_error& e) {
    EXPECT_STREQ(e.what(), "stream ended inside a line (7 bytes)");
  }
}

TEST(LineReader, MaxLine) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  std::thread writer([fd = a.get()] {
    send_all(fd, bytes(std::string(100, 'a') + "\n"));
    send_all(fd, bytes(std::string(101, 'b') + "\n"));
  });
  line_reader in(b.get(), 100);
  EXPECT_EQ(in.read_line(), std::string(100, 'a'));
  EXPECT_THROW((void)in.read_line(), protocol_error);
  writer.join();
}

TEST(LineReader, MegabyteWithoutNewlineStopsNearMax) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  std::thread writer([fd = a.get()] {
    const std::string flood(1 << 20, 'x');
    // The reader stops early and closes; the rest fails with EPIPE, which is expected.
    (void)::send(fd, flood.data(), flood.size(), MSG_NOSIGNAL);
  });
  {
    line_reader in(b.get(), 64 * 1024);
    try {
      (void)in.read_line();
      ADD_FAILURE() << "no exception";
    } catch (const protocol_error& e) {
      EXPECT_STREQ(e.what(), "line longer than 65536 bytes");
    }
  }
  b.reset();
  writer.join();
}

TEST(LineReader, ReadsLargeChunksNotByteByByte) {
  fd_guard guard;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  unique_fd r(p[0]), w(p[1]);
  std::string many;
  for (int i = 0; i < 1000; ++i)
    many += "line " + std::to_string(i) + "\n";
  ASSERT_EQ(::write(w.get(), many.data(), many.size()), static_cast<ssize_t>(many.size()));
  line_reader in(r.get());
  EXPECT_EQ(in.read_line(), "line 0");
  int pending = -1;
  ASSERT_EQ(::ioctl(r.get(), FIONREAD, &pending), 0);
  EXPECT_EQ(pending, 0) << "one read took all " << many.size() << " bytes";
  for (int i = 1; i < 1000; ++i)
    ASSERT_EQ(in.read_line(), "line " + std::to_string(i));
}

TEST(LineReader, RetriesEintr) {
  fd_guard guard;
  interrupting_signal sig;
  auto [a, b] = make_socketpair();
  std::vector<std::optional<std::string>> lines;
  {
    signal_storm storm(::pthread_self());
    std::thread writer([fd = a.get()] {
      for (const char* piece : {"hel", "lo\nwor", "ld", "\n"}) {
        std::this_thread::sleep_for(15ms);
        send_all(fd, bytes(piece));
      }
    });
    line_reader in(b.get());
    lines.push_back(in.read_line());
    lines.push_back(in.read_line());
    writer.join();
  }
  EXPECT_GT(signals_handled.load(), 5);
  EXPECT_EQ(lines[0], "hello");
  EXPECT_EQ(lines[1], "world");
}

TEST(LineReader, ReadErrorThrowsSysError) {
  line_reader in(-1);
  EXPECT_THROW((void)in.read_line(), sys_error);
}

// A stop predicate: each timed-out call (SO_RCVTIMEO/SO_SNDTIMEO) asks it; while it says
// no the transfer goes on and completes, once it says yes transfer_stopped ends it.
void set_timeouts(int fd, long usec) {
  const timeval tv{0, usec};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

TEST(StopPredicate, ReadNAsksOnEachTimeoutAndCompletesWhileItSaysNo) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  set_timeouts(b.get(), 20'000);
  std::atomic<int> asked{0};
  std::thread late([&] {
    while (asked.load() < 3)
      std::this_thread::sleep_for(5ms);
    ASSERT_EQ(::write(a.get(), "abcd", 4), 4);
  });
  std::byte buf[4];
  auto r = read_n(b.get(), buf, [&] {
    ++asked;
    return false;
  });
  late.join();
  EXPECT_EQ(r.how, read_n_result::end::complete);
  EXPECT_GE(asked.load(), 3);
}

TEST(StopPredicate, StopsReadNWriteNAndReadLine) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  set_timeouts(b.get(), 20'000);
  int asked = 0;
  const stop_predicate stop_on_second = [&] { return ++asked >= 2; };
  std::byte buf[4];
  EXPECT_THROW((void)read_n(b.get(), buf, stop_on_second), transfer_stopped);
  EXPECT_EQ(asked, 2);
  asked = 0;
  line_reader lines(b.get(), 100, stop_on_second);
  EXPECT_THROW((void)lines.read_line(), transfer_stopped);
  EXPECT_EQ(asked, 2);
  // A peer that never reads: the socket fills, each timed-out send asks.
  asked = 0;
  std::vector<std::byte> big(8 << 20);
  EXPECT_THROW(write_n(b.get(), big, stop_on_second), transfer_stopped);
  EXPECT_EQ(asked, 2);
  // Without a predicate a timeout is an error, as before.
  EXPECT_THROW((void)read_n(b.get(), buf), sys_error);
}

}  // namespace
}  // namespace netkit
