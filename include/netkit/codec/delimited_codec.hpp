// "line" (payload then '\n'; a '\r' before it is payload) and "crlf" (payload then "\r\n";
// a lone '\n' is payload).
#pragma once

#include <string>

#include "netkit/codec/codec.hpp"

namespace netkit {

enum class delimiter { lf, crlf };

class delimited_decoder final : public decoder {
 public:
  delimited_decoder(delimiter delim, std::size_t max_message);
  decode_result decode(std::span<const std::byte> input) override;
  std::string finish(std::span<const std::byte> leftover) const override;
  void reset() noexcept override { scanned_ = 0; }

 private:
  delimiter delim_;
  std::size_t max_;
  // Input bytes already searched without finding a delimiter; the next call resumes there,
  // so a message arriving in k pieces costs O(its length), not O(k * length).
  std::size_t scanned_ = 0;
  std::string too_long_;  // built once: decode_result::error points at it
};

class delimited_encoder final : public encoder {
 public:
  delimited_encoder(delimiter delim, std::size_t max_message) noexcept
      : delim_(delim), max_(max_message) {}
  void encode(std::span<const std::byte> message, byte_buffer& out) const override;
  std::size_t header(std::size_t message_size, std::span<std::byte, 8> header) const override;
  std::span<const std::byte> trailer() const noexcept override;
  // Throws protocol_error unless the message can be framed; header() checks only the size.
  void check(std::span<const std::byte> message) const;
  void check_payload(std::span<const std::byte> message) const override { check(message); }

 private:
  void check_size(std::size_t message_size) const;
  delimiter delim_;
  std::size_t max_;
};

}  // namespace netkit
