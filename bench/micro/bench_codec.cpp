// Decode throughput per codec over a pre-encoded stream: the decoder's cost alone (views into
// the stream, no copies), then through a byte_buffer the way a connection feeds it.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "netkit/buffer.hpp"
#include "netkit/codec/codec.hpp"

namespace {

using netkit::codec_spec;
using status = netkit::decode_result::status;

// About 4 MiB of frames (at least 16), so the stream is out of L2 like real socket input.
std::string encoded_stream(const codec_spec& spec, std::size_t message_size) {
  auto enc = netkit::make_encoder(spec);
  std::mt19937 rng(1);
  netkit::byte_buffer buf;
  const std::size_t count = std::max<std::size_t>(16, (4u << 20) / message_size);
  std::string m(message_size, 'a');
  for (std::size_t i = 0; i < count; ++i) {
    // Printable payload: valid for every codec, and memchr has to look at every byte.
    for (auto& c : m)
      c = static_cast<char>('a' + rng() % 26);
    enc->encode(std::as_bytes(std::span(m)), buf);
  }
  const auto d = buf.data();
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

codec_spec spec_for(const char* text, std::size_t message_size) {
  auto spec = codec_spec::parse(text);
  if (spec.kind == netkit::codec_kind::fixed) spec.fixed_size = message_size;
  if (spec.kind == netkit::codec_kind::raw) spec.max_message = message_size;
  return spec;
}

// Arg: message size. Bytes processed = wire bytes (headers and delimiters included).
void decode_stream(benchmark::State& state, const char* text) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto spec = spec_for(text, size);
  const std::string stream = encoded_stream(spec, size);
  const auto input = std::as_bytes(std::span(stream));
  auto dec = netkit::make_decoder(spec);
  std::size_t messages = 0;
  for (auto _ : state) {
    std::size_t off = 0;
    // Bound: every frame consumes >= 1 byte.
    while (off < input.size()) {
      const auto r = dec->decode(input.subspan(off));
      if (r.state != status::message) {
        state.SkipWithError("decode did not return a message");
        return;
      }
      benchmark::DoNotOptimize(r.message.data());
      off += r.consumed;
      ++messages;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input.size()));
  state.counters["msgs/s"] =
      benchmark::Counter(static_cast<double>(messages), benchmark::Counter::kIsRate);
}

// As a connection does it: append 64 KiB reads to a byte_buffer, decode, consume.
void decode_via_buffer(benchmark::State& state, const char* text) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto spec = spec_for(text, size);
  const std::string stream = encoded_stream(spec, size);
  auto dec = netkit::make_decoder(spec);
  constexpr std::size_t read_size = 64 * 1024;
  for (auto _ : state) {
    netkit::byte_buffer buf;
    for (std::size_t pos = 0; pos < stream.size(); pos += read_size) {
      buf.append(std::string_view(stream).substr(pos, read_size));
      for (;;) {
        const auto r = dec->decode(buf.data());
        if (r.state != status::message) break;
        benchmark::DoNotOptimize(r.message.data());
        buf.consume(r.consumed);
      }
    }
    if (!buf.empty()) state.SkipWithError("stream not fully decoded");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}

void message_sizes(benchmark::internal::Benchmark* b) {
  b->Arg(16)->Arg(1024)->Arg(65535);
}

BENCHMARK_CAPTURE(decode_stream, length32, "length")->Apply(message_sizes);
BENCHMARK_CAPTURE(decode_stream, length16, "length16")->Apply(message_sizes);
BENCHMARK_CAPTURE(decode_stream, line, "line")->Apply(message_sizes);
BENCHMARK_CAPTURE(decode_stream, crlf, "crlf")->Apply(message_sizes);
BENCHMARK_CAPTURE(decode_stream, fixed, "fixed:1")->Apply(message_sizes);
BENCHMARK_CAPTURE(decode_stream, raw, "raw")->Apply(message_sizes);
BENCHMARK_CAPTURE(decode_via_buffer, length32, "length")->Apply(message_sizes);
BENCHMARK_CAPTURE(decode_via_buffer, line, "line")->Apply(message_sizes);

}  // namespace
