#include "lab_support.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <thread>

#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace netkit::labs {

endpoint loopback_tcp(std::uint16_t port) {
  return endpoint::parse(fmt::format("tcp://127.0.0.1:{}", port));
}

endpoint unspecified_tcp(int family) {
  return endpoint::parse(family == AF_INET6 ? "tcp://[::]:0" : "tcp://0.0.0.0:0");
}

std::string host_port(const endpoint& ep) {
  return ep.family() == AF_INET6 ? fmt::format("[{}]:{}", ep.host(), ep.port())
                                 : fmt::format("{}:{}", ep.host(), ep.port());
}

void set_int_option(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0)
    throw_sys_error(fmt::format("setsockopt {}", what), fmt::format("fd {}", fd));
}

unique_fd connect_small(const endpoint& to, int buffer_bytes) {
  auto fd = open_socket(to, io_mode::blocking);
  if (buffer_bytes > 0) {
    set_send_buffer(fd.get(), buffer_bytes);
    set_recv_buffer(fd.get(), buffer_bytes);
  }
  if (::connect(fd.get(), to.addr(), to.length()) != 0) throw_sys_error("connect", to.to_uri());
  return fd;
}

tcp_pair connect_pair(int buffer_bytes) {
  auto listener = listen_on(loopback_tcp(), io_mode::blocking, {.backlog = 1});
  if (buffer_bytes > 0) {
    // Inherited by the socket the handshake creates.
    set_send_buffer(listener.get(), buffer_bytes);
    set_recv_buffer(listener.get(), buffer_bytes);
  }
  auto at = local_endpoint(listener.get(), transport::tcp);
  tcp_pair pair;
  pair.client = connect_small(at, buffer_bytes);
  if (!wait_readable(listener.get(), 2000ms)) throw_sys_error(ETIMEDOUT, "accept", at.to_uri());
  pair.server.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!pair.server) throw_sys_error("accept", at.to_uri());
  pair.client_end = local_endpoint(pair.client.get(), transport::tcp);
  pair.server_end = local_endpoint(pair.server.get(), transport::tcp);
  return pair;
}

std::size_t fill(int fd) {
  static const std::array<char, 4096> bytes{};
  constexpr std::size_t bound = std::size_t{64} << 20;
  std::size_t total = 0;
  while (total < bound) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      total += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    throw_sys_error("send", fmt::format("fd {}", fd));
  }
  return total;
}

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    int r = ::poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) throw_sys_error("poll", fmt::format("fd {}", fd));
  }
}

std::size_t drain(int fd, std::chrono::milliseconds timeout, bool* eof) {
  std::array<char, 65536> buffer;
  std::size_t total = 0;
  if (eof) *eof = false;
  auto until = std::chrono::steady_clock::now() + timeout;
  // Bounded by the deadline.
  while (std::chrono::steady_clock::now() < until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (!wait_readable(fd, left)) break;
    ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n > 0) {
      total += static_cast<std::size_t>(n);
    } else if (n == 0) {
      if (eof) *eof = true;
      break;
    } else if (errno != EINTR && errno != EAGAIN) {
      throw_sys_error("recv", fmt::format("fd {}", fd));
    }
  }
  return total;
}

std::string end_state::describe() const {
  if (!state) return "no socket in the kernel's table";
  return fmt::format("{} ({})", inspect::state_name(*state), source);
}

end_state observe_end(lab_context& ctx, int fd, const endpoint& local, const endpoint& remote) {
  end_state out;
  auto table = ctx.tcp_table({.port = local.port()});
  if (const auto* e = inspect::find_connection(table, local, remote)) {
    out.state = e->state;
    out.entry = *e;
    out.source = table.source == inspect::table_source::netlink ? "sock_diag"
                 : local.family() == AF_INET6                   ? "/proc/net/tcp6"
                                                                : "/proc/net/tcp";
    return out;
  }
  if (fd >= 0) {
    out.state = inspect::read_tcp_info(fd).state;
    out.source = "TCP_INFO";
  }
  return out;
}

end_state wait_for_state(lab_context& ctx, int fd, const endpoint& local, const endpoint& remote,
                         inspect::tcp_state want, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto seen = observe_end(ctx, fd, local, remote);
    if (seen.state == want || std::chrono::steady_clock::now() >= until) return seen;
    std::this_thread::sleep_for(1ms);
  }
}

}  // namespace netkit::labs
