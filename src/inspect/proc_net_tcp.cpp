// /proc/net/tcp{,6}: one line per socket, addresses as the hex of the raw network-order
// 32-bit words, ports in host-order hex, the timer in clock ticks (net/ipv4/tcp_ipv4.c
// get_tcp4_sock, get_openreq4, get_timewait4_sock).
#include <netinet/in.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "inspect/table_readers.hpp"
#include "netkit/error.hpp"

namespace netkit::inspect {

namespace {

using netkit::detail::tcp_endpoint;

template <typename T>
bool parse_hex(std::string_view text, T& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  return ec == std::errc{} && end == text.data() + text.size();
}

template <typename T>
bool parse_dec(std::string_view text, T& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
  return ec == std::errc{} && end == text.data() + text.size();
}

// "0100007F:1F90" (IPv4) or 32 hex digits and a port (IPv6).
bool parse_address(std::string_view text, int family, endpoint& out) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view hex = text.substr(0, colon);
  std::size_t words = family == AF_INET ? 1 : 4;
  if (hex.size() != words * 8) return false;
  std::array<std::uint32_t, 4> address{};
  for (std::size_t i = 0; i < words; ++i)
    if (!parse_hex(hex.substr(i * 8, 8), address[i])) return false;
  std::uint16_t port = 0;
  if (!parse_hex(text.substr(colon + 1), port)) return false;
  out = tcp_endpoint(family, address.data(), port);
  return true;
}

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ')
      ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ')
      ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

// The port of "ADDRESS:PORT", if it parses.
std::optional<std::uint16_t> port_of(std::string_view address) {
  auto colon = address.find(':');
  std::uint16_t port = 0;
  if (colon == std::string_view::npos || !parse_hex(address.substr(colon + 1), port))
    return std::nullopt;
  return port;
}

// "sl local rem st tx:rx tr:when retrnsmt uid timeout inode ..."
std::optional<socket_entry> parse_line(std::string_view line, int family, long ticks,
                                       std::uint32_t states, std::optional<std::uint16_t> port) {
  auto f = fields_of(line);
  if (f.size() < 10 || f[0].empty() || f[0].back() != ':') return std::nullopt;
  unsigned state = 0;
  if (!parse_hex(f[3], state)) return std::nullopt;
  auto kernel_state = state_from_kernel(state);
  if (!kernel_state || !(states & state_bit(*kernel_state))) return std::nullopt;
  if (port && port_of(f[1]) != port && port_of(f[2]) != port) return std::nullopt;
  socket_entry e;
  e.state = *kernel_state;
  if (!parse_address(f[1], family, e.local) || !parse_address(f[2], family, e.remote))
    return std::nullopt;
  auto queues = f[4].find(':');
  auto timer = f[5].find(':');
  if (queues == std::string_view::npos || timer == std::string_view::npos) return std::nullopt;
  unsigned timer_kind = 0;
  unsigned long when = 0;
  if (!parse_hex(f[4].substr(0, queues), e.send_queue) ||
      !parse_hex(f[4].substr(queues + 1), e.recv_queue) ||
      !parse_hex(f[5].substr(0, timer), timer_kind) || !parse_hex(f[5].substr(timer + 1), when) ||
      !parse_hex(f[6], e.retransmits) || !parse_dec(f[7], e.uid) || !parse_dec(f[9], e.inode))
    return std::nullopt;
  e.timer = timer_kind <= 4 ? static_cast<socket_timer>(timer_kind) : socket_timer::none;
  if (e.timer != socket_timer::none && ticks > 0)
    e.expires = std::chrono::milliseconds(static_cast<long long>(when) * 1000 / ticks);
  return e;
}

}  // namespace

std::vector<socket_entry> parse_proc_net_tcp(std::string_view text, int family,
                                             long ticks_per_second) {
  return detail::parse_proc_lines(text, family, ticks_per_second, all_states, std::nullopt);
}

}  // namespace netkit::inspect

namespace netkit::detail {

std::vector<inspect::socket_entry> parse_proc_lines(std::string_view text, int family,
                                                    long ticks_per_second, std::uint32_t states,
                                                    std::optional<std::uint16_t> port) {
  std::vector<inspect::socket_entry> entries;
  // Bounded by the text: each pass consumes one line.
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (auto e = inspect::parse_line(line, family, ticks_per_second, states, port))
      entries.push_back(std::move(*e));
  }
  return entries;
}

std::vector<inspect::socket_entry> read_proc_net_tcp(std::uint32_t states,
                                                     std::optional<std::uint16_t> port) {
  std::vector<inspect::socket_entry> entries;
  long ticks = ::sysconf(_SC_CLK_TCK);
  for (auto [path, family] : {std::pair{"/proc/net/tcp", AF_INET}, {"/proc/net/tcp6", AF_INET6}}) {
    std::ifstream file(path);
    if (!file) {
      if (errno == ENOENT && family == AF_INET6) continue;  // IPv6 disabled
      throw_sys_error(errno ? errno : EIO, "open", path);
    }
    std::ostringstream text;
    text << file.rdbuf();
    if (file.bad()) throw_sys_error(EIO, "read", path);
    for (auto& e : parse_proc_lines(text.str(), family, ticks, states, port))
      entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace netkit::detail
