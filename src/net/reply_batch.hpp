// Replies produced while one connection's input is dispatched, gathered for one send.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <span>
#include <vector>

#include "netkit/buffer.hpp"
#include "netkit/codec/codec.hpp"

namespace netkit::detail {

// Bytes that must be copied (headers, trailers, replies the handler built itself) go to
// an owned buffer that keeps its capacity. A reply that lies inside the input being
// dispatched is referenced, not copied: an echo of a 16 KiB block then costs no memcpy.
// That is safe because the input (the loop's read scratch or the connection's partial
// frame buffer) does not change until the batch is flushed at the end of the dispatch.
// Owned by the server, shared by its connections (one dispatches at a time). Loop thread.
class reply_batch {
 public:
  explicit reply_batch(std::size_t reserve) { owned_.reserve(reserve); }

  // The input of the dispatch that starts now; replies inside it are referenced.
  void set_input(std::span<const std::byte> input) noexcept { input_ = input; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  void add(const encoder& enc, std::span<const std::byte> message);
  // Bytes already framed (a shared frame), copied.
  void add_framed(std::span<const std::byte> bytes) { add_copy(bytes); }
  // One send(2), or sendmsg(2) for several pieces (MSG_NOSIGNAL). Bytes sent, or -1 and
  // errno.
  ssize_t send_to(int fd) const noexcept;
  // Copies the bytes from `offset` on (what the socket did not take) to `out`.
  void copy_tail(std::size_t offset, byte_buffer& out) const;
  void clear() noexcept;

 private:
  // Bounds the iovec array of one sendmsg; further references are copied instead.
  static constexpr std::size_t max_segments = 64;
  // Smaller replies are copied: cheaper than one more iovec for the kernel to walk.
  static constexpr std::size_t min_reference = 256;
  struct segment {
    const std::byte* ref;  // null: the bytes are in owned_ at `offset`
    std::size_t offset;
    std::size_t length;
  };
  void add_copy(std::span<const std::byte> bytes);
  void add_ref(std::span<const std::byte> bytes);
  const std::byte* start(const segment& s) const noexcept {
    return s.ref ? s.ref : owned_.data() + s.offset;
  }

  std::vector<std::byte> owned_;
  std::vector<segment> segments_;
  std::span<const std::byte> input_;
  std::size_t size_ = 0;
};

}  // namespace netkit::detail
