// "length" / "length16": a 4- or 2-byte big-endian unsigned payload length, then the payload.
// A length of 0 is a valid empty message.
#pragma once

#include <string>

#include "netkit/codec/codec.hpp"

namespace netkit {

class length_decoder final : public decoder {
 public:
  // header_size is 2 or 4.
  length_decoder(std::size_t header_size, std::size_t max_message) noexcept
      : header_(header_size), max_(max_message) {}
  decode_result decode(std::span<const std::byte> input) override;
  std::string finish(std::span<const std::byte> leftover) const override;
  void reset() noexcept override {}

 private:
  std::size_t read_length(std::span<const std::byte> input) const noexcept;
  std::size_t header_;
  std::size_t max_;
  std::string error_;  // decode_result::error points here; it names the offending length
};

class length_encoder final : public encoder {
 public:
  length_encoder(std::size_t header_size, std::size_t max_message) noexcept;
  void encode(std::span<const std::byte> message, byte_buffer& out) const override;
  std::size_t header(std::size_t message_size, std::span<std::byte, 8> header) const override;
  std::span<const std::byte> trailer() const noexcept override { return {}; }

 private:
  std::size_t header_;
  std::size_t max_;  // min(max_message, largest length the header can hold)
};

}  // namespace netkit
