#include "netkit/codec/delimited_codec.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit {
namespace {

constexpr std::byte lf_bytes[] = {std::byte{'\n'}};
constexpr std::byte crlf_bytes[] = {std::byte{'\r'}, std::byte{'\n'}};

std::size_t delimiter_size(delimiter d) noexcept {
  return d == delimiter::lf ? 1 : 2;
}

const std::byte* find_lf(const std::byte* from, const std::byte* to) noexcept {
  return static_cast<const std::byte*>(
      std::memchr(from, '\n', static_cast<std::size_t>(to - from)));
}

// Offset of the first delimiter's '\n' in [from, end) of `input`, or npos. For crlf a '\n'
// counts only when the byte before it (possibly before `from`) is '\r'.
std::size_t find_delimiter(delimiter d, std::span<const std::byte> input, std::size_t from,
                           std::size_t end) noexcept {
  const std::byte* base = input.data();
  const std::byte* p = base + from;
  const std::byte* last = base + end;
  // Bound: every iteration advances p by at least one byte towards `last`.
  while (p < last) {
    const std::byte* lf = find_lf(p, last);
    if (lf == nullptr) return std::string_view::npos;
    if (d == delimiter::lf || (lf != base && lf[-1] == std::byte{'\r'}))
      return static_cast<std::size_t>(lf - base);
    p = lf + 1;
  }
  return std::string_view::npos;
}

}  // namespace

delimited_decoder::delimited_decoder(delimiter delim, std::size_t max_message)
    : delim_(delim),
      max_(max_message),
      too_long_(fmt::format("line longer than {} bytes without {}delimiter", max_message,
                            delim == delimiter::crlf ? "CRLF " : "")) {}

decode_result delimited_decoder::decode(std::span<const std::byte> input) {
  const std::size_t dsize = delimiter_size(delim_);
  // The delimiter's '\n' of a max_-byte message sits at offset max_ + dsize - 1; nothing
  // beyond that window is ever scanned, so a peer that never sends one costs O(max_).
  const std::size_t window = std::min(input.size(), max_ + dsize);
  // Input shorter than last time means the caller consumed without a message: rescan.
  const std::size_t from = std::min(scanned_, window);
  const std::size_t lf = find_delimiter(delim_, input, from, window);
  if (lf == std::string_view::npos) {
    if (window == max_ + dsize) return {decode_result::status::error, 0, {}, too_long_};
    scanned_ = window;
    return {};
  }
  scanned_ = 0;
  const std::size_t length = lf + 1 - dsize;
  return {decode_result::status::message, lf + 1, input.first(length), {}};
}

std::string delimited_decoder::finish(std::span<const std::byte> leftover) const {
  // Skip the complete frames still in `leftover`; what follows the last delimiter is partial.
  std::size_t start = 0;
  // Bound: each iteration moves `start` past one delimiter.
  for (;;) {
    const std::size_t lf = find_delimiter(delim_, leftover, start, leftover.size());
    if (lf == std::string_view::npos) break;
    start = lf + 1;
  }
  const std::size_t partial = leftover.size() - start;
  if (partial == 0) return {};
  return fmt::format("stream ended inside a line ({} bytes)", partial);
}

void delimited_encoder::check_size(std::size_t message_size) const {
  if (message_size > max_)
    throw protocol_error(fmt::format("line of {} bytes exceeds max {}", message_size, max_));
}

void delimited_encoder::check(std::span<const std::byte> message) const {
  check_size(message.size());
  const std::byte* begin = message.data();
  const std::byte* end = begin + message.size();
  if (delim_ == delimiter::lf) {
    if (!message.empty() && find_lf(begin, end) != nullptr)
      throw protocol_error("line codec cannot frame a message containing '\\n'");
    return;
  }
  if (!message.empty() &&
      find_delimiter(delim_, message, 0, message.size()) != std::string_view::npos)
    throw protocol_error("crlf codec cannot frame a message containing \"\\r\\n\"");
}

void delimited_encoder::encode(std::span<const std::byte> message, byte_buffer& out) const {
  check(message);
  const auto delim = trailer();
  auto tail = out.prepare(message.size() + delim.size());
  if (!message.empty()) std::memcpy(tail.data(), message.data(), message.size());
  std::memcpy(tail.data() + message.size(), delim.data(), delim.size());
  out.commit(message.size() + delim.size());
}

std::size_t delimited_encoder::header(std::size_t message_size, std::span<std::byte, 8>) const {
  check_size(message_size);
  return 0;
}

std::span<const std::byte> delimited_encoder::trailer() const noexcept {
  if (delim_ == delimiter::lf) return lf_bytes;
  return crlf_bytes;
}

}  // namespace netkit
