#include "support/client_io.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace netkit::test {

unique_fd connect_client(const endpoint& ep) {
  auto fd = connect_to(ep, io_mode::blocking);
  if (ep.kind() == transport::tcp) set_tcp_nodelay(fd.get(), true);
  return fd;
}

unique_fd start_client(const endpoint& ep) {
  auto fd = start_connect(ep);
  if (ep.kind() == transport::tcp) set_tcp_nodelay(fd.get(), true);
  return fd;
}

void set_reset_on_close(int fd) {
  set_linger(fd, std::chrono::seconds(0));
}

void send_all(int fd, std::span<const std::byte> bytes) {
  std::size_t done = 0;
  // Bound: each iteration sends at least one byte or throws.
  while (done < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_sys_error("send", fmt::format("test client fd {}", fd));
    }
    done += static_cast<std::size_t>(n);
  }
}

void send_all(int fd, std::string_view text) {
  send_all(fd, std::as_bytes(std::span(text.data(), text.size())));
}

std::string_view to_string(read_end e) noexcept {
  switch (e) {
    case read_end::data:
      return "data";
    case read_end::eof:
      return "EOF";
    case read_end::reset:
      return "reset";
    case read_end::timeout:
      return "timeout";
  }
  return "?";
}

namespace {

// One wait+recv step. Returns false when the outcome is final (eof/reset/timeout).
bool read_step(int fd, read_outcome& out, std::size_t max, deadline until) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
  if (left.count() <= 0) {
    out.end = read_end::timeout;
    return false;
  }
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(left.count()));
  if (r < 0 && errno != EINTR) throw_sys_error("poll", "test client");
  if (r <= 0) return true;  // deadline re-checked above
  std::byte buf[65536];
  ssize_t n = ::recv(fd, buf, std::min(max, sizeof buf), MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return true;
    out.end = read_end::reset;
    out.err = errno;
    return false;
  }
  if (n == 0) {
    out.end = read_end::eof;
    return false;
  }
  out.bytes.insert(out.bytes.end(), buf, buf + n);
  out.end = read_end::data;
  return true;
}

}  // namespace

read_outcome read_exactly(int fd, std::size_t n, deadline until) {
  read_outcome out;
  // Bound: the deadline.
  while (out.bytes.size() < n)
    if (!read_step(fd, out, n - out.bytes.size(), until)) return out;
  out.end = read_end::data;
  return out;
}

read_outcome read_line(int fd, deadline until) {
  read_outcome out;
  // One byte at a time is fine for short test lines and never reads past the line.
  for (;;) {
    if (!out.bytes.empty() && out.bytes.back() == std::byte{'\n'}) {
      out.end = read_end::data;
      return out;
    }
    if (!read_step(fd, out, 1, until)) return out;
  }
}

read_outcome wait_for_close(int fd, deadline until) {
  read_outcome out;
  for (;;) {
    if (!read_step(fd, out, 65536, until)) {
      if (out.end == read_end::timeout && !out.bytes.empty()) out.end = read_end::data;
      return out;
    }
  }
}

std::string line_round_trip(int fd, std::string_view line, deadline until) {
  try {
    send_all(fd, fmt::format("{}\n", line));
  } catch (const std::exception& e) {
    return e.what();
  }
  auto r = read_line(fd, until);
  if (r.end != read_end::data)
    return fmt::format("no echo of '{}': {} after {} bytes{}", line, to_string(r.end),
                       r.bytes.size(), r.err ? " (" + errno_text(r.err) + ")" : "");
  if (r.text() != fmt::format("{}\n", line))
    return fmt::format("echo of '{}' was '{}'", line, printable(r.bytes));
  return {};
}

std::string printable(std::span<const std::byte> bytes, std::size_t max) {
  std::string s;
  for (std::size_t i = 0; i < bytes.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f)
      s += static_cast<char>(c);
    else
      s += fmt::format("\\x{:02x}", c);
  }
  if (bytes.size() > max) s += fmt::format("... ({} bytes)", bytes.size());
  return s;
}

}  // namespace netkit::test
