#include "netkit/inspect/tcp_state.hpp"

#include <array>

namespace netkit::inspect {

std::string_view state_name(tcp_state s) noexcept {
  static constexpr std::array<std::string_view, tcp_state_count + 1> names{
      "?",         "ESTABLISHED", "SYN_SENT",   "SYN_RECV", "FIN_WAIT_1", "FIN_WAIT_2",
      "TIME_WAIT", "CLOSED",      "CLOSE_WAIT", "LAST_ACK", "LISTEN",     "CLOSING"};
  auto i = static_cast<std::size_t>(s);
  return i < names.size() ? names[i] : names[0];
}

std::optional<tcp_state> state_from_kernel(unsigned value) noexcept {
  constexpr unsigned new_syn_recv = 12;  // TCP_NEW_SYN_RECV: a request socket
  if (value == new_syn_recv) return tcp_state::syn_recv;
  if (value < 1 || value > tcp_state_count) return std::nullopt;
  return static_cast<tcp_state>(value);
}

}  // namespace netkit::inspect
