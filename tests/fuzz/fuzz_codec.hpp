// Shared body of the per-decoder libFuzzer targets (fuzz_<codec>.cpp).
// Input layout is whatever FuzzedDataProvider makes of it: codec limits and a chunking seed
// from the tail, an arbitrary byte stream and then round-trip messages from the front.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "netkit/buffer.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/codec/sockperf_codec.hpp"
#include "netkit/error.hpp"

namespace netkit::fuzz {

inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

struct decoded {
  std::vector<std::string> messages;
  bool error = false;
  std::string finish;
};

// Largest input a decoder may hold back while answering need_more: the biggest frame minus
// one byte (header + payload + delimiter all fit in max + 4).
inline std::size_t need_more_bound(const codec_spec& spec) {
  return spec.kind == codec_kind::fixed ? spec.fixed_size : spec.max_message + 4;
}

// Feeds `stream` to a fresh decoder in chunks of 1..max_chunk bytes drawn from `seed`
// (max_chunk 0: all at once), like a connection would, checking the decoder contract.
inline decoded feed(const codec_spec& spec, const std::string& stream, std::uint32_t seed,
                    std::size_t max_chunk) {
  auto dec = make_decoder(spec);
  std::minstd_rand rng(seed);
  byte_buffer buf;
  decoded out;
  for (std::size_t pos = 0; pos < stream.size() && !out.error;) {
    const std::size_t chunk = max_chunk == 0 ? stream.size() : 1 + rng() % max_chunk;
    const std::size_t n = std::min(chunk, stream.size() - pos);
    buf.append(std::string_view(stream).substr(pos, n));
    pos += n;
    // Bound: each message consumes >= 1 byte of the finite buffer.
    for (;;) {
      const auto input = buf.data();
      const auto r = dec->decode(input);
      if (r.state == decode_result::status::need_more) {
        require(input.size() < need_more_bound(spec), "need_more holds back more than one frame");
        break;
      }
      if (r.state == decode_result::status::error) {
        require(!r.error.empty(), "error without description");
        out.error = true;
        break;
      }
      require(r.consumed > 0 && r.consumed <= input.size(), "consumed out of range");
      require(r.message.size() <= spec.max_message, "message over max");
      // sockperf's reply is built in the decoder: the whole frame, or nothing.
      if (spec.kind == codec_kind::sockperf)
        require(r.message.empty() || r.message.size() == r.consumed, "reply not the frame's size");
      else
        require(
            r.message.empty() || (r.message.data() >= input.data() &&
                                  r.message.data() + r.message.size() <= input.data() + r.consumed),
            "message outside the consumed frame");
      out.messages.emplace_back(reinterpret_cast<const char*>(r.message.data()), r.message.size());
      buf.consume(r.consumed);
    }
  }
  out.finish = dec->finish(buf.data());
  if (!out.error && buf.empty()) require(out.finish.empty(), "finish() complains at a boundary");
  return out;
}

inline std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& m : v)
    s += m;
  return s;
}

// Whether the encoder must accept `m` (it must throw protocol_error otherwise).
inline bool framable(const codec_spec& spec, const std::string& m) {
  switch (spec.kind) {
    case codec_kind::raw:
      return m.size() <= spec.max_message;
    case codec_kind::fixed:
      return m.size() == spec.fixed_size;
    case codec_kind::line:
      return m.size() <= spec.max_message && m.find('\n') == std::string::npos;
    case codec_kind::crlf:
      return m.size() <= spec.max_message && m.find("\r\n") == std::string::npos;
    case codec_kind::length32:
      return m.size() <= spec.max_message;
    case codec_kind::length16:
      return m.size() <= std::min<std::size_t>(spec.max_message, 65535);
    case codec_kind::sockperf:  // raw's encoder: the reply was made by the decoder
      return m.size() <= spec.max_message;
  }
  return false;
}

// sockperf: sockperf messages of fuzzer-chosen flags and payloads come back as the replies
// a sockperf server owes (the client flag cleared), or as nothing, in order.
inline int sockperf_round_trip(FuzzedDataProvider& fdp, const codec_spec& spec, std::uint32_t seed,
                               std::size_t max_chunk) {
  std::string wire;
  std::vector<std::string> expected;
  // Bound: every iteration consumes input from the provider, or stops.
  while (fdp.remaining_bytes() > 0 && expected.size() < 512) {
    const auto flags = static_cast<std::uint16_t>(fdp.ConsumeIntegral<std::uint16_t>() & 7);
    const std::string payload = fdp.ConsumeRandomLengthString(spec.max_message);
    const std::size_t length = sockperf::header_size + payload.size();
    if (length > spec.max_message) continue;
    std::vector<std::byte> m(length);
    const std::uint64_t seq = expected.size();
    sockperf::write_header({seq, flags, static_cast<std::uint32_t>(length)}, m);
    std::memcpy(m.data() + sockperf::header_size, payload.data(), payload.size());
    wire.append(reinterpret_cast<const char*>(m.data()), m.size());
    const bool answer = (flags & sockperf::flag_client) && (flags & sockperf::flag_pong_request) &&
                        !(flags & sockperf::flag_warmup);
    if (answer) {
      sockperf::write_header({seq, static_cast<std::uint16_t>(flags & ~sockperf::flag_client),
                              static_cast<std::uint32_t>(length)},
                             m);
      expected.emplace_back(reinterpret_cast<const char*>(m.data()), m.size());
    } else {
      expected.emplace_back();
    }
  }
  const auto back = feed(spec, wire, seed, max_chunk);
  require(!back.error, "decoding sockperf messages failed");
  require(back.finish.empty(), "a sockperf stream ended inside a message");
  require(back.messages == expected, "sockperf replies differ from what its server sends");
  return 0;
}

inline int run(codec_kind kind, const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);
  codec_spec spec;
  spec.kind = kind;
  // Small limits so -max_len=4096 inputs reach the "too long" paths.
  spec.max_message = fdp.ConsumeIntegralInRange<std::size_t>(1, 600);
  if (kind == codec_kind::sockperf)  // its header alone is 14 bytes
    spec.max_message = std::max(spec.max_message, sockperf::header_size);
  if (kind == codec_kind::fixed)
    spec.fixed_size =
        fdp.ConsumeIntegralInRange<std::size_t>(1, std::min<std::size_t>(spec.max_message, 64));
  const auto seed = fdp.ConsumeIntegral<std::uint32_t>();
  const auto max_chunk = fdp.ConsumeIntegralInRange<std::size_t>(1, 300);

  // 1. An arbitrary stream: chunking must not change what is decoded.
  const std::string stream = fdp.ConsumeRandomLengthString(4096);
  const auto whole = feed(spec, stream, seed, 0);
  const auto chunked = feed(spec, stream, seed, max_chunk);
  if (kind == codec_kind::raw) {
    require(joined(whole.messages) == joined(chunked.messages), "raw bytes changed by chunking");
  } else {
    require(whole.error == chunked.error, "chunking changed the error outcome");
    require(whole.messages == chunked.messages, "chunking changed the messages");
  }

  if (kind == codec_kind::sockperf) return sockperf_round_trip(fdp, spec, seed, max_chunk);

  // 2. Round trip: decode(encode(messages)) == messages, in fuzzer-chosen chunks.
  auto enc = make_encoder(spec);
  byte_buffer framed;
  std::vector<std::string> sent;
  // Bound: every iteration consumes input from the provider, or stops.
  while (fdp.remaining_bytes() > 0 && sent.size() < 512) {
    std::string m = fdp.ConsumeRandomLengthString(spec.max_message + 2);
    if (kind == codec_kind::fixed && fdp.ConsumeBool()) m.resize(spec.fixed_size, 'f');
    const std::size_t before = framed.size();
    bool accepted = true;
    try {
      enc->encode(std::as_bytes(std::span(m)), framed);
    } catch (const protocol_error&) {
      accepted = false;
      require(framed.size() == before, "a rejected message left bytes behind");
    }
    require(accepted == framable(spec, m), "encoder accepted or rejected the wrong message");
    if (accepted) sent.push_back(std::move(m));
  }
  const std::string wire(reinterpret_cast<const char*>(framed.data().data()), framed.size());
  const auto back = feed(spec, wire, seed, max_chunk);
  require(!back.error, "decoding encoded messages failed");
  require(back.finish.empty(), "encoded stream ended inside a frame");
  if (kind == codec_kind::raw) {
    require(joined(back.messages) == joined(sent), "raw round trip changed bytes");
  } else {
    require(back.messages == sent, "round trip changed the messages");
  }
  return 0;
}

}  // namespace netkit::fuzz
