#include "lab_support.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "netkit/error.hpp"
#include "netkit/socket.hpp"
#include "support/children.hpp"

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

std::string child_result::describe() const {
  std::string text = servers::support::describe_exit(status);
  if (WIFSIGNALED(status)) text += fmt::format(" ({})", sigabbrev_np(WTERMSIG(status)) ?: "?");
  if (timed_out) text += " (killed at the deadline)";
  return text;
}

bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

child_result run_child(const std::function<int(int out_fd)>& body,
                       std::chrono::milliseconds timeout) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_sys_error("pipe2", "lab child");
  unique_fd read_end(fds[0]);
  unique_fd write_end(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) throw_sys_error("fork", "lab child");
  if (pid == 0) {
    read_end.reset();
    int code = 70;
    try {
      code = body(write_end.get());
    } catch (const std::exception& e) {
      write_all(write_end.get(), fmt::format("error={}\n", e.what()));
    }
    ::_exit(code);
  }
  write_end.reset();
  child_result result;
  auto until = std::chrono::steady_clock::now() + timeout;
  std::array<char, 4096> buffer;
  // Bounded by the deadline.
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_readable(read_end.get(), left)) break;
    ssize_t n = ::read(read_end.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buffer.data(), static_cast<std::size_t>(n));
  }
  for (;;) {
    pid_t r = ::waitpid(pid, &result.status, WNOHANG);
    if (r == pid) return result;
    if (r < 0 && errno != EINTR) throw_sys_error("waitpid", fmt::format("pid {}", pid));
    if (std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(1ms);
  }
  result.timed_out = true;
  servers::support::kill_and_reap(pid);
  result.status = SIGKILL;  // the wait status of a process killed by SIGKILL
  return result;
}

char process_state(pid_t pid) {
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text;
  if (!stat || !std::getline(stat, text)) return 0;
  // "PID (COMM) S ...": COMM may hold spaces and parentheses, so look after the last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return 0;
  return text[close + 2];
}

std::string read_sys_value(const char* path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

}  // namespace netkit::labs
