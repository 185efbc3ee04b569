#include "netkit/codec/raw_codec.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit {
namespace {

void check_size(std::size_t message_size, std::size_t max) {
  if (message_size > max)
    throw protocol_error(fmt::format("raw message of {} bytes exceeds max {}", message_size, max));
}

}  // namespace

decode_result raw_decoder::decode(std::span<const std::byte> input) {
  if (input.empty()) return {};
  const std::size_t n = std::min(input.size(), max_);
  return {decode_result::status::message, n, input.first(n), {}};
}

// Every byte is a complete raw message: a stream cannot end inside one.
std::string raw_decoder::finish(std::span<const std::byte>) const {
  return {};
}

void raw_encoder::encode(std::span<const std::byte> message, byte_buffer& out) const {
  check_size(message.size(), max_);
  out.append(message);
}

std::size_t raw_encoder::header(std::size_t message_size, std::span<std::byte, 8>) const {
  check_size(message_size, max_);
  return 0;
}

}  // namespace netkit
