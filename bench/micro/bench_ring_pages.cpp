// The io_uring receive ring's memory: the kernel takes provided buffers in ring order, so
// at 16 KiB per message the copies walk the whole ring (128 buffers = 2 MiB at 1,000
// connections here) instead of reusing one hot scratch buffer as the readiness engines do.
// This measures that walk in user space, the same copy pattern as the kernel's
// _copy_to_iter into the buffers followed by the reply's _copy_from_iter out of them, with
// 4 KiB pages and with transparent huge pages (MADV_HUGEPAGE): the two together tell a
// TLB cost (huge pages remove it) from a cache cost (they do not). Results:
// docs/benchmarks.md. Args: buffer bytes, buffers in the ring.
#include <sys/mman.h>

#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

struct mapping {
  std::byte* base = nullptr;
  std::size_t bytes = 0;
  mapping(std::size_t n, bool huge) : bytes(n) {
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    base = static_cast<std::byte*>(p);
    ::madvise(base, n, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    std::memset(base, 1, n);  // committed up front, as a warmed-up ring is
  }
  ~mapping() { ::munmap(base, bytes); }
  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;
};

void ring_walk(benchmark::State& state, bool huge) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto count = static_cast<std::size_t>(state.range(1));
  mapping ring(size * count, huge);
  std::vector<std::byte> message(size, std::byte{7}), reply(size);
  std::size_t next = 0;
  for (auto _ : state) {
    std::byte* buffer = ring.base + next * size;
    std::memcpy(buffer, message.data(), size);  // the request lands in the next buffer
    benchmark::ClobberMemory();
    std::memcpy(reply.data(), buffer, size);  // the reply is sent from it
    benchmark::DoNotOptimize(reply.data());
    next = next + 1 == count ? 0 : next + 1;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size * 2));
}

void ring_walk_small_pages(benchmark::State& state) {
  ring_walk(state, false);
}
void ring_walk_huge_pages(benchmark::State& state) {
  ring_walk(state, true);
}

// 1 buffer: the readiness engines' one scratch buffer; 128 and 1024: the ring at 1,000
// connections and fully grown.
#define RING_ARGS Args({16384, 1})->Args({16384, 128})->Args({16384, 1024})->Args({4096, 1024})
BENCHMARK(ring_walk_small_pages)->RING_ARGS;
BENCHMARK(ring_walk_huge_pages)->RING_ARGS;

}  // namespace
