#pragma once

#include <array>
#include <span>
#include <vector>

#include "netkit/codec/codec.hpp"

namespace netkit::detail {

// Frames `message` onto a plain vector (header, payload, trailer), for batch buffers
// that must keep their capacity between messages.
inline void append_framed(const encoder& enc, std::span<const std::byte> message,
                          std::vector<std::byte>& out) {
  std::array<std::byte, 8> header;
  auto n = enc.header(message.size(), std::span<std::byte, 8>(header));
  auto trailer = enc.trailer();
  out.insert(out.end(), header.begin(), header.begin() + static_cast<std::ptrdiff_t>(n));
  out.insert(out.end(), message.begin(), message.end());
  out.insert(out.end(), trailer.begin(), trailer.end());
}

}  // namespace netkit::detail
