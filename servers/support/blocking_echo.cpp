#include "support/blocking_echo.hpp"

#include <unistd.h>

#include <cerrno>

#include "netkit/blocking_io.hpp"
#include "netkit/buffer.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"

namespace netkit::servers::support {

namespace {
// Bytes asked for per read(2).
constexpr std::size_t read_chunk = 64 * 1024;
}  // namespace

std::uint64_t serve_blocking_echo(int fd, std::string_view peer, decoder& dec, const encoder& enc,
                                  const std::function<bool()>& stop_requested) {
  dec.reset();
  byte_buffer in, out;
  std::uint64_t written = 0;
  auto flush = [&] {
    if (out.empty()) return true;
    try {
      write_n(fd, out.data());
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
    // Bounded by the input read so far: each message consumes at least one byte.
    for (;;) {
      auto r = dec.decode(in.data());
      if (r.state == decode_result::status::need_more) break;
      if (r.state == decode_result::status::error) {
        flush();
        log(log_level::warning, "closing {}: protocol error: {}", peer, r.error);
        return written;
      }
      enc.encode(r.message, out);
      in.consume(r.consumed);
    }
    if (!flush()) return written;
  }
  return written;
}

}  // namespace netkit::servers::support
