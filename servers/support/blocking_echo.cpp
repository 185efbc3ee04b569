#include "support/blocking_echo.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "netkit/blocking_io.hpp"
#include "netkit/buffer.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/signals.hpp"
#include "netkit/socket.hpp"

namespace netkit::servers::support {

namespace {

// Bytes asked for per read(2).
constexpr std::size_t read_chunk = 64 * 1024;

}  // namespace

bool echo_frames(decoder& dec, byte_buffer& in, const encoder& enc, byte_buffer& out,
                 std::string_view peer) {
  // Bounded by the input read so far: each message consumes at least one byte.
  for (;;) {
    auto r = dec.decode(in.data());
    if (r.state == decode_result::status::need_more) return true;
    if (r.state == decode_result::status::error) {
      log(log_level::warning, "closing {}: protocol error: {}", peer, r.error);
      return false;
    }
    enc.encode(r.message, out);
    in.consume(r.consumed);
  }
}

void set_stop_check_timeouts(int fd) {
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &stop_check_interval, sizeof stop_check_interval) !=
      0)
    throw_sys_error("setsockopt SO_RCVTIMEO");
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stop_check_interval, sizeof stop_check_interval) !=
      0)
    throw_sys_error("setsockopt SO_SNDTIMEO");
}

std::string peer_name(int fd, transport kind) {
  try {
    return peer_endpoint(fd, kind).to_uri();
  } catch (const std::exception&) {
    return "(unknown peer)";
  }
}

std::uint64_t serve_blocking_echo(int fd, std::string_view peer, decoder& dec, const encoder& enc,
                                  const std::function<bool()>& stop_requested) {
  dec.reset();
  byte_buffer in, out;
  std::uint64_t written = 0;
  auto flush = [&] {
    if (out.empty()) return true;
    // A write that makes no progress (EINTR, or EAGAIN once SO_SNDTIMEO ran out: the peer
    // is not reading) asks stop_requested() before it tries again.
    try {
      write_n(fd, out.data(), stop_requested);
    } catch (const transfer_stopped&) {
      return false;
    } catch (const sys_error& e) {
      log(log_level::debug, "write to {}: {}", peer, e.what());
      return false;
    }
    written += out.size();
    out.clear();
    return true;
  };
  while (!stop_requested()) {
    auto room = in.prepare(read_chunk);
    ssize_t n = ::read(fd, room.data(), room.size());
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;  // stop?
      log(log_level::debug, "read from {}: {}", peer, errno_text(errno));
      return written;
    }
    if (n == 0) {
      if (auto partial = dec.finish(in.data()); !partial.empty())
        log(log_level::warning, "{}: {}", peer, partial);
      return written;
    }
    in.commit(static_cast<std::size_t>(n));
    bool ok = echo_frames(dec, in, enc, out, peer);
    if (!flush() || !ok) return written;  // after a protocol error, the replies before it
  }
  return written;
}

void serve_accepted_echo(int fd, transport kind, decoder& dec, const encoder& enc,
                         std::string_view who) {
  auto peer = peer_name(fd, kind);
  try {
    set_stop_check_timeouts(fd);
  } catch (const sys_error& e) {
    log(log_level::error, "{}: closing {}: {}", who, peer, e.what());
    return;
  }
  log(log_level::debug, "{}: serving {}", who, peer);
  serve_blocking_echo(fd, peer, dec, enc, [] { return stop_signal_received() != 0; });
}

}  // namespace netkit::servers::support
