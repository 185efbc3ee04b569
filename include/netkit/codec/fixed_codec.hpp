// "fixed:N": records of exactly N bytes, no header.
#pragma once

#include "netkit/codec/codec.hpp"

namespace netkit {

class fixed_decoder final : public decoder {
 public:
  // record_size >= 1 (checked by make_decoder()).
  explicit fixed_decoder(std::size_t record_size) noexcept : size_(record_size) {}
  decode_result decode(std::span<const std::byte> input) override;
  std::string finish(std::span<const std::byte> leftover) const override;
  void reset() noexcept override {}

 private:
  std::size_t size_;
};

class fixed_encoder final : public encoder {
 public:
  explicit fixed_encoder(std::size_t record_size) noexcept : size_(record_size) {}
  void encode(std::span<const std::byte> message, byte_buffer& out) const override;
  std::size_t header(std::size_t message_size, std::span<std::byte, 8> header) const override;
  std::span<const std::byte> trailer() const noexcept override { return {}; }

 private:
  void check(std::size_t message_size) const;
  std::size_t size_;
};

}  // namespace netkit
