// A provided-buffer ring (io_uring_register_buf_ring): `count` buffers of `size` bytes
// from which the kernel picks one per completion of a recv submitted with
// IOSQE_BUFFER_SELECT. Buffers exist per ring, not per connection, so an idle connection
// holds no receive memory; the owner hands each buffer back with recycle() as soon as
// the data has been decoded or copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "event/backend_uring.hpp"

namespace netkit::detail {

// Owns the buffers and the ring's memory. Loop thread only. The ring is unregistered on
// destruction: no operation using it may still be in flight.
class uring_buffer_ring {
 public:
  // count: a power of two up to 32768; the first `initial` buffers are handed to the
  // kernel now, the rest by grow(). Throws sys_error when the kernel has no buffer rings
  // (before Linux 5.19).
  uring_buffer_ring(uring_backend& backend, unsigned count, std::size_t size, unsigned initial);
  ~uring_buffer_ring();
  uring_buffer_ring(const uring_buffer_ring&) = delete;
  uring_buffer_ring& operator=(const uring_buffer_ring&) = delete;

  std::uint16_t group() const noexcept { return group_; }
  std::size_t buffer_size() const noexcept { return size_; }
  unsigned count() const noexcept { return count_; }
  // The first `length` bytes of buffer `id` (from IORING_CQE_BUFFER_SHIFT of a CQE).
  std::span<const std::byte> data(unsigned id, std::size_t length) const noexcept {
    return {buffers_ + std::size_t{id} * size_, length};
  }
  unsigned posted() const noexcept { return posted_; }
  // Gives buffer `id` back to the kernel.
  void recycle(unsigned id) noexcept;
  // Hands more buffers to the kernel (doubling, up to count()) after it ran out; false if
  // all of them already are. The kernel takes buffers in ring order, so every buffer it
  // holds gets touched: posting only as many as the load needs keeps the resident
  // memory at the peak demand, not at count() x size.
  bool grow() noexcept;
  // Returns the buffers' pages to the kernel (they read back as zeros, and are refilled
  // by the next recv). Only while no buffer holds undelivered data and the kernel cannot
  // write one: the caller guarantees both (see uring_server::trim_memory).
  void trim() noexcept;

 private:
  uring_backend& backend_;
  unsigned count_;
  std::size_t size_;
  std::uint16_t group_;
  unsigned posted_ = 0;
  io_uring_buf_ring* ring_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::byte* buffers_ = nullptr;
};

}  // namespace netkit::detail
