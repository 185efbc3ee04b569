#include "netkit/socket.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/unix_socket.hpp"

namespace netkit {

namespace {

void set_int_option(int fd, int level, int name, int value, std::string_view what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0)
    throw_sys_error(fmt::format("setsockopt {}", what), fmt::format("fd {}", fd));
}

int get_int_option(int fd, int level, int name, std::string_view what) {
  int value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(fd, level, name, &value, &len) != 0)
    throw_sys_error(fmt::format("getsockopt {}", what), fmt::format("fd {}", fd));
  return value;
}

}  // namespace

unique_fd open_socket(const endpoint& ep, io_mode mode) {
  int flags = ep.socket_type() | SOCK_CLOEXEC;
  if (mode == io_mode::nonblocking) flags |= SOCK_NONBLOCK;
  unique_fd fd(::socket(ep.family(), flags, 0));
  if (!fd) throw_sys_error("socket", ep.to_uri());
  return fd;
}

unique_fd listen_on(const endpoint& ep, io_mode mode, const listen_options& opts) {
  auto fd = open_socket(ep, mode);
  if (!is_unix(ep.kind())) {
    // Restarting a server must not fail while old connections sit in TIME_WAIT.
    if (ep.kind() == transport::tcp) set_reuse_addr(fd.get(), true);
    if (opts.reuse_port) set_reuse_port(fd.get(), true);
    if (ep.family() == AF_INET6)
      set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
  }
  if (!is_unix(ep.kind())) {
    if (::bind(fd.get(), ep.addr(), ep.length()) != 0) throw_sys_error("bind", ep.to_uri());
    if (is_stream(ep.kind()) && ::listen(fd.get(), opts.backlog) != 0)
      throw_sys_error("listen", ep.to_uri());
    return fd;
  }
  // Stale-file reclaim, "address in use" naming the path, and the mode (unix_socket.cpp).
  bind_unix(fd.get(), ep, opts.unix_mode);
  unix_socket_file created(ep);  // removed again if listen fails
  if (is_stream(ep.kind()) && ::listen(fd.get(), opts.backlog) != 0)
    throw_sys_error("listen", ep.to_uri());
  created.release();
  return fd;
}

unique_fd connect_to(const endpoint& ep, io_mode mode) {
  auto fd = open_socket(ep, io_mode::blocking);
  int rc;
  do {
    rc = ::connect(fd.get(), ep.addr(), ep.length());
  } while (rc != 0 && errno == EINTR);
  // connect interrupted by a signal keeps going in the background (EALREADY/EISCONN
  // on retry); the loop above only sees EINTR before any retry succeeded.
  if (rc != 0 && errno != EISCONN) throw_sys_error("connect", ep.to_uri());
  if (mode == io_mode::nonblocking) set_nonblocking(fd.get(), true);
  return fd;
}

unique_fd start_connect(const endpoint& ep) {
  auto fd = open_socket(ep, io_mode::nonblocking);
  if (::connect(fd.get(), ep.addr(), ep.length()) != 0 && errno != EINPROGRESS && errno != EINTR)
    throw_sys_error("connect", ep.to_uri());
  return fd;
}

endpoint local_endpoint(int fd, transport t) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    throw_sys_error("getsockname", fmt::format("fd {}", fd));
  return endpoint::from_sockaddr(t, reinterpret_cast<sockaddr*>(&ss), len);
}

endpoint peer_endpoint(int fd, transport t) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    throw_sys_error("getpeername", fmt::format("fd {}", fd));
  return endpoint::from_sockaddr(t, reinterpret_cast<sockaddr*>(&ss), len);
}

void set_nonblocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw_sys_error("fcntl F_GETFL", fmt::format("fd {}", fd));
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) != 0) throw_sys_error("fcntl F_SETFL", fmt::format("fd {}", fd));
}

void set_reuse_addr(int fd, bool on) {
  set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, on, "SO_REUSEADDR");
}
void set_reuse_port(int fd, bool on) {
  set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, on, "SO_REUSEPORT");
}
void set_tcp_nodelay(int fd, bool on) {
  set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, on, "TCP_NODELAY");
}
void set_send_buffer(int fd, int bytes) {
  set_int_option(fd, SOL_SOCKET, SO_SNDBUF, bytes, "SO_SNDBUF");
}
void set_recv_buffer(int fd, int bytes) {
  set_int_option(fd, SOL_SOCKET, SO_RCVBUF, bytes, "SO_RCVBUF");
}
int send_buffer_size(int fd) {
  return get_int_option(fd, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
}
int recv_buffer_size(int fd) {
  return get_int_option(fd, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF");
}
int pending_error(int fd) {
  return get_int_option(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR");
}

void set_linger(int fd, std::optional<std::chrono::seconds> timeout) {
  linger value{};
  value.l_onoff = timeout.has_value();
  value.l_linger = timeout ? static_cast<int>(timeout->count()) : 0;
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &value, sizeof value) != 0)
    throw_sys_error("setsockopt SO_LINGER", fmt::format("fd {}", fd));
}

bool is_transient_accept_error(int err) noexcept {
  switch (err) {
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM:  // firewall rules refused this one connection
      return true;
    default:
      return false;
  }
}

}  // namespace netkit
