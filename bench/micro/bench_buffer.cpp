// byte_buffer hot paths: append + consume in steady state, prepare/commit reads, and the
// compaction pattern of a reader that keeps a partial frame behind.
#include <string>

#include <benchmark/benchmark.h>

#include "netkit/buffer.hpp"

namespace {

// Arg: bytes per append; the buffer empties every time (request/response traffic).
void append_consume(benchmark::State& state) {
  const std::string chunk(static_cast<std::size_t>(state.range(0)), 'x');
  netkit::byte_buffer buf;
  for (auto _ : state) {
    buf.append(chunk);
    benchmark::DoNotOptimize(buf.data().data());
    buf.consume(buf.size());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * chunk.size()));
}
BENCHMARK(append_consume)->Arg(16)->Arg(1024)->Arg(65536);

// Arg: bytes per append; each round leaves 7 bytes (a partial frame) unread, so room comes
// from compaction or growth.
void append_consume_partial(benchmark::State& state) {
  const std::string chunk(static_cast<std::size_t>(state.range(0)), 'x');
  netkit::byte_buffer buf;
  buf.append("partial");
  for (auto _ : state) {
    buf.append(chunk);
    benchmark::DoNotOptimize(buf.data().data());
    buf.consume(chunk.size());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * chunk.size()));
}
BENCHMARK(append_consume_partial)->Arg(16)->Arg(1024)->Arg(65536);

// prepare() + commit() of a 16 KiB "read", consumed in 1 KiB messages.
void prepare_commit(benchmark::State& state) {
  netkit::byte_buffer buf;
  constexpr std::size_t read = 16 * 1024;
  for (auto _ : state) {
    auto tail = buf.prepare(read);
    benchmark::DoNotOptimize(tail.data());
    buf.commit(read);
    for (std::size_t i = 0; i < read / 1024; ++i)
      buf.consume(1024);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * read));
}
BENCHMARK(prepare_commit);

// Lazy allocation cost: a fresh buffer per small message (one allocation each).
void fresh_buffer_small_message(benchmark::State& state) {
  const std::string msg(64, 'm');
  for (auto _ : state) {
    netkit::byte_buffer buf;
    buf.append(msg);
    benchmark::DoNotOptimize(buf.data().data());
  }
}
BENCHMARK(fresh_buffer_small_message);

}  // namespace
