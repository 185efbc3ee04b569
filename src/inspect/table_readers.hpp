// The two readers behind list_tcp_sockets (socket_table.cpp chooses, filters by port).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "netkit/inspect/socket_table.hpp"

namespace netkit::detail {

// Netlink sock_diag dump of TCP over IPv4 and IPv6 in the states of `states` and, if given,
// with `port` as local or remote port: both filtered by the kernel (a state mask and a
// bytecode filter), so a busy host's thousands of sockets never cross into user space.
// Throws sys_error naming the step that failed.
std::vector<inspect::socket_entry> read_sock_diag(std::uint32_t states,
                                                  std::optional<std::uint16_t> port);

// /proc/net/tcp and /proc/net/tcp6 (a missing tcp6: IPv6 disabled), filtered the same way;
// lines of other states and ports are skipped before they are turned into entries.
std::vector<inspect::socket_entry> read_proc_net_tcp(std::uint32_t states,
                                                     std::optional<std::uint16_t> port);

// parse_proc_net_tcp with the filters of read_proc_net_tcp.
std::vector<inspect::socket_entry> parse_proc_lines(std::string_view text, int family,
                                                    long ticks_per_second, std::uint32_t states,
                                                    std::optional<std::uint16_t> port);

// An IP endpoint of transport tcp from raw network-order address bytes and a host-order port.
endpoint tcp_endpoint(int family, const void* address, std::uint16_t port);

}  // namespace netkit::detail
