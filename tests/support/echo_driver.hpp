// Drives many echo clients at once from one thread, on the library's client side: one
// stream_client on an event_loop of the backend the caller names, so every suite that
// passes its backend runs the connector and the client connection core on that backend
// too. Each client sends a byte stream of whole frames in random splits while reading the
// echo, and checks that what comes back is the same stream byte for byte: for every codec
// the echo of well-formed frames re-encodes to exactly the input, and for raw the byte
// stream is the message.
//
// The client side uses codec raw and cuts the framed stream itself: each piece is one
// raw message, sent on its own turn, so the server sees the splits a plan asks for. A
// connection's queued_output() plays the part of EAGAIN (no more than 64 KiB is queued per
// client), and shutdown(SHUT_WR) on its fd() is the half-close once that reaches 0.
//
// Two features are not expressible on stream_client, so plans that use them keep the
// driver's own socket code (on the same loop, as the poll(2) driver had it):
//  - slow_for: a connection reads as long as its socket is readable (reads pause only for
//    its own back-pressure, which the application cannot trigger: connection has no
//    pause_reading());
//  - rcvbuf: SO_RCVBUF must be set before connect(2), and the connector makes its socket
//    itself (connect_options has no socket-option hook). Set afterwards, the peer keeps
//    the window it saw in the handshake; once the window shrinks below half of that the
//    sender waits on zero-window probes and a 16 MiB echo stalls for tens of seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "netkit/codec/codec.hpp"
#include "netkit/endpoint.hpp"
#include "support/test_env.hpp"

namespace netkit::test {

// `messages` random messages framed with `spec`: payload sizes 1..max_payload (fixed:N
// uses N), bytes that never contain the codec's delimiter; raw gives random bytes of the
// same total. Deterministic for a given generator state.
std::vector<std::byte> make_framed_stream(const codec_spec& spec, std::mt19937_64& rng,
                                          std::size_t messages, std::size_t max_payload);

struct echo_plan;
// `clients` plans, each its own stream of `messages` frames of `spec` (payloads up to
// max_payload) sent in splits of up to max_split bytes (0: unsplit).
std::vector<echo_plan> make_echo_plans(const codec_spec& spec, std::size_t clients,
                                       std::size_t messages, std::size_t max_payload,
                                       std::size_t max_split, std::uint64_t seed);

// Reliability case 11's client: about `bytes` of whole frames of `spec` (1 MiB blocks for
// raw, blocks of 256 frames of up to 4 KiB otherwise, repeated), then shutdown(SHUT_WR),
// then the server's EOF.
echo_plan make_half_close_plan(const codec_spec& spec, std::size_t bytes, std::uint64_t seed);

// Reliability case 10 staged against `server`: 20 clients send half a frame of `spec` and
// reset (SO_LINGER {1, 0}); then one client with a 4 KiB receive buffer sends frames
// without reading (8 MiB or 2 s, whichever first: the server backs up and holds output
// for it) and resets. Returns the bytes that last client got to send.
std::size_t stage_resets_mid_message(const endpoint& server, const codec_spec& spec,
                                     std::uint64_t seed);

struct echo_plan {
  // Whole frames; the client sends them `repeat` times back to back.
  std::shared_ptr<const std::vector<std::byte>> block;
  std::size_t repeat = 1;
  // 0: each send offers everything left; otherwise each send is 1..max_split bytes
  // (random), one send per client per turn so clients interleave.
  std::size_t max_split = 0;
  // shutdown(SHUT_WR) after the last byte, then the server's EOF is required.
  bool half_close = false;
  // Slow reader: until `slow_for` has passed since the start, read at most slow_chunk
  // bytes every slow_interval; afterwards read at full speed.
  std::chrono::milliseconds slow_for{0};
  std::size_t slow_chunk = 1024;
  std::chrono::milliseconds slow_interval{10};
  int rcvbuf = 0;  // SO_RCVBUF before connect, 0: default

  std::size_t total() const { return block->size() * repeat; }
};

struct echo_result {
  std::size_t sent = 0;
  std::size_t received = 0;
  bool eof = false;
  // errno of a failed connect/send/recv; ECONNRESET for a connection closed as reset
  // (close_reason::reset carries no errno).
  int err = 0;
  std::string closed;                      // any other close_reason that ended the client early
  std::optional<std::size_t> mismatch_at;  // first differing offset
  std::string mismatch_detail;             // expected vs. received bytes around it
  std::string problem(const echo_plan& plan) const;  // empty when the echo was exact
};

struct echo_run {
  std::vector<echo_result> results;
  bool timed_out = false;
  std::chrono::milliseconds elapsed{0};
  // Empty when every client got its exact echo; otherwise the first few problems.
  std::string problems(const std::vector<echo_plan>& plans) const;
};

// Runs every plan as its own connection to `server`, on an event_loop of `backend`,
// until all finish or the deadline. Connections are matched to plans in the order they
// are established (all go to the same server). `tick`, if set, is called about every
// 20 ms (e.g. to sample the server's RSS).
echo_run run_echo_clients(const endpoint& server, const std::vector<echo_plan>& plans,
                          deadline until, std::uint64_t seed, const std::string& backend = "epoll",
                          const std::function<void()>& tick = {});

}  // namespace netkit::test
