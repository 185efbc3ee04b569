// getaddrinfo/getnameinfo/gethostname: the modern replacements for
// gethostbyname/gethostbyaddr (thread-safe, IPv6-aware).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netkit/endpoint.hpp"

namespace netkit {

// Every address of `host` for `t` (tcp or udp) and `port`. Throws sys_error naming
// the host with gai_strerror's text when the name does not resolve.
std::vector<endpoint> resolve(std::string_view host, std::uint16_t port, transport t);

// Reverse lookup (getnameinfo with NI_NAMEREQD); nullopt when no name is registered.
std::optional<std::string> reverse_name(const endpoint& ep);

// gethostname(2).
std::string host_name();

}  // namespace netkit
