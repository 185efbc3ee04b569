// Socket creation and options on real sockets (port 0 on loopback only).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "netkit/error.hpp"
#include "netkit/socket.hpp"
#include "support/fd_leak_guard.hpp"

namespace netkit {
namespace {

using testing::HasSubstr;

int int_option(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  EXPECT_EQ(::getsockopt(fd, level, name, &v, &len), 0);
  return v;
}

TEST(socket, listen_on_port_zero_gets_a_port_and_cloexec_reuseaddr) {
  test::fd_leak_guard guard;
  for (const char* uri : {"tcp://127.0.0.1:0", "tcp://[::1]:0"}) {
    SCOPED_TRACE(uri);
    auto fd = listen_on(endpoint::parse(uri), io_mode::nonblocking);
    auto local = local_endpoint(fd.get(), transport::tcp);
    EXPECT_NE(local.port(), 0);
    EXPECT_TRUE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK);
    EXPECT_EQ(int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR), 1);
  }
}

TEST(socket, connect_and_peer_endpoints_match) {
  test::fd_leak_guard guard;
  auto listener = listen_on(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking);
  auto server_ep = local_endpoint(listener.get(), transport::tcp);
  auto client = connect_to(server_ep);
  unique_fd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted);
  EXPECT_EQ(peer_endpoint(client.get(), transport::tcp), server_ep);
  EXPECT_EQ(peer_endpoint(accepted.get(), transport::tcp),
            local_endpoint(client.get(), transport::tcp));
}

TEST(socket, options_are_set_and_read_back) {
  test::fd_leak_guard guard;
  auto fd = open_socket(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking);
  set_tcp_nodelay(fd.get(), true);
  EXPECT_EQ(int_option(fd.get(), IPPROTO_TCP, TCP_NODELAY), 1);
  set_nonblocking(fd.get(), true);
  EXPECT_TRUE(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK);
  set_nonblocking(fd.get(), false);
  EXPECT_FALSE(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK);
  set_reuse_port(fd.get(), true);
  EXPECT_EQ(int_option(fd.get(), SOL_SOCKET, SO_REUSEPORT), 1);
  set_send_buffer(fd.get(), 65536);
  EXPECT_GE(send_buffer_size(fd.get()), 65536);  // the kernel doubles it
  set_recv_buffer(fd.get(), 4096);
  EXPECT_GE(recv_buffer_size(fd.get()), 4096);
  EXPECT_LT(recv_buffer_size(fd.get()), 65536);
  set_linger(fd.get(), std::chrono::seconds(0));
  linger l{};
  socklen_t len = sizeof l;
  ASSERT_EQ(::getsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, &len), 0);
  EXPECT_EQ(l.l_onoff, 1);
  EXPECT_EQ(l.l_linger, 0);
  set_linger(fd.get(), std::nullopt);
  ASSERT_EQ(::getsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, &len), 0);
  EXPECT_EQ(l.l_onoff, 0);
  EXPECT_EQ(pending_error(fd.get()), 0);
}

TEST(socket, errors_name_the_operation_and_endpoint) {
  test::fd_leak_guard guard;
  auto first = listen_on(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking);
  auto taken = local_endpoint(first.get(), transport::tcp);
  try {
    listen_on(taken, io_mode::blocking);
    FAIL() << "second bind succeeded";
  } catch (const sys_error& e) {
    EXPECT_EQ(e.errno_value(), EADDRINUSE);
    EXPECT_THAT(e.what(), HasSubstr("bind " + taken.to_uri()));
    EXPECT_THAT(e.what(), HasSubstr("EADDRINUSE"));
  }
  first.reset();  // now nothing listens there (TIME_WAIT-free: never connected)
  try {
    connect_to(taken);
    FAIL() << "connect to a closed port succeeded";
  } catch (const sys_error& e) {
    EXPECT_EQ(e.errno_value(), ECONNREFUSED);
    EXPECT_THAT(e.what(), HasSubstr("connect " + taken.to_uri()));
  }
  EXPECT_THROW(set_tcp_nodelay(-1, true), sys_error);
}

TEST(socket, nonblocking_connect_reports_through_so_error) {
  test::fd_leak_guard guard;
  auto listener = listen_on(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking);
  auto ep = local_endpoint(listener.get(), transport::tcp);
  auto fd = start_connect(ep);
  EXPECT_TRUE(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK);
  pollfd p{fd.get(), POLLOUT, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(pending_error(fd.get()), 0);
}

}  // namespace
}  // namespace netkit
