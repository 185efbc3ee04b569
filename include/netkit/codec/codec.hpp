// Message framing over a byte stream: pure, incremental, bounded decoders and their encoders.
// No socket or loop inside; a connection feeds bytes in and takes messages out.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "netkit/buffer.hpp"

namespace netkit {

enum class codec_kind { raw, fixed, line, crlf, length32, length16, sockperf };

struct codec_spec {
  codec_kind kind = codec_kind::line;
  std::size_t fixed_size = 0;         // fixed only: record size in bytes, 1..max_message
  std::size_t max_message = 1 << 20;  // largest payload a decoder accepts or an encoder frames

  // "raw", "fixed:N", "line", "crlf", "length" (alias "length32"), "length16", "sockperf"
  // (netkit/codec/sockperf_codec.hpp: a decoder that yields the replies a sockperf server
  // owes), each with an
  // optional ",max=BYTES" suffix, e.g. "line,max=65536". Throws usage_error naming the text
  // and listing the valid forms.
  static codec_spec parse(std::string_view text);
  // The canonical text parse() accepts; ",max=" only when it differs from the default.
  std::string to_string() const;

  friend bool operator==(const codec_spec&, const codec_spec&) = default;
};

struct decode_result {
  enum class status { need_more, message, error } state = status::need_more;
  // Bytes of input to consume: the whole frame, header and delimiter included.
  std::size_t consumed = 0;
  // Payload: a view into the input, valid until the caller consumes or appends — or, for a
  // codec whose message is not a slice of its input (sockperf), into the decoder's own
  // storage, valid until the next decode().
  std::span<const std::byte> message;
  // When state == error: a description that lives as long as the decoder.
  std::string_view error;
};

// Incremental decoder with a little state of its own (e.g. how far a delimiter scan got),
// so repeated calls on a growing input are O(n) in total. One decoder per stream; not
// thread-safe.
class decoder {
 public:
  virtual ~decoder() = default;
  // `input` is the whole unread input, starting at a frame boundary. Returns at most one
  // message; after a message the caller consumes `consumed` bytes and calls again. After an
  // error the stream is unusable (close it) until reset().
  virtual decode_result decode(std::span<const std::byte> input) = 0;
  // At EOF, with the leftover unread input: a description of the partial frame that the
  // stream ended inside (e.g. "stream ended inside a 16-byte fixed record (5 bytes
  // received)"), or an empty string if the stream ended on a frame boundary.
  virtual std::string finish(std::span<const std::byte> leftover) const = 0;
  // Forgets scan state, for a new stream.
  virtual void reset() noexcept = 0;
};

// Stateless framer; safe to share between threads.
class encoder {
 public:
  virtual ~encoder() = default;
  // Appends one framed message. Throws protocol_error if the message cannot be framed
  // (over the maximum size, contains the delimiter, wrong fixed size).
  virtual void encode(std::span<const std::byte> message, byte_buffer& out) const = 0;
  // Gather form for writev: writes the header into `header` and returns its length (0..8).
  // Throws protocol_error if a message of this size cannot be framed.
  virtual std::size_t header(std::size_t message_size, std::span<std::byte, 8> header) const = 0;
  // The delimiter written after the payload; empty for non-delimited codecs.
  virtual std::span<const std::byte> trailer() const noexcept = 0;
  // Gather form: throws protocol_error if the payload cannot be framed for what it holds
  // (a delimited codec's delimiter inside it); header() checks the size. Callers may skip
  // it for a message the same codec just decoded, which cannot hold its delimiter.
  virtual void check_payload(std::span<const std::byte> message) const { (void)message; }
};

// Both throw usage_error for a spec that parse() would reject (e.g. fixed_size 0).
std::unique_ptr<decoder> make_decoder(const codec_spec& spec);
std::unique_ptr<encoder> make_encoder(const codec_spec& spec);

}  // namespace netkit
