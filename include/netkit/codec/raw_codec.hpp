// "raw": no framing. Each decode() returns whatever has arrived (up to max_message bytes) as
// one message, so message boundaries depend on how the stream was chunked: the
// sticky-packet problem, on purpose.
#pragma once

#include "netkit/codec/codec.hpp"

namespace netkit {

class raw_decoder final : public decoder {
 public:
  explicit raw_decoder(std::size_t max_message) noexcept : max_(max_message) {}
  decode_result decode(std::span<const std::byte> input) override;
  std::string finish(std::span<const std::byte> leftover) const override;
  void reset() noexcept override {}

 private:
  std::size_t max_;
};

// Appends the bytes as they are; an empty message produces no bytes at all.
class raw_encoder final : public encoder {
 public:
  explicit raw_encoder(std::size_t max_message) noexcept : max_(max_message) {}
  void encode(std::span<const std::byte> message, byte_buffer& out) const override;
  std::size_t header(std::size_t message_size, std::span<std::byte, 8> header) const override;
  std::span<const std::byte> trailer() const noexcept override { return {}; }

 private:
  std::size_t max_;
};

}  // namespace netkit
