#include "netkit/codec/fixed_codec.hpp"

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit {

decode_result fixed_decoder::decode(std::span<const std::byte> input) {
  if (input.size() < size_) return {};
  return {decode_result::status::message, size_, input.first(size_), {}};
}

std::string fixed_decoder::finish(std::span<const std::byte> leftover) const {
  // Whole records still in `leftover` were simply not decoded yet; only the tail is partial.
  const std::size_t partial = leftover.size() % size_;
  if (partial == 0) return {};
  return fmt::format("stream ended inside a {}-byte fixed record ({} bytes received)", size_,
                     partial);
}

void fixed_encoder::check(std::size_t message_size) const {
  if (message_size != size_)
    throw protocol_error(
        fmt::format("fixed:{} codec cannot frame a {}-byte message", size_, message_size));
}

void fixed_encoder::encode(std::span<const std::byte> message, byte_buffer& out) const {
  check(message.size());
  out.append(message);
}

std::size_t fixed_encoder::header(std::size_t message_size, std::span<std::byte, 8>) const {
  check(message_size);
  return 0;
}

}  // namespace netkit
