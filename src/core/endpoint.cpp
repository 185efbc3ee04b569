#include "netkit/endpoint.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/resolve.hpp"

namespace netkit {

std::string_view scheme_of(transport t) noexcept {
  switch (t) {
    case transport::tcp:
      return "tcp";
    case transport::udp:
      return "udp";
    case transport::unix_stream:
      return "unix";
    case transport::unix_dgram:
      return "unix-dgram";
  }
  return "?";
}

bool is_unix(transport t) noexcept {
  return t == transport::unix_stream || t == transport::unix_dgram;
}

bool is_stream(transport t) noexcept {
  return t == transport::tcp || t == transport::unix_stream;
}

endpoint::endpoint() noexcept = default;

int endpoint::socket_type() const noexcept {
  return is_stream(transport_) ? SOCK_STREAM : SOCK_DGRAM;
}

namespace {

[[noreturn]] void bad_uri(std::string_view uri, std::string_view why) {
  throw usage_error(
      fmt::format("bad URI '{}': {} (expected tcp://HOST:PORT, udp://HOST:PORT, "
                  "unix:///PATH, unix-dgram:///PATH or unix://@NAME)",
                  uri, why));
}

struct uri_parts {
  transport kind;
  std::string_view rest;  // after "scheme://"
};

uri_parts split_scheme(std::string_view uri) {
  auto sep = uri.find("://");
  if (sep == std::string_view::npos) bad_uri(uri, "missing '://'");
  auto scheme = uri.substr(0, sep);
  uri_parts parts{transport::tcp, uri.substr(sep + 3)};
  if (scheme == "tcp")
    parts.kind = transport::tcp;
  else if (scheme == "udp")
    parts.kind = transport::udp;
  else if (scheme == "unix")
    parts.kind = transport::unix_stream;
  else if (scheme == "unix-dgram")
    parts.kind = transport::unix_dgram;
  else
    bad_uri(uri, fmt::format("unknown scheme '{}'", scheme));
  return parts;
}

struct host_port {
  std::string host;
  std::uint16_t port;
};

host_port split_host_port(std::string_view uri, std::string_view rest) {
  std::string_view host, port_text;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) bad_uri(uri, "missing ']' after IPv6 address");
    host = rest.substr(1, close - 1);
    auto after = rest.substr(close + 1);
    if (after.empty() || after.front() != ':') bad_uri(uri, "missing ':PORT' after ']'");
    port_text = after.substr(1);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) bad_uri(uri, "missing ':PORT'");
    host = rest.substr(0, colon);
    if (host.find(':') != std::string_view::npos)
      bad_uri(uri, "IPv6 addresses must be written in brackets, e.g. tcp://[::1]:9000");
    port_text = rest.substr(colon + 1);
  }
  if (host.empty()) bad_uri(uri, "missing host");
  if (auto slash = port_text.find('/'); slash != std::string_view::npos)
    bad_uri(uri, "unexpected path after the port");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
      value > 65535)
    bad_uri(uri, fmt::format("port '{}' is not a number from 0 to 65535", port_text));
  return {std::string(host), static_cast<std::uint16_t>(value)};
}

// A numeric address needs no resolver; try it first so "tcp://127.0.0.1:0" never
// touches getaddrinfo.
bool parse_numeric(const std::string& host, std::uint16_t port, sockaddr_storage& ss,
                   socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

}  // namespace

endpoint endpoint::unix_path(transport t, std::string_view path) {
  if (path.empty()) throw usage_error("empty Unix socket path");
  if (path.size() > max_unix_path)
    throw sys_error(
        ENAMETOOLONG, "unix socket path",
        fmt::format("{} ({} bytes; at most {} fit in sun_path)", path, path.size(), max_unix_path));
  if (path.find('\0') != std::string_view::npos)
    throw usage_error(fmt::format("Unix socket path '{}' contains a NUL byte", path));
  endpoint ep;
  ep.transport_ = t;
  auto* un = reinterpret_cast<sockaddr_un*>(&ep.storage_);
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  un->sun_path[path.size()] = '\0';
  ep.length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return ep;
}

endpoint endpoint::unix_abstract(transport t, std::string_view name) {
  if (name.size() > max_unix_path)
    throw sys_error(ENAMETOOLONG, "abstract unix socket name",
                    fmt::format("@{} ({} bytes; at most {})", name, name.size(), max_unix_path));
  endpoint ep;
  ep.transport_ = t;
  auto* un = reinterpret_cast<sockaddr_un*>(&ep.storage_);
  un->sun_family = AF_UNIX;
  un->sun_path[0] = '\0';
  std::memcpy(un->sun_path + 1, name.data(), name.size());
  // The abstract name is exactly the bytes after the NUL: no terminator counted.
  ep.length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return ep;
}

std::vector<endpoint> endpoint::resolve_all(std::string_view uri) {
  auto parts = split_scheme(uri);
  if (is_unix(parts.kind)) return {parse(uri)};
  auto hp = split_host_port(uri, parts.rest);
  endpoint ep;
  ep.transport_ = parts.kind;
  if (parse_numeric(hp.host, hp.port, ep.storage_, ep.length_)) return {ep};
  // getaddrinfo would accept inet_aton's shorthand ("1.2.3" = 1.2.0.3): surprising in a URI.
  if (hp.host.find_first_not_of("0123456789.") == std::string::npos)
    bad_uri(uri, fmt::format("'{}' is not an IPv4 address (a.b.c.d)", hp.host));
  return resolve(hp.host, hp.port, parts.kind);
}

endpoint endpoint::parse(std::string_view uri) {
  auto parts = split_scheme(uri);
  if (is_unix(parts.kind)) {
    auto rest = parts.rest;
    if (rest.starts_with('@')) {
      if (rest.size() == 1) bad_uri(uri, "empty abstract socket name");
      return unix_abstract(parts.kind, rest.substr(1));
    }
    if (!rest.starts_with('/'))
      bad_uri(uri, "a Unix socket path must be absolute (unix:///path) or abstract (unix://@name)");
    return unix_path(parts.kind, rest);
  }
  auto all = resolve_all(uri);
  return all.front();
}

endpoint endpoint::from_sockaddr(transport t, const sockaddr* addr, socklen_t len) {
  endpoint ep;
  ep.transport_ = t;
  if (len > sizeof ep.storage_) len = sizeof ep.storage_;
  std::memcpy(&ep.storage_, addr, len);
  ep.length_ = len;
  return ep;
}

std::uint16_t endpoint::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

std::string endpoint::host() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, text,
              sizeof text);
  else if (family() == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, text,
              sizeof text);
  return text;
}

bool endpoint::is_abstract() const noexcept {
  auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
  return family() == AF_UNIX && length_ > offsetof(sockaddr_un, sun_path) &&
         un->sun_path[0] == '\0';
}

std::string endpoint::path() const {
  if (family() != AF_UNIX) return {};
  auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
  auto n =
      length_ > offsetof(sockaddr_un, sun_path) ? length_ - offsetof(sockaddr_un, sun_path) : 0;
  if (n == 0) return {};  // unnamed (e.g. the client side of a socketpair or connect)
  if (un->sun_path[0] == '\0') return std::string(un->sun_path + 1, n - 1);
  return std::string(un->sun_path, strnlen(un->sun_path, n));
}

std::string endpoint::to_uri() const {
  switch (family()) {
    case AF_INET:
      return fmt::format("{}://{}:{}", scheme_of(transport_), host(), port());
    case AF_INET6:
      return fmt::format("{}://[{}]:{}", scheme_of(transport_), host(), port());
    case AF_UNIX:
      if (is_abstract()) return fmt::format("{}://@{}", scheme_of(transport_), path());
      return fmt::format("{}://{}", scheme_of(transport_), path());
    default:
      return fmt::format("{}://(unset)", scheme_of(transport_));
  }
}

bool operator==(const endpoint& a, const endpoint& b) noexcept {
  return a.transport_ == b.transport_ && a.length_ == b.length_ &&
         std::memcmp(&a.storage_, &b.storage_, a.length_) == 0;
}

}  // namespace netkit
