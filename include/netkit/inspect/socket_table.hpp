// The kernel's table of TCP sockets (IPv4 and IPv6), filtered by state and port: what
// `ss -tan` shows. Read with netlink sock_diag (INET_DIAG) and, where netlink is refused,
// from /proc/net/tcp and /proc/net/tcp6. Sockets of this network namespace only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netkit/endpoint.hpp"
#include "netkit/inspect/tcp_state.hpp"

namespace netkit::inspect {

// Which timer the kernel has armed on the socket (idiag_timer, /proc's "tr" column).
enum class socket_timer : std::uint8_t {
  none = 0,
  retransmit = 1,  // also SYN and SYN-ACK retransmission, loss probes
  keepalive = 2,   // or another sk_timer (FIN_WAIT_2 of an orphan)
  time_wait = 3,   // the TIME_WAIT expiry
  zero_window_probe = 4,
};

std::string_view timer_name(socket_timer t) noexcept;  // "none", "retransmit", ...

struct socket_entry {
  tcp_state state = tcp_state::closed;
  endpoint local;                // tcp:// endpoints
  endpoint remote;               // the unspecified address and port 0 for a listener
  std::uint32_t recv_queue = 0;  // LISTEN: connections waiting in the accept queue
  std::uint32_t send_queue = 0;  // LISTEN: the backlog (from netlink; /proc shows 0)
  socket_timer timer = socket_timer::none;
  // Time left on that timer (TIME_WAIT: until the socket disappears). From /proc it has the
  // clock-tick resolution (10 ms at USER_HZ 100).
  std::chrono::milliseconds expires{0};
  std::uint32_t retransmits = 0;  // of the timer's current round
  std::uint32_t uid = 0;
  std::uint64_t inode = 0;  // 0 for TIME_WAIT and request (SYN_RECV) sockets: no file
};

enum class table_source {
  automatic,  // sock_diag; /proc/net/tcp{,6} when netlink is refused
  netlink,    // sock_diag only (throws if refused)
  proc,       // /proc/net/tcp{,6} only
};

std::string_view source_name(table_source s) noexcept;  // "automatic", "netlink", "proc"

struct socket_query {
  std::uint32_t states = all_states;  // mask of state_bit(...)
  // Keep sockets whose local or remote port is this one.
  std::optional<std::uint16_t> port;
  table_source source = table_source::automatic;
};

struct socket_table {
  table_source source = table_source::netlink;  // where the entries came from (never automatic)
  std::string fallback_reason;                  // automatic only: why netlink was not used
  std::vector<socket_entry> entries;
};

// Lists the sockets that match. Throws sys_error when the chosen source cannot be read.
socket_table list_tcp_sockets(const socket_query& query = {});

// The entry whose local and remote endpoints are these, if the table has one.
const socket_entry* find_connection(const socket_table& table, const endpoint& local,
                                    const endpoint& remote);

// Parses the text of /proc/net/tcp (AF_INET) or /proc/net/tcp6 (AF_INET6). Lines that do not
// parse (the header) are skipped. `ticks_per_second` converts the timer column
// (sysconf(_SC_CLK_TCK)).
std::vector<socket_entry> parse_proc_net_tcp(std::string_view text, int family,
                                             long ticks_per_second);

}  // namespace netkit::inspect
