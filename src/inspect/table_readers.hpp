// The two readers behind list_tcp_sockets (socket_table.cpp chooses, filters by port).
#pragma once

#include <cstdint>
#include <vector>

#include "netkit/inspect/socket_table.hpp"

namespace netkit::detail {

// Netlink sock_diag dump of TCP over IPv4 and IPv6, in the states of `states` (filtered by
// the kernel). Throws sys_error naming the step that failed.
std::vector<inspect::socket_entry> read_sock_diag(std::uint32_t states);

// /proc/net/tcp and /proc/net/tcp6 (a missing tcp6: IPv6 disabled), filtered by `states`.
std::vector<inspect::socket_entry> read_proc_net_tcp(std::uint32_t states);

// An IP endpoint of transport tcp from raw network-order address bytes and a host-order port.
endpoint tcp_endpoint(int family, const void* address, std::uint16_t port);

}  // namespace netkit::detail
