#include "netkit/codec/sockperf_codec.hpp"

#include <endian.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit::sockperf {

message_header read_header(std::span<const std::byte> bytes) noexcept {
  std::uint64_t sequence;
  std::uint16_t flags;
  std::uint32_t length;
  std::memcpy(&sequence, bytes.data(), 8);
  std::memcpy(&flags, bytes.data() + 8, 2);
  std::memcpy(&length, bytes.data() + 10, 4);
  return {be64toh(sequence), be16toh(flags), be32toh(length)};
}

void write_header(const message_header& h, std::span<std::byte> out) noexcept {
  const std::uint64_t sequence = htobe64(h.sequence);
  const std::uint16_t flags = htobe16(h.flags);
  const std::uint32_t length = htobe32(h.length);
  std::memcpy(out.data(), &sequence, 8);
  std::memcpy(out.data() + 8, &flags, 2);
  std::memcpy(out.data() + 10, &length, 4);
}

std::vector<std::byte> make_request(std::uint64_t sequence, std::size_t size, bool pong) {
  size = std::max(size, header_size);
  std::vector<std::byte> out(size);
  for (std::size_t i = header_size; i < size; ++i)
    out[i] = static_cast<std::byte>('a' + i % 26);
  const auto flags = static_cast<std::uint16_t>(flag_client | (pong ? flag_pong_request : 0));
  write_header({sequence, flags, static_cast<std::uint32_t>(size)}, out);
  return out;
}

decode_result decoder::decode(std::span<const std::byte> input) {
  if (input.size() < header_size) return {};
  const message_header h = read_header(input);
  if (h.length < header_size || h.length > max_) {
    error_ = fmt::format("sockperf message length {} outside {}..{}", h.length, header_size, max_);
    return {decode_result::status::error, 0, {}, error_};
  }
  if (input.size() < h.length) return {};
  const bool answer = (h.flags & flag_client) != 0 && (h.flags & flag_pong_request) != 0 &&
                      (h.flags & flag_warmup) == 0;
  if (!answer) return {decode_result::status::message, h.length, {}, {}};
  reply_.assign(input.begin(), input.begin() + h.length);
  write_header({h.sequence, static_cast<std::uint16_t>(h.flags & ~flag_client), h.length}, reply_);
  return {decode_result::status::message, h.length, reply_, {}};
}

std::string decoder::finish(std::span<const std::byte> leftover) const {
  if (leftover.empty()) return {};
  if (leftover.size() < header_size)
    return fmt::format("stream ended inside a sockperf header ({} of {} bytes received)",
                       leftover.size(), header_size);
  return fmt::format("stream ended inside a {}-byte sockperf message ({} bytes received)",
                     read_header(leftover).length, leftover.size());
}

}  // namespace netkit::sockperf
