#include "netkit/blocking_io.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit {

transfer_stopped::transfer_stopped(std::string_view operation)
    : std::runtime_error(fmt::format("{}: stopped", operation)) {}

namespace {

// A call failed with `err`: returns to retry it, throws to end the transfer.
void retry_or_throw(int err, const stop_predicate& stop, const char* operation) {
  const bool interrupted = err == EINTR;
  const bool timed_out = err == EAGAIN || err == EWOULDBLOCK;
  if (stop && (interrupted || timed_out)) {
    if (stop()) throw transfer_stopped(operation);
    return;
  }
  if (interrupted) return;
  throw sys_error(err, operation);
}

}  // namespace

read_n_result read_n(int fd, std::span<std::byte> buf, const stop_predicate& stop) {
  std::size_t got = 0;
  // Bound: each iteration either stores >= 1 byte, returns, or retries an interrupted call
  // (with a stop predicate, asking it first).
  while (got < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n == 0) {
      return {got, got == 0 ? read_n_result::end::eof_clean : read_n_result::end::eof_mid_message};
    } else {
      retry_or_throw(errno, stop, "read");
    }
  }
  return {got, read_n_result::end::complete};
}

namespace {

// send(MSG_NOSIGNAL), or write(2) once the descriptor turned out not to be a socket.
ssize_t send_some(int fd, const std::byte* p, std::size_t n, bool& not_socket) {
  if (!not_socket) {
    const ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r >= 0 || errno != ENOTSOCK) return r;
    not_socket = true;
  }
  return ::write(fd, p, n);
}

ssize_t sendv_some(int fd, iovec* iov, std::size_t count, bool& not_socket) {
  if (!not_socket) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    const ssize_t r = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (r >= 0 || errno != ENOTSOCK) return r;
    not_socket = true;
  }
  return ::writev(fd, iov, static_cast<int>(count));
}

}  // namespace

void write_n(int fd, std::span<const std::byte> buf, const stop_predicate& stop) {
  bool not_socket = false;
  std::size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = send_some(fd, buf.data() + done, buf.size() - done, not_socket);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n == 0) {
      // write(2) of a non-empty range returning 0 would spin forever; treat it as an I/O error.
      throw sys_error(EIO, "write");
    } else {
      retry_or_throw(errno, stop, "write");
    }
  }
}

void write_v(int fd, std::span<const iovec> parts, const stop_predicate& stop) {
  // A private copy we can advance; empty parts dropped so progress is always visible.
  std::vector<iovec> iov;
  iov.reserve(parts.size());
  for (const auto& p : parts)
    if (p.iov_len != 0) iov.push_back(p);
  bool not_socket = false;
  std::size_t first = 0;
  while (first < iov.size()) {
    // The kernel accepts at most IOV_MAX parts per call.
    const std::size_t count = std::min<std::size_t>(iov.size() - first, IOV_MAX);
    const ssize_t n = sendv_some(fd, iov.data() + first, count, not_socket);
    if (n < 0) {
      retry_or_throw(errno, stop, "writev");
      continue;
    }
    if (n == 0) throw sys_error(EIO, "writev");
    // Skip the parts written completely, then trim the one the write ended inside.
    auto left = static_cast<std::size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len)
      left -= iov[first++].iov_len;
    if (left != 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
}

line_reader::line_reader(int fd, std::size_t max_line, stop_predicate stop)
    : fd_(fd), max_line_(max_line), stop_(std::move(stop)) {}

std::optional<std::string> line_reader::read_line() {
  // Bound: each read adds >= 1 byte and the buffer never holds more than max_line_ + one read
  // before the too-long check fires.
  for (;;) {
    const auto data = buf_.data();
    // Only the first max_line_ + 1 bytes can hold the '\n' of an acceptable line.
    const std::size_t window = std::min(data.size(), max_line_ + 1);
    if (scanned_ < window) {
      const void* lf = std::memchr(data.data() + scanned_, '\n', window - scanned_);
      if (lf != nullptr) {
        const auto len = static_cast<std::size_t>(static_cast<const std::byte*>(lf) - data.data());
        std::string line(reinterpret_cast<const char*>(data.data()), len);
        buf_.consume(len + 1);
        scanned_ = 0;
        return line;
      }
      scanned_ = window;
    }
    if (window == max_line_ + 1)
      throw protocol_error(fmt::format("line longer than {} bytes", max_line_));
    const io_result r = buf_.read_from(fd_);
    if (r.eof()) {
      if (buf_.empty()) return std::nullopt;
      throw protocol_error(fmt::format("stream ended inside a line ({} bytes)", buf_.size()));
    }
    if (!r.ok()) retry_or_throw(r.err, stop_, "read");
  }
}

}  // namespace netkit
