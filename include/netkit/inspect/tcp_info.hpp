// One TCP socket's state and counters, as getsockopt(TCP_INFO) reports them.
#pragma once

#include <chrono>
#include <cstdint>

#include "netkit/inspect/tcp_state.hpp"

namespace netkit::inspect {

// A snapshot; every field is what the kernel reported at the time of the call. Counters a
// kernel too old to report them reads as zero.
struct tcp_info {
  tcp_state state = tcp_state::closed;
  std::uint8_t retransmits = 0;  // unrecovered RTO timeouts of the current segment
  std::uint8_t probes = 0;       // unanswered zero-window / keepalive probes
  std::uint8_t backoff = 0;      // RTO back-off exponent
  std::chrono::microseconds rto{0};
  std::chrono::microseconds rtt{0};  // smoothed
  std::chrono::microseconds rtt_var{0};
  std::chrono::microseconds min_rtt{0};
  std::uint32_t snd_mss = 0;
  std::uint32_t rcv_mss = 0;
  std::uint32_t snd_cwnd = 0;  // segments
  std::uint32_t snd_ssthresh = 0;
  std::uint32_t unacked = 0;  // segments in flight
  std::uint32_t lost = 0;
  std::uint32_t total_retrans = 0;  // segments retransmitted over the life of the socket (SYNs too)
  std::uint32_t segs_out = 0;
  std::uint32_t segs_in = 0;
  std::uint32_t notsent_bytes = 0;  // queued, not yet sent (e.g. behind a zero window)
  std::uint32_t snd_wnd = 0;        // peer's advertised window (kernel 5.19+)
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_acked = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_retrans = 0;
};

// getsockopt(fd, IPPROTO_TCP, TCP_INFO). Throws sys_error ("getsockopt TCP_INFO fd 7: ...")
// for a descriptor that is not a TCP socket.
tcp_info read_tcp_info(int fd);

}  // namespace netkit::inspect
