// Datagram I/O for udp:// and unix-dgram:// sockets. Truncation is never silent and a
// zero-length datagram is a message, not an end of stream. Per-message path: returns
// values, never throws for an OS error.
#pragma once

#include <cstddef>
#include <span>

#include "netkit/endpoint.hpp"
#include "netkit/error.hpp"
#include "netkit/fd.hpp"
#include "netkit/message.hpp"
#include "netkit/socket.hpp"

namespace netkit {

// Largest UDP payload: 65535 minus the IP and UDP headers (IPv4 20 + 8; IPv6 counts only
// the 8-byte UDP header against its 65535-byte payload length). One more byte: EMSGSIZE.
inline constexpr std::size_t max_udp4_payload = 65507;
inline constexpr std::size_t max_udp6_payload = 65527;

// One recvmsg into `buffer`. Check `truncated`: the datagram had `full_size` bytes but
// only `n` (== buffer.size()) were kept; the rest is gone. `from` is the sender.
// n == 0 with ok() is an empty datagram. For connected UDP sockets err may be
// ECONNREFUSED (an ICMP port-unreachable from an earlier send).
received_message recv_datagram(int sock, std::span<std::byte> buffer, transport kind,
                               recv_flags flags = recv_flags::none);

// One sendmsg of `data` as a single datagram, to `to` or (nullptr) the connected peer.
// A datagram over the transport's maximum returns EMSGSIZE; the socket stays usable.
io_result send_datagram(int sock, std::span<const std::byte> data, const endpoint* to = nullptr);

// A datagram socket connected to `server`, so replies come only from it and an ICMP
// port-unreachable shows up as ECONNREFUSED on the next send/recv. For unix-dgram the
// socket is first autobound to an abstract name (a reply needs an address to go to).
// Throws sys_error naming the endpoint.
unique_fd open_dgram_client(const endpoint& server, io_mode mode = io_mode::blocking);

}  // namespace netkit
