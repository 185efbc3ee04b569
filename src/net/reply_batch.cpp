#include "net/reply_batch.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <functional>

namespace netkit::detail {

void reply_batch::add(const encoder& enc, std::span<const std::byte> message) {
  // Pointer comparison across unrelated objects is unspecified with <, not with less<>.
  const std::less<const std::byte*> before;
  const bool from_input = !before(message.data(), input_.data()) &&
                          !before(input_.data() + input_.size(), message.data() + message.size());
  // Bytes the handler built itself may hold the codec's delimiter; decoded ones cannot.
  if (!from_input) enc.check_payload(message);
  std::array<std::byte, 8> header;
  const std::size_t n = enc.header(message.size(), std::span<std::byte, 8>(header));
  if (n > 0) add_copy(std::span(header).first(n));
  if (from_input && message.size() >= min_reference) {
    add_ref(message);
  } else {
    add_copy(message);
  }
  if (auto trailer = enc.trailer(); !trailer.empty()) add_copy(trailer);
}

void reply_batch::add_copy(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  const std::size_t offset = owned_.size();
  owned_.insert(owned_.end(), bytes.begin(), bytes.end());
  size_ += bytes.size();
  if (!segments_.empty() && !segments_.back().ref &&
      segments_.back().offset + segments_.back().length == offset) {
    segments_.back().length += bytes.size();
  } else {
    segments_.push_back({nullptr, offset, bytes.size()});
  }
}

void reply_batch::add_ref(std::span<const std::byte> bytes) {
  // Echoes of consecutive frames are consecutive in the input: one piece.
  if (!segments_.empty() && segments_.back().ref &&
      segments_.back().ref + segments_.back().length == bytes.data()) {
    segments_.back().length += bytes.size();
    size_ += bytes.size();
    return;
  }
  if (segments_.size() >= max_segments - 1) {
    add_copy(bytes);
    return;
  }
  segments_.push_back({bytes.data(), 0, bytes.size()});
  size_ += bytes.size();
}

ssize_t reply_batch::send_to(int fd) const noexcept {
  if (segments_.size() == 1)
    return ::send(fd, start(segments_[0]), segments_[0].length, MSG_NOSIGNAL);
  std::array<iovec, max_segments> iov;
  std::size_t count = 0;
  for (const auto& s : segments_)
    iov[count++] = {const_cast<std::byte*>(start(s)), s.length};
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  return ::sendmsg(fd, &msg, MSG_NOSIGNAL);
}

void reply_batch::copy_tail(std::size_t offset, byte_buffer& out) const {
  for (const auto& s : segments_) {
    if (offset >= s.length) {
      offset -= s.length;
      continue;
    }
    out.append(std::span(start(s) + offset, s.length - offset));
    offset = 0;
  }
}

void reply_batch::clear() noexcept {
  owned_.clear();
  segments_.clear();
  size_ = 0;
}

}  // namespace netkit::detail
