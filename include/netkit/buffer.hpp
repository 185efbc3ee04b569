// Growable byte buffer for non-blocking I/O: the input and output queue of one connection.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

#include "netkit/error.hpp"

namespace netkit {

// Layout:  [ consumed | readable (data()) | writable tail (prepare()) ]
//          0        read_             write_                      capacity_
//
// Storage is allocated lazily on the first write and released when the buffer becomes empty
// while its capacity exceeds kept_capacity, so an idle connection costs at most kept_capacity
// bytes (0 if it never received anything). Consumed bytes only advance read_; the readable
// region is moved to the front only when prepare() needs room, never on a read.
// Owns its storage. Not thread-safe: one owner (the connection's loop thread) at a time.
class byte_buffer {
 public:
  // Capacity kept across "empty" moments so small request/response traffic does not
  // allocate per message; anything bigger is returned to the allocator.
  static constexpr std::size_t kept_capacity = 1024;
  // Smallest allocation; growth doubles from here.
  static constexpr std::size_t min_allocation = 256;
  // Size of the stack area read_from() uses beyond the writable tail.
  static constexpr std::size_t spill_size = 64 * 1024;

  byte_buffer() noexcept = default;
  byte_buffer(byte_buffer&& other) noexcept;
  byte_buffer& operator=(byte_buffer&& other) noexcept;
  byte_buffer(const byte_buffer&) = delete;
  byte_buffer& operator=(const byte_buffer&) = delete;
  ~byte_buffer() = default;

  std::size_t size() const noexcept { return write_ - read_; }
  bool empty() const noexcept { return write_ == read_; }
  std::size_t capacity() const noexcept { return capacity_; }
  // The readable region; valid until the next non-const call.
  std::span<const std::byte> data() const noexcept { return {storage_.get() + read_, size()}; }

  // Drops the first n readable bytes (n <= size()). Releases storage when this empties a
  // buffer whose capacity exceeds kept_capacity.
  void consume(std::size_t n) noexcept;
  // Drops everything; same release rule as consume().
  void clear() noexcept;

  void append(std::span<const std::byte> bytes);
  void append(std::string_view s);

  // Writable tail of at least n bytes (may be larger); compacts or grows as needed.
  // Valid until the next non-const call other than commit().
  std::span<std::byte> prepare(std::size_t n);
  // Makes n bytes written into prepare()'s span readable. n <= that span's size, else
  // throws std::length_error.
  void commit(std::size_t n);

  // Frees storage if empty, otherwise shrinks it to exactly size().
  void shrink_to_fit();

  // One readv(2) into the writable tail plus a spill_size stack area; what lands in the
  // spill area is appended, so one call can take a large burst into a small buffer.
  // Retries EINTR. Returns n > 0 bytes read, eof(), would_block() or another errno.
  io_result read_from(int fd);
  // send(MSG_NOSIGNAL) of the readable region (write(2) when fd is not a socket); consumes
  // what was written. Retries EINTR. An empty buffer returns {0, 0} without a system call.
  io_result write_to(int fd);

 private:
  std::size_t writable() const noexcept { return capacity_ - write_; }
  void make_room(std::size_t n);
  void release() noexcept;

  std::unique_ptr<std::byte[]> storage_;
  std::size_t capacity_ = 0;
  std::size_t read_ = 0;
  std::size_t write_ = 0;
};

}  // namespace netkit
