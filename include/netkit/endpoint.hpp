// One address type for every transport, parsed from and printed to URIs:
//   tcp://127.0.0.1:9000  tcp://[::1]:9000  tcp://localhost:9000  udp://host:port
//   unix:///path/to.sock  unix-dgram:///path  unix://@abstract-name  unix-dgram://@name
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <sys/socket.h>

namespace netkit {

enum class transport { tcp, udp, unix_stream, unix_dgram };

std::string_view scheme_of(transport t) noexcept;  // "tcp", "udp", "unix", "unix-dgram"
bool is_unix(transport t) noexcept;
bool is_stream(transport t) noexcept;  // tcp and unix_stream

// Longest filesystem path or abstract name that fits sun_path with room for the NUL
// terminator; longer ones are rejected, never truncated.
inline constexpr std::size_t max_unix_path = 107;

class endpoint {
 public:
  endpoint() noexcept;

  // Parses a URI. A host name is resolved with getaddrinfo and the first address is
  // used (see resolve_all for every address). Throws usage_error naming the URI and
  // the problem, or sys_error if resolution fails.
  static endpoint parse(std::string_view uri);

  // Every address a URI's host resolves to, in getaddrinfo's order.
  static std::vector<endpoint> resolve_all(std::string_view uri);

  // Builds an endpoint from what the kernel reported (accept, getsockname, recvfrom).
  static endpoint from_sockaddr(transport t, const sockaddr* addr, socklen_t len);

  static endpoint unix_path(transport t, std::string_view path);      // throws if too long
  static endpoint unix_abstract(transport t, std::string_view name);  // throws if too long

  std::string to_uri() const;

  transport kind() const noexcept { return transport_; }
  int family() const noexcept { return storage_.ss_family; }
  int socket_type() const noexcept;  // SOCK_STREAM or SOCK_DGRAM
  const sockaddr* addr() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* addr() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t length() const noexcept { return length_; }

  // IP endpoints only.
  std::uint16_t port() const noexcept;
  std::string host() const;  // numeric address, without brackets

  // Unix endpoints only.
  bool is_abstract() const noexcept;
  std::string path() const;  // filesystem path, or abstract name without the leading '@'

  friend bool operator==(const endpoint& a, const endpoint& b) noexcept;

 private:
  transport transport_ = transport::tcp;
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

}  // namespace netkit
