// datagram_batch (recvmmsg/sendmmsg): batches larger than the capacity, truncation inside
// a batch, replies to many senders each getting exactly its own datagrams back, and the
// reply path under EAGAIN (waiting and dropping); then the epoll datagram model built on it.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "netkit/datagram.hpp"
#include "netkit/socket.hpp"
#include "support/dgram_server_child.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/test_env.hpp"
#include "udp_echo.hpp"

namespace netkit {
namespace {

using namespace std::chrono_literals;

// Sender `who`'s datagram number `seq`, `size` bytes: its first 8 bytes name both, the
// rest is a pattern of both, so a reply delivered to the wrong sender, or mixed with
// another, never compares equal.
std::vector<std::byte> tagged(std::uint32_t who, std::uint32_t seq, std::size_t size) {
  std::vector<std::byte> v(size);
  for (std::size_t i = 0; i < size; ++i)
    v[i] = std::byte(static_cast<unsigned char>(who * 31 + seq * 7 + i));
  if (size >= 8) {
    std::memcpy(v.data(), &who, 4);
    std::memcpy(v.data() + 4, &seq, 4);
  }
  return v;
}

bool readable(int fd, std::chrono::milliseconds within) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(within.count())) == 1;
}

std::string abstract_name(const char* what) {
  static int n = 0;
  return "unix-dgram://@netkit-batch-" + std::to_string(::getpid()) + "-" + what + "-" +
         std::to_string(n++);
}

// Waits (bounded) until `sock` has something to read, then one receive into `batch`.
io_result receive_within(datagram_batch& batch, int sock) {
  if (!readable(sock, 5s)) return {0, ETIMEDOUT};
  return batch.receive(sock);
}

// unix-dgram delivers synchronously, so all ten are queued before the first receive (the
// receiver's queue holds max_dgram_qlen + 1: 11 by default).
TEST(DatagramBatch, MoreQueuedThanCapacityComesInSeveralBatchesInOrder) {
  test::fd_leak_guard guard;
  const auto at = endpoint::parse(abstract_name("order"));
  auto server = listen_on(at, io_mode::nonblocking);
  auto client = open_dgram_client(at);
  const auto self = local_endpoint(client.get(), transport::unix_dgram);
  constexpr std::uint32_t total = 10;
  for (std::uint32_t i = 0; i < total; ++i)
    ASSERT_TRUE(send_datagram(client.get(), tagged(0, i, 100)).ok());
  datagram_batch batch(4, 2048);
  std::vector<std::size_t> sizes;
  std::uint32_t seq = 0;
  // Bounded: 10 datagrams in batches of at most 4, then EAGAIN.
  for (int call = 0; call < 5; ++call) {
    auto r = call == 0 ? receive_within(batch, server.get()) : batch.receive(server.get());
    if (r.would_block()) break;
    ASSERT_TRUE(r.ok()) << errno_text(r.err);
    sizes.push_back(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i, ++seq) {
      auto d = batch[i];
      auto want = tagged(0, seq, 100);
      ASSERT_EQ(d.data.size(), want.size());
      EXPECT_EQ(std::memcmp(d.data.data(), want.data(), want.size()), 0) << seq;
      EXPECT_FALSE(d.truncated);
      EXPECT_EQ(endpoint::from_sockaddr(transport::unix_dgram, d.from, d.from_len), self);
    }
  }
  EXPECT_EQ(seq, total);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{4, 4, 2}));
}

TEST(DatagramBatch, TruncatedDatagramIsMarkedWithItsSizeAndTheRestAreWhole) {
  test::fd_leak_guard guard;
  auto server = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::nonblocking);
  auto client = open_dgram_client(local_endpoint(server.get(), transport::udp));
  const std::size_t sizes[] = {10, 3000, 0};
  for (std::uint32_t i = 0; i < 3; ++i)
    ASSERT_TRUE(send_datagram(client.get(), tagged(0, i, sizes[i])).ok());
  struct seen {
    std::size_t kept, full;
    bool truncated, same;
  };
  std::vector<seen> got;
  datagram_batch batch(8, 1024);
  // Bounded: three datagrams, at least one per receive.
  for (int call = 0; call < 3 && got.size() < 3; ++call) {
    auto r = receive_within(batch, server.get());
    ASSERT_TRUE(r.ok()) << errno_text(r.err);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto d = batch[i];
      auto want = tagged(0, static_cast<std::uint32_t>(got.size()), sizes[got.size()]);
      // An empty datagram has no bytes to compare (and memcmp may not be given the null
      // data() of an empty buffer).
      bool same = d.data.size() <= want.size() &&
                  (d.data.empty() || std::memcmp(d.data.data(), want.data(), d.data.size()) == 0);
      got.push_back({d.data.size(), d.full_size, d.truncated, same});
    }
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_FALSE(got[0].truncated);
  EXPECT_EQ(got[0].kept, 10u);
  EXPECT_TRUE(got[1].truncated);
  EXPECT_EQ(got[1].full, 3000u);
  EXPECT_EQ(got[1].kept, 1024u) << "the first max_datagram bytes are kept";
  EXPECT_FALSE(got[2].truncated);
  EXPECT_EQ(got[2].kept, 0u) << "an empty datagram is a datagram";
  for (const auto& g : got)
    EXPECT_TRUE(g.same);
}

// 100 senders, 3 datagrams each, all queued before the server reads: every batch mixes
// senders, and each sender must get back exactly its own three, byte for byte.
TEST(DatagramBatch, EchoToManySendersReturnsEachItsOwnDatagrams) {
  test::fd_leak_guard guard;
  auto server = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::nonblocking);
  const auto at = local_endpoint(server.get(), transport::udp);
  int rcvbuf = 4 << 20;  // 300 small datagrams, with room (the kernel caps it at rmem_max)
  ::setsockopt(server.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  constexpr std::uint32_t senders = 100, each = 3;
  std::vector<unique_fd> clients;
  for (std::uint32_t c = 0; c < senders; ++c) {
    clients.push_back(open_dgram_client(at));
    for (std::uint32_t s = 0; s < each; ++s)
      ASSERT_TRUE(send_datagram(clients.back().get(), tagged(c, s, 64 + c)).ok());
  }
  datagram_batch batch(64, 2048);
  std::size_t echoed = 0;
  // Bounded: 300 datagrams, at least one per pass.
  for (int pass = 0; pass < 300 && echoed < senders * each; ++pass) {
    auto r = receive_within(batch, server.get());
    ASSERT_TRUE(r.ok()) << errno_text(r.err);
    for (std::size_t i = 0; i < batch.size(); ++i)
      batch.queue_reply(i, batch[i].data.size());
    auto s = batch.send_queued(server.get());
    EXPECT_EQ(s.failed, 0u);
    EXPECT_FALSE(s.would_block);
    EXPECT_EQ(batch.queued(), batch.size());
    for (std::size_t k = 0; k < batch.queued(); ++k)
      EXPECT_FALSE(batch.refused(k)) << k;
    echoed += s.sent;
  }
  ASSERT_EQ(echoed, senders * each);
  std::vector<std::byte> buf(4096);
  for (std::uint32_t c = 0; c < senders; ++c) {
    for (std::uint32_t s = 0; s < each; ++s) {
      ASSERT_TRUE(readable(clients[c].get(), 5s)) << "sender " << c << " reply " << s;
      auto r = recv_datagram(clients[c].get(), buf, transport::udp);
      ASSERT_TRUE(r.ok());
      auto want = tagged(c, s, 64 + c);
      ASSERT_EQ(static_cast<std::size_t>(r.n), want.size()) << c << "/" << s;
      EXPECT_EQ(std::memcmp(buf.data(), want.data(), want.size()), 0) << c << "/" << s;
    }
    EXPECT_FALSE(readable(clients[c].get(), 0ms)) << "sender " << c << " got a stranger's reply";
  }
}

// A unix-dgram client that does not read, and a batch of `count` datagrams from it with
// their replies queued. The server first fills the client's receive queue (it holds
// max_dgram_qlen + 1 datagrams, 11 by default), so the replies' sendmmsg sees EAGAIN.
struct stuck_client {
  unique_fd server, client;
  std::size_t prefilled = 0;
  static constexpr std::size_t count = 8;  // fits the server's queue: one batch takes all

  explicit stuck_client(datagram_batch& batch) {
    const auto at = endpoint::parse(abstract_name("stuck"));
    server = listen_on(at, io_mode::nonblocking);
    client = open_dgram_client(at, io_mode::nonblocking);
    for (std::uint32_t s = 0; s < count; ++s)
      EXPECT_TRUE(send_datagram(client.get(), tagged(1, s, 500)).ok()) << s;
    auto r = receive_within(batch, server.get());
    EXPECT_TRUE(r.ok()) << errno_text(r.err);
    EXPECT_EQ(batch.size(), count);
    if (batch.size() == 0) return;
    const auto to =
        endpoint::from_sockaddr(transport::unix_dgram, batch[0].from, batch[0].from_len);
    // Bounded by the client's queue; 1,000 only guards against a kernel without a limit.
    while (prefilled < 1000 && send_datagram(server.get(), tagged(9, 0, 500), &to).ok())
      ++prefilled;
    EXPECT_LT(prefilled, 1000u);
    for (std::size_t i = 0; i < batch.size(); ++i)
      batch.queue_reply(i, batch[i].data.size());
  }
};

TEST(DatagramBatch, ReplyBehindEagainWaitsAndGoesOnceTheReceiverReads) {
  test::fd_leak_guard guard;
  datagram_batch batch(64, 1024);
  stuck_client c(batch);
  if (batch.size() != stuck_client::count) return;  // reported by stuck_client
  auto first = batch.send_queued(c.server.get(), when_full::wait);
  ASSERT_TRUE(first.would_block) << "sent all " << first.sent << ": no EAGAIN provoked";
  EXPECT_EQ(first.failed, 0u);
  EXPECT_EQ(first.sent, 0u);
  EXPECT_EQ(batch.pending(), stuck_client::count);
  // The client reads; each read makes room and the rest goes, in order, none lost.
  std::vector<std::byte> buf(2048);
  std::size_t fillers = 0;
  std::uint32_t next = 0;
  for (int round = 0; round < 1000 && next < stuck_client::count; ++round) {
    auto r = recv_datagram(c.client.get(), buf, transport::unix_dgram);
    if (r.ok()) {
      ASSERT_EQ(r.n, 500);
      std::uint32_t who;
      std::memcpy(&who, buf.data(), 4);
      if (who == 9) {
        ++fillers;
      } else {
        auto want = tagged(1, next, 500);
        ASSERT_EQ(std::memcmp(buf.data(), want.data(), want.size()), 0) << next;
        ++next;
      }
    }
    if (batch.pending() > 0) {
      auto more = batch.send_queued(c.server.get(), when_full::wait);
      EXPECT_EQ(more.failed, 0u);
    }
  }
  EXPECT_EQ(fillers, c.prefilled);
  EXPECT_EQ(next, stuck_client::count);
  EXPECT_EQ(batch.pending(), 0u);
}

TEST(DatagramBatch, ReplyBehindEagainIsDroppedAndCountedWhenAsked) {
  test::fd_leak_guard guard;
  datagram_batch batch(64, 1024);
  stuck_client c(batch);
  if (batch.size() != stuck_client::count) return;
  auto r = batch.send_queued(c.server.get(), when_full::drop);
  EXPECT_FALSE(r.would_block);
  EXPECT_EQ(r.failed, stuck_client::count) << "the receiver's queue was full for all";
  EXPECT_EQ(r.err, EAGAIN);
  EXPECT_EQ(r.sent, 0u);
  EXPECT_EQ(batch.pending(), 0u);
  // Each refused reply is known by its place in the queue.
  ASSERT_EQ(batch.queued(), stuck_client::count);
  for (std::size_t k = 0; k < batch.queued(); ++k)
    EXPECT_TRUE(batch.refused(k)) << k;
}

TEST(DatagramBatch, ZeroCapacityIsRefused) {
  EXPECT_THROW(datagram_batch(0, 1024), std::invalid_argument);
  EXPECT_THROW(datagram_batch(4, 0), std::invalid_argument);
}

// UDP segmentation (UDP_SEGMENT). One sender's datagrams, in this order: 5 x 200 B and a
// 120 B one (a shorter one ends a run), 3 x 300 B (larger: a new run), an empty one (never
// coalesced), 2 x 50 B; then another sender's 2 x 200 B (another address: a new run).
struct segmentation_case {
  static constexpr std::size_t sizes[] = {200, 200, 200, 200, 200, 120, 300, 300, 300, 0, 50, 50};
  static constexpr std::size_t first_count = std::size(sizes), total = first_count + 2;
  unique_fd server, first, second;
  datagram_batch batch{64, 2048};

  segmentation_case() {
    server = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::nonblocking);
    const auto at = local_endpoint(server.get(), transport::udp);
    first = open_dgram_client(at);
    second = open_dgram_client(at);
  }
  void send_requests() {
    for (std::uint32_t s = 0; s < first_count; ++s)
      EXPECT_TRUE(send_datagram(first.get(), tagged(1, s, sizes[s])).ok()) << s;
    for (std::uint32_t s = 0; s < 2; ++s)
      EXPECT_TRUE(send_datagram(second.get(), tagged(2, s, 200)).ok()) << s;
  }
  // Receives all of them in one batch (loopback delivers during the send; the pause only
  // covers a softirq deferred on a busy machine) and queues every echo.
  void receive_all() {
    ASSERT_TRUE(readable(server.get(), 5s));
    std::this_thread::sleep_for(50ms);
    auto r = batch.receive(server.get());
    ASSERT_TRUE(r.ok()) << errno_text(r.err);
    ASSERT_EQ(batch.size(), total);
    for (std::size_t i = 0; i < batch.size(); ++i)
      batch.queue_reply(i, batch[i].data.size());
  }
  // Turns a boolean option of the server's socket on.
  void enable(int level, int option) {
    int on = 1;
    ASSERT_EQ(::setsockopt(server.get(), level, option, &on, sizeof on), 0) << errno_text(errno);
  }
  // The whole exchange: the requests, one batch received, `before_send`, every echo sent.
  batch_send_result echo_all(const std::function<void()>& before_send = {}) {
    send_requests();
    receive_all();
    if (before_send) before_send();
    auto r = batch.send_queued(server.get());
    EXPECT_EQ(r.sent, total);
    EXPECT_EQ(r.failed, 0u);
    return r;
  }
  // Each sender gets its own datagrams back, one per request, whole and in order.
  void expect_echoes() {
    std::vector<std::byte> buf(2048);
    auto expect = [&](int fd, std::uint32_t who, std::size_t count, auto size_of) {
      for (std::uint32_t s = 0; s < count; ++s) {
        ASSERT_TRUE(readable(fd, 5s)) << who << "/" << s;
        auto r = recv_datagram(fd, buf, transport::udp);
        ASSERT_TRUE(r.ok()) << errno_text(r.err);
        auto want = tagged(who, s, size_of(s));
        ASSERT_EQ(static_cast<std::size_t>(r.n), want.size()) << who << "/" << s;
        if (!want.empty()) {
          EXPECT_EQ(std::memcmp(buf.data(), want.data(), want.size()), 0) << who << "/" << s;
        }
      }
      EXPECT_FALSE(readable(fd, 0ms)) << "sender " << who << ": a datagram too many";
    };
    expect(first.get(), 1, first_count, [](std::uint32_t s) { return sizes[s]; });
    expect(second.get(), 2, 2, [](std::uint32_t) { return std::size_t{200}; });
  }
};

TEST(DatagramBatch, RepliesToOneSenderLeaveAsSegmentedSendsAndArriveOneDatagramEach) {
  test::fd_leak_guard guard;
  segmentation_case c;
  auto r = c.echo_all();
  ASSERT_NE(c.batch.segmentation(), udp_segmentation::off)
      << "this kernel refused UDP_SEGMENT on loopback";
  // Runs: 5 x 200 + 120, 3 x 300, the empty one alone, 2 x 50, the second sender's 2.
  EXPECT_EQ(r.segmented_sends, 4u);
  EXPECT_EQ(r.coalesced, 6u + 3 + 2 + 2);
  c.expect_echoes();
}

TEST(DatagramBatch, SegmentationOffSendsOneEntryPerReply) {
  test::fd_leak_guard guard;
  segmentation_case c;
  c.batch.set_segmentation(udp_segmentation::off);
  auto r = c.echo_all();
  EXPECT_EQ(r.coalesced, 0u);
  EXPECT_EQ(r.segmented_sends, 0u);
  c.expect_echoes();
}

// A batch that all answers one sender is coalesced only when asked (always): by default
// that sender gets its first reply without waiting for the whole run.
TEST(DatagramBatch, LoneReceiverIsCoalescedOnlyWithAlways) {
  test::fd_leak_guard guard;
  segmentation_case c;
  std::vector<std::byte> buf(2048);
  for (auto mode : {udp_segmentation::several_receivers, udp_segmentation::always}) {
    for (std::uint32_t s = 0; s < 4; ++s)
      ASSERT_TRUE(send_datagram(c.first.get(), tagged(1, s, 100)).ok());
    ASSERT_TRUE(readable(c.server.get(), 5s));
    std::this_thread::sleep_for(50ms);  // as receive_all: all four in one batch
    c.batch.set_segmentation(mode);
    ASSERT_TRUE(c.batch.receive(c.server.get()).ok());
    ASSERT_EQ(c.batch.size(), 4u);
    for (std::size_t i = 0; i < c.batch.size(); ++i)
      c.batch.queue_reply(i, c.batch[i].data.size());
    auto r = c.batch.send_queued(c.server.get());
    EXPECT_EQ(r.sent, 4u);
    EXPECT_EQ(r.coalesced, mode == udp_segmentation::always ? 4u : 0u);
    for (std::uint32_t s = 0; s < 4; ++s) {
      ASSERT_TRUE(readable(c.first.get(), 5s)) << s;
      auto got = recv_datagram(c.first.get(), buf, transport::udp);
      ASSERT_TRUE(got.ok());
      auto want = tagged(1, s, 100);
      ASSERT_EQ(static_cast<std::size_t>(got.n), want.size());
      EXPECT_EQ(std::memcmp(buf.data(), want.data(), want.size()), 0) << s;
    }
  }
}

// SO_NO_CHECK (no UDP checksum) makes the kernel refuse every GSO send with EINVAL: the
// batch turns segmentation off and sends each reply on its own, none lost.
TEST(DatagramBatch, KernelThatRefusesSegmentationGetsEachReplyAlone) {
  test::fd_leak_guard guard;
  segmentation_case c;
  c.enable(SOL_SOCKET, SO_NO_CHECK);
  auto r = c.echo_all();
  EXPECT_EQ(r.coalesced, 0u);
  EXPECT_EQ(c.batch.segmentation(), udp_segmentation::off);
  c.expect_echoes();
}

// An error that may belong to one reply (here the ICMP port-unreachable an earlier send
// left pending on the socket, IP_RECVERR) splits the run: its replies go one by one, and
// segmentation stays on for the next.
TEST(DatagramBatch, RefusedRunIsRetriedOneReplyAtATime) {
  test::fd_leak_guard guard;
  segmentation_case c;
  c.enable(IPPROTO_IP, IP_RECVERR);
  auto r = c.echo_all([&] {
    // After the receive (which would report it first): a send to a port nobody listens
    // on, bound and closed. Loopback answers with the ICMP error during the send.
    auto gone = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::blocking);
    const auto nowhere = local_endpoint(gone.get(), transport::udp);
    gone.reset();
    ASSERT_TRUE(send_datagram(c.server.get(), tagged(9, 0, 10), &nowhere).ok());
    // Wait for the error itself (POLLERR needs no request), not a fixed pause: arriving
    // after the first run it would split a later one and change the count.
    pollfd error{c.server.get(), 0, 0};
    const auto within = std::chrono::duration_cast<std::chrono::milliseconds>(test::stretch(5s));
    ASSERT_EQ(::poll(&error, 1, static_cast<int>(within.count())), 1)
        << "no ICMP error reached the server's socket";
    ASSERT_TRUE(error.revents & POLLERR) << error.revents;
  });
  EXPECT_EQ(c.batch.segmentation(), udp_segmentation::several_receivers);
  // The first run went alone (6 replies), the later runs still coalesced.
  EXPECT_EQ(r.coalesced, 3u + 2 + 2);
  c.expect_echoes();
}

// The epoll datagram model (recvmmsg/sendmmsg): 100 concurrent senders, one datagram
// each in flight per round (100 at once stay within a default receive buffer: more, and the
// kernel would drop some before the server saw them), each gets exactly its own back.
TEST(DgramEpollModel, ManyConcurrentSendersEachGetTheirOwnDatagrams) {
  test::fd_leak_guard guard;
  servers::dgram_server_options o;
  o.model = "epoll";
  o.listen = endpoint::parse("udp://127.0.0.1:0");
  o.max_datagram = 2048;
  test::dgram_server_child server(o);
  constexpr std::uint32_t senders = 100, rounds = 5;
  auto size_of = [](std::uint32_t c, std::uint32_t s) { return 64 + (c * 13 + s * 101) % 400; };
  std::vector<unique_fd> clients;
  for (std::uint32_t c = 0; c < senders; ++c)
    clients.push_back(open_dgram_client(server.local()));
  std::vector<std::byte> buf(4096);
  for (std::uint32_t s = 0; s < rounds; ++s) {
    for (std::uint32_t c = 0; c < senders; ++c)
      ASSERT_TRUE(send_datagram(clients[c].get(), tagged(c, s, size_of(c, s))).ok());
    for (std::uint32_t c = 0; c < senders; ++c) {
      ASSERT_TRUE(readable(clients[c].get(), 5s)) << "sender " << c << " round " << s;
      auto r = recv_datagram(clients[c].get(), buf, transport::udp);
      ASSERT_TRUE(r.ok());
      auto want = tagged(c, s, size_of(c, s));
      ASSERT_EQ(static_cast<std::size_t>(r.n), want.size()) << c << "/" << s;
      EXPECT_EQ(std::memcmp(buf.data(), want.data(), want.size()), 0) << c << "/" << s;
    }
  }
  for (std::uint32_t c = 0; c < senders; ++c)
    EXPECT_FALSE(readable(clients[c].get(), 0ms)) << "sender " << c << " got a stranger's reply";
  auto [rc, summary] = server.stop();
  EXPECT_EQ(rc, 0);
  EXPECT_NE(summary.find("received=500 echoed=500 truncated=0"), std::string::npos) << summary;
  EXPECT_NE(summary.find("send_failed=0"), std::string::npos) << summary;
}

// unix-dgram: a client that stops reading holds its replies in its receive queue, and
// those stay charged to the server's send buffer (unix(7)); once that is full, the server
// drops and counts replies (when_full::drop) instead of waiting on one receiver: it keeps
// receiving, and serves again as soon as the stuck socket goes.
TEST(DgramEpollModel, StuckUnixDgramReceiverNeitherStallsTheServerNorLosesSilently) {
  test::fd_leak_guard guard;
  servers::dgram_server_options o;
  o.model = "epoll";
  o.listen = endpoint::parse(abstract_name("model"));
  test::dgram_server_child server(o);
  constexpr std::uint32_t flood = 2000;  // 2 MB: well over a default send buffer's worth
  {
    auto stuck = open_dgram_client(server.local(), io_mode::nonblocking);
    std::uint32_t sent = 0;
    // Bounded: the server drains as fast as we send; EAGAIN only pauses this loop.
    for (int tries = 0; tries < 1'000'000 && sent < flood; ++tries)
      if (send_datagram(stuck.get(), tagged(2, sent, 1000)).ok()) ++sent;
    ASSERT_EQ(sent, flood);
  }  // closed: its queue, and the server's send buffer with it, is freed
  auto other = open_dgram_client(server.local());
  std::vector<std::byte> buf(256);
  for (std::uint32_t s = 0; s < 20; ++s) {
    ASSERT_TRUE(send_datagram(other.get(), tagged(3, s, 100)).ok());
    ASSERT_TRUE(readable(other.get(), 5s)) << "reply " << s << " never came";
    auto r = recv_datagram(other.get(), buf, transport::unix_dgram);
    ASSERT_EQ(r.n, 100);
    auto want = tagged(3, s, 100);
    EXPECT_EQ(std::memcmp(buf.data(), want.data(), 100), 0);
  }
  auto [rc, summary] = server.stop();
  EXPECT_EQ(rc, 0);
  auto field = [&](const std::string& key) {
    auto at = summary.find(" " + key + "=");
    return at == std::string::npos ? -1L : std::stol(summary.substr(at + key.size() + 2));
  };
  EXPECT_EQ(field("received"), flood + 20) << summary;
  EXPECT_GT(field("send_failed"), 0) << summary;
  EXPECT_EQ(field("echoed") + field("send_failed"), flood + 20) << "every one echoed or counted";
}

}  // namespace
}  // namespace netkit
