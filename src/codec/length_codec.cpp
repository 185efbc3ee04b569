#include "netkit/codec/length_codec.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <endian.h>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit {

// memcpy + be*toh: the header sits at any offset in the buffer, and an unaligned
// pointer-cast load is undefined behaviour (and SIGBUS on some CPUs).
std::size_t length_decoder::read_length(std::span<const std::byte> input) const noexcept {
  if (header_ == 2) {
    std::uint16_t v;
    std::memcpy(&v, input.data(), sizeof v);
    return be16toh(v);
  }
  std::uint32_t v;
  std::memcpy(&v, input.data(), sizeof v);
  return be32toh(v);
}

decode_result length_decoder::decode(std::span<const std::byte> input) {
  if (input.size() < header_) return {};
  const std::size_t length = read_length(input);
  if (length > max_) {
    // Reported as soon as the header is complete: the body is never awaited or allocated.
    error_ = fmt::format("length prefix {} exceeds max message size {}", length, max_);
    return {decode_result::status::error, 0, {}, error_};
  }
  if (input.size() - header_ < length) return {};
  return {decode_result::status::message, header_ + length, input.subspan(header_, length), {}};
}

std::string length_decoder::finish(std::span<const std::byte> leftover) const {
  std::size_t start = 0;
  // Bound: each iteration skips one whole frame of at least header_ bytes.
  while (leftover.size() - start >= header_) {
    const std::size_t length = read_length(leftover.subspan(start));
    if (length > max_)
      return fmt::format("length prefix {} exceeds max message size {}", length, max_);
    if (leftover.size() - start - header_ < length)
      return fmt::format("stream ended inside a {}-byte message ({} of {} bytes received)", length,
                         leftover.size() - start - header_, length);
    start += header_ + length;
  }
  if (start == leftover.size()) return {};
  return fmt::format("stream ended inside a {}-byte length header ({} bytes received)", header_,
                     leftover.size() - start);
}

length_encoder::length_encoder(std::size_t header_size, std::size_t max_message) noexcept
    : header_(header_size),
      max_(std::min<std::size_t>(max_message, header_size == 2 ? UINT16_MAX : UINT32_MAX)) {}

std::size_t length_encoder::header(std::size_t message_size, std::span<std::byte, 8> header) const {
  if (message_size > max_)
    throw protocol_error(fmt::format("message of {} bytes exceeds max {} of the length{} codec",
                                     message_size, max_, header_ == 2 ? "16" : ""));
  if (header_ == 2) {
    const std::uint16_t v = htobe16(static_cast<std::uint16_t>(message_size));
    std::memcpy(header.data(), &v, sizeof v);
  } else {
    const std::uint32_t v = htobe32(static_cast<std::uint32_t>(message_size));
    std::memcpy(header.data(), &v, sizeof v);
  }
  return header_;
}

void length_encoder::encode(std::span<const std::byte> message, byte_buffer& out) const {
  std::byte head[8];
  const std::size_t h = header(message.size(), head);
  auto tail = out.prepare(h + message.size());
  std::memcpy(tail.data(), head, h);
  if (!message.empty()) std::memcpy(tail.data() + h, message.data(), message.size());
  out.commit(h + message.size());
}

}  // namespace netkit
