// TCP's connection states as the Linux kernel numbers them (include/net/tcp_states.h), so
// a value read from TCP_INFO, sock_diag or /proc/net/tcp converts without a table.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace netkit::inspect {

// RFC 793's eleven states; `closed` is the kernel's TCP_CLOSE. The kernel's internal
// TCP_NEW_SYN_RECV (a request socket) is reported as syn_recv by sock_diag and /proc.
enum class tcp_state : std::uint8_t {
  established = 1,
  syn_sent = 2,
  syn_recv = 3,
  fin_wait1 = 4,
  fin_wait2 = 5,
  time_wait = 6,
  closed = 7,
  close_wait = 8,
  last_ack = 9,
  listen = 10,
  closing = 11,
};

inline constexpr int tcp_state_count = 11;

// "ESTABLISHED", "FIN_WAIT_1", "TIME_WAIT", ...
std::string_view state_name(tcp_state s) noexcept;

// The state the kernel means by `value` (1..11; 12, TCP_NEW_SYN_RECV, is syn_recv);
// nullopt for anything else.
std::optional<tcp_state> state_from_kernel(unsigned value) noexcept;

// Bit for `s` in a kernel state mask (TCPF_*: 1 << state), e.g. for socket_query::states.
constexpr std::uint32_t state_bit(tcp_state s) noexcept {
  return std::uint32_t{1} << static_cast<unsigned>(s);
}

inline constexpr std::uint32_t all_states = 0xFFE;  // bits 1..11

}  // namespace netkit::inspect
