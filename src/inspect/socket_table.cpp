#include "netkit/inspect/socket_table.hpp"

#include <netinet/in.h>

#include <cstring>

#include "inspect/table_readers.hpp"
#include "netkit/error.hpp"

namespace netkit::detail {

endpoint tcp_endpoint(int family, const void* address, std::uint16_t port) {
  sockaddr_storage storage{};
  socklen_t len = 0;
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, address, sizeof sin->sin_addr);
    len = sizeof *sin;
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, address, sizeof sin6->sin6_addr);
    len = sizeof *sin6;
  }
  return endpoint::from_sockaddr(transport::tcp, reinterpret_cast<sockaddr*>(&storage), len);
}

}  // namespace netkit::detail

namespace netkit::inspect {

std::string_view timer_name(socket_timer t) noexcept {
  switch (t) {
    case socket_timer::none:
      return "none";
    case socket_timer::retransmit:
      return "retransmit";
    case socket_timer::keepalive:
      return "keepalive";
    case socket_timer::time_wait:
      return "time-wait";
    case socket_timer::zero_window_probe:
      return "zero-window-probe";
  }
  return "?";
}

std::string_view source_name(table_source s) noexcept {
  switch (s) {
    case table_source::automatic:
      return "automatic";
    case table_source::netlink:
      return "netlink";
    case table_source::proc:
      return "proc";
  }
  return "?";
}

socket_table list_tcp_sockets(const socket_query& query) {
  socket_table table;
  switch (query.source) {
    case table_source::netlink:
      table.source = table_source::netlink;
      table.entries = detail::read_sock_diag(query.states, query.port);
      break;
    case table_source::proc:
      table.source = table_source::proc;
      table.entries = detail::read_proc_net_tcp(query.states, query.port);
      break;
    case table_source::automatic:
      try {
        table.source = table_source::netlink;
        table.entries = detail::read_sock_diag(query.states, query.port);
      } catch (const sys_error& e) {
        // Netlink refused (seccomp, a kernel without INET_DIAG): the /proc files say the same.
        table.source = table_source::proc;
        table.fallback_reason = e.what();
        table.entries = detail::read_proc_net_tcp(query.states, query.port);
      }
      break;
  }
  return table;
}

const socket_entry* find_connection(const socket_table& table, const endpoint& local,
                                    const endpoint& remote) {
  for (const auto& e : table.entries)
    if (e.local == local && e.remote == remote) return &e;
  return nullptr;
}

}  // namespace netkit::inspect
