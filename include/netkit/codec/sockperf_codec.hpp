// "sockperf": the message format of the sockperf latency tool (sockperf server and client,
// versions 3.x), so `sockperf ping-pong` and `sockperf under-load` run against netkit's
// servers and `netkit bench --protocol sockperf` drives `sockperf server`.
//
// Every message starts with a 14-byte header in network byte order:
//   u64 sequence number | u16 flags | u32 length of the whole message (header included)
// Flags: client (set on requests; a reply clears it), pong request (the client wants this
// one answered; under-load asks for every Nth only), warm-up (never answered).
//
// The decoder yields, for each complete message, the reply a sockperf server owes: the
// same bytes with the client flag cleared, for a client message that asks for a pong and is
// not a warm-up; an empty message for every other one (nothing to send). The encoder is
// raw's (the reply was made by the decoder: it goes out as it is), so an echo handler on
// this codec *is* a sockperf server, on every model that decodes and echoes — each stream
// model, whatever its I/O, and the datagram echo.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "netkit/codec/codec.hpp"

namespace netkit::sockperf {

inline constexpr std::size_t header_size = 14;
inline constexpr std::uint16_t flag_client = 1;
inline constexpr std::uint16_t flag_pong_request = 2;
inline constexpr std::uint16_t flag_warmup = 4;

struct message_header {
  std::uint64_t sequence = 0;
  std::uint16_t flags = 0;
  std::uint32_t length = 0;  // whole message, header included
};

// Reads the header at the start of `bytes` (at least header_size of them).
message_header read_header(std::span<const std::byte> bytes) noexcept;
// Writes `h` into the first header_size bytes of `out`.
void write_header(const message_header& h, std::span<std::byte> out) noexcept;
// A request of `size` bytes in all (at least header_size): client flag, plus
// flag_pong_request when `pong`, the rest of the bytes filled with a pattern.
std::vector<std::byte> make_request(std::uint64_t sequence, std::size_t size, bool pong);

class decoder final : public netkit::decoder {
 public:
  explicit decoder(std::size_t max_message) : max_(max_message) {}
  decode_result decode(std::span<const std::byte> input) override;
  std::string finish(std::span<const std::byte> leftover) const override;
  void reset() noexcept override {}

 private:
  std::size_t max_;
  // The reply of the last message (its bytes, client flag cleared): what decode_result's
  // message points to until the next decode. Holds the largest reply so far.
  std::vector<std::byte> reply_;
  std::string error_;
};

}  // namespace netkit::sockperf
