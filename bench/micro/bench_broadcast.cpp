// The broadcast path: frame a message once and queue it on 1,000 connections.
//
// Each connection is one end of a socketpair, adopted by a stream server on an epoll
// loop; the other end never reads, and every socket buffer is filled before timing, so each
// broadcast is queued on all 1,000 output queues (nothing reaches the kernel). A queued
// shared frame costs each recipient a reference, never a copy of the payload:
//   heap_B_per_recipient  heap growth per recipient per broadcast, the frames themselves
//                         (one per broadcast) subtracted (malloc accounting).
// It stays the same for 64 B, 1 KiB and 16 KiB messages: the queue entry alone, so the
// payload bytes copied per recipient are 0. A copy per recipient would show as
// heap_B_per_recipient growing with the message size.
#include <malloc.h>
#include <sys/socket.h>

#include <memory>
#include <vector>

#include <benchmark/benchmark.h>

#include "netkit/net/stream_server.hpp"
#include "netkit/process.hpp"
#include "netkit/socket.hpp"

namespace {

constexpr std::size_t recipients = 1000;

std::size_t heap_in_use() {
  struct mallinfo2 m = ::mallinfo2();
  return m.uordblks + m.hblkhd;
}

struct rig {
  explicit rig(std::size_t message_size) : loop("epoll") {
    netkit::raise_nofile_limit();
    netkit::server_options so;
    so.listen = netkit::endpoint::parse("tcp://127.0.0.1:0");
    so.codec = netkit::codec_spec::parse("length,max=1048576");
    so.high_water = std::size_t{1} << 40;
    so.hard_limit = std::size_t{1} << 40;
    server = netkit::make_stream_server(loop, so, {});
    auto peer = netkit::endpoint::unix_abstract(netkit::transport::unix_stream, "bench-peer");
    for (std::size_t i = 0; i < recipients; ++i) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        throw std::runtime_error("socketpair failed: raise the descriptor limit");
      netkit::set_send_buffer(sv[0], 4096);
      silent.emplace_back(sv[1]);
      server->adopt(netkit::unique_fd(sv[0]), peer);
    }
    // Fill every socket buffer: from here on, broadcasts only queue.
    std::vector<std::byte> filler(256 << 10);
    auto frame = server->frame(filler);
    for (int i = 0; i < 4; ++i)
      server->broadcast(frame);
    payload.assign(message_size, std::byte{'x'});
  }
  netkit::event_loop loop;
  std::unique_ptr<netkit::stream_server> server;
  std::vector<netkit::unique_fd> silent;
  std::vector<std::byte> payload;
};

void broadcast_to_1000(benchmark::State& state) {
  rig r(static_cast<std::size_t>(state.range(0)));
  const std::size_t before = heap_in_use();
  std::size_t frames = 0, framed_bytes = 0;
  for (auto _ : state) {
    auto frame = r.server->frame(r.payload);
    framed_bytes += frame.size();
    benchmark::DoNotOptimize(r.server->broadcast(frame));
    ++frames;
  }
  const double growth = static_cast<double>(heap_in_use() - before);
  // The frames themselves are one copy each, shared by all recipients.
  const double per_recipient =
      (growth - static_cast<double>(framed_bytes)) / static_cast<double>(frames * recipients);
  state.counters["heap_B_per_recipient"] = per_recipient;
  state.counters["recipients"] = recipients;
  state.SetItemsProcessed(static_cast<std::int64_t>(frames * recipients));
  state.SetBytesProcessed(static_cast<std::int64_t>(framed_bytes));
}

}  // namespace

// Fixed iterations: queues grow with every broadcast (nobody reads), so memory is bounded
// by the count (2,000 x 1,000 queue entries).
BENCHMARK(broadcast_to_1000)
    ->Arg(64)
    ->Arg(1024)
    ->Arg(16384)
    ->Iterations(2000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
