// What `netkit bench` is asked to do: the whole configuration, as the command line gave it
// and as --json echoes it back, so a matrix script can record each point exactly.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "netkit/codec/codec.hpp"
#include "netkit/endpoint.hpp"

namespace netkit::loadgen {

enum class bench_mode {
  pingpong,  // each connection keeps --window blocks bouncing: whatever comes back goes again
  rr,        // closed loop: one request, its whole reply, the next request
  rate,      // open loop: requests at a target total rate, latency from the intended time
  churn,     // connect, one exchange, close, again: connections per second
};
enum class spacing { poisson, uniform };
// echo: frames of the codec, echoed. sockperf: sockperf messages asking for a pong, as
// `sockperf ping-pong` sends them (the target: `sockperf server` or netkit's
// `--codec sockperf`).
enum class wire_protocol { echo, sockperf };

std::string_view to_string(bench_mode m) noexcept;
std::string_view to_string(spacing s) noexcept;
std::string_view to_string(wire_protocol p) noexcept;

// Largest --window: 1024 blocks in flight per connection is far past what it takes to keep
// a server's queue full, and bounds the client's per-connection bookkeeping.
inline constexpr std::size_t max_window = 1024;

struct bench_config {
  bench_mode mode = bench_mode::rr;
  endpoint target;
  std::string model = "epoll";  // the client's event-loop backend
  codec_spec codec{codec_kind::raw};
  wire_protocol protocol = wire_protocol::echo;
  std::size_t connections = 1;  // active
  // pingpong: messages each connection keeps in flight (a reply answered by a new request).
  std::size_t window = 1;
  std::size_t idle = 0;   // held open beside them, silent
  std::size_t size = 64;  // payload bytes per message (sockperf: the whole message)
  std::chrono::nanoseconds duration = std::chrono::seconds(5);
  std::chrono::nanoseconds warmup = std::chrono::seconds(1);
  double rate = 0;  // rate mode: messages per second in total
  spacing spacing_kind = spacing::poisson;
  std::size_t threads = 1;
  std::size_t processes = 1;
  std::vector<endpoint> sources;            // empty: the kernel's choice
  std::chrono::milliseconds timeout{5000};  // connect; a datagram reply; a stalled stream
  bool reconnect = false;                   // a lost connection is made again
  std::uint64_t seed = 0;                   // 0: random
  bool json = false;
  int server_pid = 0;  // > 0: also measure this process tree's CPU over the window
  // "measuring" and "measured" lines on stderr as the measured window opens and closes
  // (written by the first worker), so a script can read a server's CPU time over it.
  bool mark_window = false;
  bool progress = false;  // a live line on stdout (only when it is a terminal)

  // The bytes on the wire for one request, and so for one reply.
  std::size_t frame_size() const;
  bool stream() const noexcept { return is_stream(target.kind()); }
};

// "127.0.0.1-127.0.0.8" (IPv4, at most 65,536 addresses), "127.0.0.1" or "::1" (one), or a
// comma-separated list of those: tcp:// endpoints with port 0. Throws usage_error.
std::vector<endpoint> parse_sources(std::string_view text);

// The share of `total` that part `index` of `parts` gets (the first ones get the remainder).
std::size_t share_of(std::size_t total, std::size_t parts, std::size_t index) noexcept;

}  // namespace netkit::loadgen
