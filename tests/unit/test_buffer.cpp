#include "netkit/buffer.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "netkit/fd.hpp"

namespace netkit {
namespace {

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

// Fails the test if it leaves descriptors open.
class fd_guard {
 public:
  ~fd_guard() { EXPECT_EQ(open_fd_count(), before_) << "descriptor leak"; }

 private:
  std::size_t before_ = open_fd_count();
};

struct socket_pair {
  unique_fd a, b;
};

socket_pair make_socketpair(int flags = 0) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0, fds) != 0) {
    ADD_FAILURE() << "socketpair: " << std::strerror(errno);
    return {};
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

std::string as_string(std::span<const std::byte> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

TEST(ByteBuffer, NoStorageUntilFirstWrite) {
  byte_buffer buf;
  EXPECT_EQ(buf.capacity(), 0u);
  EXPECT_TRUE(buf.empty());
  EXPECT_EQ(buf.size(), 0u);
  EXPECT_TRUE(buf.data().empty());
  buf.consume(0);
  buf.clear();
  buf.shrink_to_fit();
  buf.append(std::string_view{});
  EXPECT_EQ(buf.capacity(), 0u) << "an empty append must not allocate";
  buf.append("hello");
  EXPECT_GE(buf.capacity(), 5u);
  EXPECT_EQ(as_string(buf.data()), "hello");
}

TEST(ByteBuffer, SmallCapacityKeptWhenEmptied) {
  byte_buffer buf;
  buf.append("ping");
  const auto cap = buf.capacity();
  ASSERT_LE(cap, byte_buffer::kept_capacity);
  buf.consume(4);
  EXPECT_TRUE(buf.empty());
  EXPECT_EQ(buf.capacity(), cap) << "small storage is reused across messages";
  buf.shrink_to_fit();
  EXPECT_EQ(buf.capacity(), 0u);
}

TEST(ByteBuffer, LargeStorageReleasedWhenEmptied) {
  byte_buffer buf;
  buf.append(std::string(100'000, 'x'));
  EXPECT_GE(buf.capacity(), 100'000u);
  buf.consume(99'999);
  EXPECT_GE(buf.capacity(), 100'000u) << "still one byte unread";
  buf.consume(1);
  EXPECT_EQ(buf.capacity(), 0u);

  buf.append(std::string(5000, 'y'));
  buf.clear();
  EXPECT_EQ(buf.capacity(), 0u);
}

TEST(ByteBuffer, ConsumeDoesNotMoveData) {
  byte_buffer buf;
  buf.append("abcdefghij");
  const auto* first = buf.data().data();
  buf.consume(3);
  EXPECT_EQ(buf.data().data(), first + 3) << "a read only advances the read index";
  EXPECT_EQ(as_string(buf.data()), "defghij");
}

TEST(ByteBuffer, CompactsInsteadOfGrowingWhenConsumedPrefixSuffices) {
  byte_buffer buf;
  buf.append(std::string(200, 'a'));
  const auto cap = buf.capacity();
  buf.append(std::string(cap - 200, 'b'));  // now full
  ASSERT_EQ(buf.size(), cap);
  buf.consume(cap - 10);  // 10 unread bytes at the end
  const auto* base = buf.data().data() - (cap - 10);
  buf.append(std::string(100, 'c'));
  EXPECT_EQ(buf.capacity(), cap) << "room came from compaction, not a new allocation";
  EXPECT_EQ(buf.data().data(), base) << "unread region moved to the front";
  EXPECT_EQ(as_string(buf.data()), std::string(10, 'b') + std::string(100, 'c'));
}

TEST(ByteBuffer, GrowsAndPreservesContent) {
  byte_buffer buf;
  std::string expect;
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string piece(rng() % 300, static_cast<char>('a' + i % 26));
    buf.append(piece);
    expect += piece;
    const std::size_t take = rng() % (buf.size() + 1) / 2;
    buf.consume(take);
    expect.erase(0, take);
    ASSERT_EQ(as_string(buf.data()), expect) << "iteration " << i;
  }
}

TEST(ByteBuffer, PrepareCommit) {
  byte_buffer buf;
  auto tail = buf.prepare(10);
  ASSERT_GE(tail.size(), 10u);
  std::memcpy(tail.data(), "0123456789", 10);
  buf.commit(4);
  EXPECT_EQ(as_string(buf.data()), "0123");
  EXPECT_THROW(buf.commit(buf.capacity()), std::length_error);
  auto more = buf.prepare(3000);
  EXPECT_GE(more.size(), 3000u);
  buf.commit(0);
  EXPECT_EQ(as_string(buf.data()), "0123");
}

TEST(ByteBuffer, ShrinkToFitKeepsData) {
  byte_buffer buf;
  buf.append(std::string(5000, 'z'));
  buf.consume(4000);
  buf.shrink_to_fit();
  EXPECT_EQ(buf.capacity(), 1000u);
  EXPECT_EQ(as_string(buf.data()), std::string(1000, 'z'));
}

TEST(ByteBuffer, MoveLeavesSourceEmpty) {
  byte_buffer a;
  a.append("data");
  byte_buffer b(std::move(a));
  EXPECT_EQ(as_string(b.data()), "data");
  EXPECT_EQ(a.capacity(), 0u);  // NOLINT(bugprone-use-after-move): documented state
  a = std::move(b);
  EXPECT_EQ(as_string(a.data()), "data");
}

TEST(ByteBuffer, ReadFromTakesLargeBurstInOneCallViaSpill) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  int sz = 512 * 1024;
  ASSERT_EQ(::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
  ASSERT_EQ(::setsockopt(b.get(), SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
  const auto payload = random_bytes(60'000, 1);
  // AF_UNIX stream sockets queue each write as one skb; a single write is readable in one go.
  ASSERT_EQ(::write(a.get(), payload.data(), payload.size()), 60'000);

  byte_buffer buf;
  buf.append("x");  // small buffer: a tail of a few hundred bytes, the rest must spill
  buf.consume(1);
  ASSERT_LT(buf.capacity(), 1024u);
  const auto r = buf.read_from(b.get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.n, 60'000) << "a burst larger than the tail arrives in one call";
  ASSERT_EQ(buf.size(), payload.size());
  EXPECT_TRUE(std::equal(payload.begin(), payload.end(), buf.data().begin()));
}

TEST(ByteBuffer, ReadFromEmptyBufferAllocatesOnlyWhatArrived) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  ASSERT_EQ(::write(a.get(), "hi", 2), 2);
  byte_buffer buf;
  const auto r = buf.read_from(b.get());
  EXPECT_EQ(r.n, 2);
  EXPECT_LE(buf.capacity(), byte_buffer::min_allocation);
  EXPECT_EQ(as_string(buf.data()), "hi");
}

TEST(ByteBuffer, ReadFromMoreThanSpillArrivesOverSeveralCalls) {
  fd_guard guard;
  auto [a, b] = make_socketpair(SOCK_NONBLOCK);
  const auto payload = random_bytes(300'000, 2);
  byte_buffer buf;
  std::size_t sent = 0;
  int calls = 0;
  // Bound: each round moves at least one byte or the test fails on the would_block check.
  while (buf.size() < payload.size()) {
    if (sent < payload.size()) {
      const auto n = ::send(a.get(), payload.data() + sent, payload.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
    }
    const auto r = buf.read_from(b.get());
    ASSERT_TRUE(r.ok() || r.would_block()) << r.err;
    ASSERT_FALSE(r.eof());
    ASSERT_LT(++calls, 10'000);
  }
  EXPECT_TRUE(std::equal(payload.begin(), payload.end(), buf.data().begin()));
}

TEST(ByteBuffer, ReadFromReportsEofAndWouldBlock) {
  fd_guard guard;
  auto [a, b] = make_socketpair(SOCK_NONBLOCK);
  byte_buffer buf;
  auto r = buf.read_from(b.get());
  EXPECT_TRUE(r.would_block());
  EXPECT_EQ(buf.capacity(), 0u) << "nothing read, nothing allocated";
  a.reset();
  r = buf.read_from(b.get());
  EXPECT_TRUE(r.eof());
  r = buf.read_from(-1);
  EXPECT_EQ(r.err, EBADF);
  EXPECT_EQ(r.n, 0);
}

TEST(ByteBuffer, WriteToPartialWritesLoseAndDuplicateNothing) {
  fd_guard guard;
  auto [a, b] = make_socketpair(SOCK_NONBLOCK);
  int small = 4096;
  ASSERT_EQ(::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  const auto payload = random_bytes(1'000'000, 3);
  byte_buffer out;
  out.append(payload);

  std::vector<std::byte> received;
  std::byte chunk[7000];
  int partial = 0;
  int rounds = 0;
  while (received.size() < payload.size()) {
    const std::size_t before = out.size();
    const auto w = out.write_to(a.get());
    ASSERT_TRUE(w.ok() || w.would_block()) << w.err;
    if (w.ok()) {
      ASSERT_EQ(before - out.size(), static_cast<std::size_t>(w.n)) << "consumed what was sent";
      if (out.size() != 0) ++partial;
    }
    // Drain a little: the peer reads slower than the writer writes, keeping the pipe full.
    const auto n = ::read(b.get(), chunk, sizeof chunk);
    if (n > 0) received.insert(received.end(), chunk, chunk + n);
    ASSERT_LT(++rounds, 1'000'000);
  }
  EXPECT_GT(partial, 10) << "the socket buffer was expected to fill up";
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(out.capacity(), 0u);
  EXPECT_EQ(received, payload);
  EXPECT_EQ(out.write_to(a.get()).n, 0) << "empty buffer: no system call, nothing written";
}

TEST(ByteBuffer, WriteToNonSocketFallsBackToWrite) {
  fd_guard guard;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  unique_fd r(p[0]), w(p[1]);
  byte_buffer out;
  out.append("pipe data");
  const auto res = out.write_to(w.get());
  EXPECT_EQ(res.n, 9);
  char got[16] = {};
  EXPECT_EQ(::read(r.get(), got, sizeof got), 9);
  EXPECT_STREQ(got, "pipe data");
}

TEST(ByteBuffer, WriteToClosedPeerReturnsEpipeWithoutSignal) {
  fd_guard guard;
  auto [a, b] = make_socketpair();
  b.reset();
  byte_buffer out;
  out.append("nobody listens");
  const auto res = out.write_to(a.get());  // SIGPIPE would kill the test process
  EXPECT_EQ(res.err, EPIPE);
  EXPECT_EQ(out.size(), 14u) << "nothing consumed on failure";
}

}  // namespace
}  // namespace netkit
