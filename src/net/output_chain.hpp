// Output whose order matters but whose bytes are not all the connection's own: frames
// shared with other connections (a broadcast queues the same framed_message on each, no
// copy) and the owned bytes queued between them. A connection uses it only once a shared
// frame could not be written at once; until then its plain buffers do the work.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <vector>

#include "netkit/buffer.hpp"
#include "netkit/net/connection.hpp"

namespace netkit::detail {

class output_chain {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  // `skip` bytes of it were already written.
  void push_shared(framed_message message, std::size_t skip = 0) {
    size_ += message.size() - skip;
    pieces_.push_back({std::move(message), {}});
    if (pieces_.size() == 1) offset_ = skip;
  }
  // Takes the buffer's bytes without copying them.
  void push_owned(byte_buffer&& bytes) {
    if (bytes.empty()) return;
    size_ += bytes.size();
    pieces_.push_back({{}, std::move(bytes)});
  }

  // The unsent part of the first piece.
  std::span<const std::byte> front() const noexcept {
    return pieces_.empty() ? std::span<const std::byte>()
                           : pieces_.front().bytes().subspan(offset_);
  }
  // Up to `max` iovecs over the unsent pieces, in order; returns how many.
  std::size_t gather(iovec* iov, std::size_t max) const noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < pieces_.size() && n < max; ++i) {
      auto b = pieces_[i].bytes();
      if (i == 0) b = b.subspan(offset_);
      iov[n++] = {const_cast<std::byte*>(b.data()), b.size()};
    }
    return n;
  }
  // Drops `n` written bytes from the front (pieces fully written are released); returns
  // the part of `n` beyond the chain's bytes.
  std::size_t consume(std::size_t n) {
    std::size_t first = 0;
    while (n > 0 && first < pieces_.size()) {
      const std::size_t left = pieces_[first].bytes().size() - offset_;
      if (n < left) {
        offset_ += n;
        size_ -= n;
        n = 0;
        break;
      }
      n -= left;
      size_ -= left;
      offset_ = 0;
      ++first;
    }
    pieces_.erase(pieces_.begin(), pieces_.begin() + static_cast<std::ptrdiff_t>(first));
    if (pieces_.empty()) std::vector<piece>().swap(pieces_);  // an idle connection holds none
    return n;
  }
  void clear() noexcept {
    std::vector<piece>().swap(pieces_);
    offset_ = 0;
    size_ = 0;
  }

 private:
  struct piece {
    framed_message shared;  // empty: the bytes are `owned`
    byte_buffer owned;
    std::span<const std::byte> bytes() const noexcept {
      return shared.empty() ? owned.data() : shared.bytes();
    }
  };
  std::vector<piece> pieces_;
  std::size_t offset_ = 0;  // bytes of the first piece already written
  std::size_t size_ = 0;
};

}  // namespace netkit::detail
