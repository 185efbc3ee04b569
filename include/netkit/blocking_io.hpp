// Loops for blocking descriptors: read exactly n, write all, gather-write, read lines.
// They retry EINTR and short transfers; OS errors throw sys_error.
//
// A server that must stop while blocked in one of them passes a stop predicate: each
// interrupted call (EINTR: a signal without SA_RESTART) or timed-out one (EAGAIN after
// SO_RCVTIMEO/SO_SNDTIMEO) asks it, and true ends the transfer with transfer_stopped.
// Without one, EINTR is retried and EAGAIN is an error, as before.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

#include <sys/uio.h>

#include "netkit/buffer.hpp"

namespace netkit {

using stop_predicate = std::function<bool()>;

// The stop predicate said stop: the transfer ended partway (what was read or written
// before it is gone with the exception: the caller is closing the connection).
class transfer_stopped : public std::runtime_error {
 public:
  explicit transfer_stopped(std::string_view operation);
};

struct read_n_result {
  std::size_t bytes;  // bytes stored in the buffer
  // complete: buf is full. eof_clean: EOF before the first byte. eof_mid_message: EOF after
  // 0 < bytes < buf.size().
  enum class end { complete, eof_clean, eof_mid_message } how;
};

// Reads exactly buf.size() bytes unless EOF comes first. Retries EINTR and short reads.
// Throws sys_error on errors (EAGAIN included: use it on blocking descriptors).
read_n_result read_n(int fd, std::span<std::byte> buf, const stop_predicate& stop = {});

// Writes all bytes, retrying EINTR and short writes. Uses send(MSG_NOSIGNAL) so a closed peer
// is EPIPE, not SIGPIPE; falls back to write(2) when fd is not a socket. Throws sys_error.
void write_n(int fd, std::span<const std::byte> buf, const stop_predicate& stop = {});

// Gather write (e.g. header + body in one system call); continues correctly after a partial
// writev that ends inside any part. Same signal and error rules as write_n.
void write_v(int fd, std::span<const iovec> parts, const stop_predicate& stop = {});

// Buffered line reader over a blocking descriptor: reads large chunks and hands out lines,
// so bytes after the current line may already sit in the reader. Does not own fd.
class line_reader {
 public:
  explicit line_reader(int fd, std::size_t max_line = 64 * 1024, stop_predicate stop = {});

  // The next line without its '\n' (a '\r' before it is kept), or nullopt on EOF at a line
  // boundary. Throws protocol_error if a line exceeds max_line bytes or EOF arrives
  // mid-line ("stream ended inside a line (N bytes)"), sys_error on read errors,
  // transfer_stopped when the stop predicate says so.
  std::optional<std::string> read_line();

 private:
  int fd_;
  std::size_t max_line_;
  stop_predicate stop_;
  std::size_t scanned_ = 0;  // bytes of buf_ already searched for '\n'
  byte_buffer buf_;
};

}  // namespace netkit
