// UDP and unix-dgram: truncation, EMSGSIZE, ECONNREFUSED, zero-length datagrams, and the
// datagram echo server in every model (reliability cases 25-28).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "netkit/datagram.hpp"
#include "netkit/process.hpp"
#include "netkit/socket.hpp"
#include "support/dgram_server_child.hpp"
#include "support/fd_leak_guard.hpp"
#include "udp_echo.hpp"
#include "udp_echo_client.hpp"

namespace netkit {
namespace {

using namespace std::chrono_literals;
using test::dgram_server_child;

std::vector<std::byte> pattern(std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = std::byte(static_cast<unsigned char>(i * 7 + 3));
  return v;
}

bool readable(int fd, std::chrono::milliseconds within) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(within.count())) == 1;
}

// Receives one reply within a deadline (the client socket is blocking).
received_message reply(int fd, std::span<std::byte> buf, transport t) {
  if (!readable(fd, 5s)) return received_message{0, ETIMEDOUT};
  return recv_datagram(fd, buf, t);
}

// Case 25: a 9000-byte datagram into a 2048-byte buffer is reported with both sizes.
TEST(Udp, TruncationReportedWithBothSizes) {
  test::fd_leak_guard guard;
  auto server = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::blocking);
  auto client = open_dgram_client(local_endpoint(server.get(), transport::udp));
  auto big = pattern(9000);
  ASSERT_TRUE(send_datagram(client.get(), big).ok());
  std::vector<std::byte> buf(2048);
  auto r = recv_datagram(server.get(), buf, transport::udp);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.full_size, 9000u);
  EXPECT_EQ(r.n, 2048);
  EXPECT_EQ(std::memcmp(buf.data(), big.data(), 2048), 0);
}

TEST(Udp, UnixDgramTruncationReportedWithBothSizes) {
  test::fd_leak_guard guard;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  unique_fd a(sv[0]), b(sv[1]);
  auto big = pattern(9000);
  ASSERT_TRUE(send_datagram(a.get(), big).ok());
  std::vector<std::byte> buf(2048);
  auto r = recv_datagram(b.get(), buf, transport::unix_dgram);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.full_size, 9000u);
  EXPECT_EQ(r.n, 2048);
}

// Case 26: 65508 bytes is one over the IPv4 maximum: EMSGSIZE, and the socket still works.
TEST(Udp, OversizeSendIsEmsgsizeAndSocketStaysUsable) {
  test::fd_leak_guard guard;
  auto server = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::blocking);
  auto client = open_dgram_client(local_endpoint(server.get(), transport::udp));
  auto over = pattern(max_udp4_payload + 1);
  auto r = send_datagram(client.get(), over);
  EXPECT_EQ(r.err, EMSGSIZE);
  auto max = pattern(max_udp4_payload);
  ASSERT_TRUE(send_datagram(client.get(), max).ok());
  std::vector<std::byte> buf(65536);
  auto got = recv_datagram(server.get(), buf, transport::udp);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got.truncated);
  EXPECT_EQ(got.n, static_cast<ssize_t>(max_udp4_payload));
}

// Case 27: a connected client to a closed port sees ECONNREFUSED on its next recv.
TEST(Udp, ConnectedClientToClosedPortGetsEconnrefused) {
  test::fd_leak_guard guard;
  endpoint closed;
  {
    auto s = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::blocking);
    closed = local_endpoint(s.get(), transport::udp);
  }
  auto client = open_dgram_client(closed);
  auto data = pattern(10);
  ASSERT_TRUE(send_datagram(client.get(), data).ok());
  std::vector<std::byte> buf(64);
  ASSERT_TRUE(readable(client.get(), 2s)) << "the ICMP error should wake the reader";
  auto r = recv_datagram(client.get(), buf, transport::udp);
  EXPECT_EQ(r.err, ECONNREFUSED);
}

TEST(Udp, EchoClientReportsNoServer) {
  test::fd_leak_guard guard;
  endpoint closed;
  {
    auto s = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::blocking);
    closed = local_endpoint(s.get(), transport::udp);
  }
  clients::dgram_client_options o;
  o.connect = closed;
  o.count = 3;
  o.timeout = 300ms;
  testing::internal::CaptureStderr();
  int rc = clients::run_dgram_echo_client(o);
  auto err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("no server at " + closed.to_uri()), std::string::npos) << err;
}

struct model_case {
  std::string model;
  std::string uri;  // "" for unix-dgram in a temp dir
};

class DgramEcho : public testing::TestWithParam<model_case> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/netkit-udp-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ::unlink((dir_ + "/s").c_str());
    ::rmdir(dir_.c_str());
  }
  servers::dgram_server_options options() {
    servers::dgram_server_options o;
    o.model = GetParam().model;
    o.listen =
        endpoint::parse(GetParam().uri.empty() ? "unix-dgram://" + dir_ + "/s" : GetParam().uri);
    return o;
  }
  std::string dir_;
};

// Every size from empty (case 28: echoed as empty, not EOF) to the largest datagram.
TEST_P(DgramEcho, EchoesEverySizeIncludingEmpty) {
  test::fd_leak_guard guard;
  auto opts = options();
  dgram_server_child server(opts);
  auto client = open_dgram_client(server.local());
  std::vector<std::byte> buf(65536);
  auto max = opts.listen.kind() == transport::udp ? max_udp4_payload : std::size_t{60000};
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{100}, std::size_t{1472},
                           std::size_t{9000}, max}) {
    auto data = pattern(size);
    ASSERT_TRUE(send_datagram(client.get(), data).ok()) << size;
    auto r = reply(client.get(), buf, opts.listen.kind());
    ASSERT_TRUE(r.ok()) << size << ": " << errno_text(r.err);
    EXPECT_FALSE(r.truncated);
    ASSERT_EQ(r.n, static_cast<ssize_t>(size));
    if (size > 0) {
      EXPECT_EQ(std::memcmp(buf.data(), data.data(), size), 0);
    }
  }
  // Many in a row: all served, in order on loopback.
  for (int i = 0; i < 200; ++i) {
    auto data = pattern(static_cast<std::size_t>(i));
    ASSERT_TRUE(send_datagram(client.get(), data).ok());
    auto r = reply(client.get(), buf, opts.listen.kind());
    ASSERT_EQ(r.n, i);
  }
  auto [rc, summary] = server.stop();
  EXPECT_EQ(rc, 0);
  EXPECT_NE(summary.find("echoed=206"), std::string::npos) << summary;
}

// Case 25 at the server: a datagram over max_datagram is reported and never echoed.
TEST_P(DgramEcho, TruncatedDatagramIsNotEchoed) {
  test::fd_leak_guard guard;
  auto opts = options();
  opts.max_datagram = 2048;
  dgram_server_child server(opts);
  auto client = open_dgram_client(server.local());
  std::vector<std::byte> buf(65536);
  ASSERT_TRUE(send_datagram(client.get(), pattern(9000)).ok());
  ASSERT_TRUE(send_datagram(client.get(), pattern(10)).ok());
  auto r = reply(client.get(), buf, opts.listen.kind());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.n, 10) << "the 9000-byte datagram must not come back cut to 2048";
  auto [rc, summary] = server.stop();
  EXPECT_NE(summary.find("truncated=1"), std::string::npos) << summary;
}

// Case 27 at the server: clients that vanish before their reply (ICMP port unreachable on
// loopback) never stop the unconnected server.
TEST_P(DgramEcho, ServerSurvivesVanishedClients) {
  test::fd_leak_guard guard;
  auto opts = options();
  dgram_server_child server(opts);
  for (int i = 0; i < 20; ++i) {
    auto gone = open_dgram_client(server.local());
    ASSERT_TRUE(send_datagram(gone.get(), pattern(32)).ok());
  }  // closed before the replies arrive
  ::usleep(100'000);
  auto client = open_dgram_client(server.local());
  std::vector<std::byte> buf(64);
  ASSERT_TRUE(send_datagram(client.get(), pattern(5)).ok());
  auto r = reply(client.get(), buf, opts.listen.kind());
  ASSERT_TRUE(r.ok()) << errno_text(r.err);
  EXPECT_EQ(r.n, 5);
  EXPECT_EQ(server.stop().first, 0);
}

TEST_P(DgramEcho, EchoClientCountsEveryReply) {
  test::fd_leak_guard guard;
  auto opts = options();
  dgram_server_child server(opts);
  clients::dgram_client_options c;
  c.connect = server.local();
  c.count = 300;
  c.size = 100;
  testing::internal::CaptureStdout();
  int rc = clients::run_dgram_echo_client(c);
  auto out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("requests=300 datagrams=300 replies=300 lost=0 duplicated=0 reordered=0 "
                     "unanswered=0"),
            std::string::npos)
      << out;
}

std::string case_name(const testing::TestParamInfo<model_case>& info) {
  return info.param.model + (info.param.uri.empty() ? "_unix_dgram" : "_udp");
}

INSTANTIATE_TEST_SUITE_P(Models, DgramEcho,
                         testing::Values(model_case{"blocking", "udp://127.0.0.1:0"},
                                         model_case{"epoll", "udp://127.0.0.1:0"},
                                         model_case{"sigio", "udp://127.0.0.1:0"},
                                         model_case{"blocking", ""}, model_case{"epoll", ""},
                                         model_case{"sigio", ""}),
                         case_name);

TEST(Udp, UnknownModelIsAUsageError) {
  servers::dgram_server_options o;
  o.listen = endpoint::parse("udp://127.0.0.1:0");
  o.model = "threads";
  EXPECT_THROW(servers::run_dgram_echo_server(o), usage_error);
}

}  // namespace
}  // namespace netkit
