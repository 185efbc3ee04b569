// sock_diag (INET_DIAG) over NETLINK_SOCK_DIAG: one dump request per address family,
// answered by a multipart reply that ends with NLMSG_DONE (what ss(8) does).
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "inspect/table_readers.hpp"
#include "netkit/error.hpp"
#include "netkit/fd.hpp"

namespace netkit::detail {

namespace {

// NLMSG_OK/NLMSG_NEXT compare an int length with the header's unsigned one (a sign-compare
// warning under clang); the same walk with sizes: the message at `offset` of the `size`
// bytes read, or nullptr once no whole message is left.
nlmsghdr* message_at(char* data, std::size_t size, std::size_t offset) {
  if (offset > size || size - offset < sizeof(nlmsghdr)) return nullptr;
  auto* h = reinterpret_cast<nlmsghdr*>(data + offset);
  if (h->nlmsg_len < sizeof(nlmsghdr) || h->nlmsg_len > size - offset) return nullptr;
  return h;
}

std::size_t next_offset(const char* data, const nlmsghdr* h) {
  return static_cast<std::size_t>(reinterpret_cast<const char*>(h) - data) +
         NLMSG_ALIGN(h->nlmsg_len);
}

using inspect::socket_entry;

// A dump larger than this is refused rather than read forever (a million sockets).
constexpr std::size_t max_entries = std::size_t{1} << 20;

const char* family_text(int family) {
  return family == AF_INET ? "tcp (AF_INET)" : "tcp6 (AF_INET6)";
}

socket_entry entry_of(const inet_diag_msg& msg) {
  socket_entry e;
  e.state = inspect::state_from_kernel(msg.idiag_state).value_or(inspect::tcp_state::closed);
  e.local = tcp_endpoint(msg.idiag_family, msg.id.idiag_src, ntohs(msg.id.idiag_sport));
  e.remote = tcp_endpoint(msg.idiag_family, msg.id.idiag_dst, ntohs(msg.id.idiag_dport));
  e.recv_queue = msg.idiag_rqueue;
  e.send_queue = msg.idiag_wqueue;
  e.timer = msg.idiag_timer <= 4 ? static_cast<inspect::socket_timer>(msg.idiag_timer)
                                 : inspect::socket_timer::none;
  if (e.timer != inspect::socket_timer::none)
    e.expires = std::chrono::milliseconds(msg.idiag_expires);
  e.retransmits = msg.idiag_retrans;
  e.uid = msg.idiag_uid;
  e.inode = msg.idiag_inode;
  return e;
}

// INET_DIAG bytecode for "local port == P or remote port == P", laid out as ss(8) lays out
// an OR: [S_EQ P] [JMP] [D_EQ P]. The kernel walks it per socket: landing exactly on the end
// accepts, jumping 4 past it rejects; every jump is checked by inet_diag_bc_audit.
struct port_filter {
  inet_diag_bc_op local_is, local_port, jump, remote_is, remote_port;
};

port_filter filter_for(std::uint16_t port) {
  constexpr std::uint8_t compare = 2 * sizeof(inet_diag_bc_op);  // an op and its operand
  constexpr std::uint8_t jump = sizeof(inet_diag_bc_op);
  port_filter f{};
  // Local port matches: go on to the JMP, which always takes its `no` to the end (accept).
  // Otherwise skip the JMP to the remote-port test.
  f.local_is = {INET_DIAG_BC_S_EQ, compare, compare + jump};
  f.local_port = {0, 0, port};
  f.jump = {INET_DIAG_BC_JMP, jump, jump + compare};
  // Remote port matches: the end (accept); otherwise 4 past the end (reject).
  f.remote_is = {INET_DIAG_BC_D_EQ, compare, compare + 4};
  f.remote_port = {0, 0, port};
  return f;
}

void dump_family(int fd, int family, std::uint32_t states, std::optional<std::uint16_t> port,
                 std::uint32_t seq, std::vector<socket_entry>& out) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
    nlattr bytecode_header;
    port_filter bytecode;
  } message{};
  static_assert(
      sizeof message == NLMSG_LENGTH(sizeof(inet_diag_req_v2)) + NLA_HDRLEN + sizeof(port_filter),
      "no padding between the request and its attribute");
  message.header.nlmsg_len = port ? sizeof message : NLMSG_LENGTH(sizeof(inet_diag_req_v2));
  if (port) {
    message.bytecode_header.nla_type = INET_DIAG_REQ_BYTECODE;
    message.bytecode_header.nla_len = NLA_HDRLEN + sizeof(port_filter);
    message.bytecode = filter_for(*port);
  }
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.header.nlmsg_seq = seq;
  message.request.sdiag_family = static_cast<__u8>(family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = states;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &message, message.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0)
    throw_sys_error("sock_diag request", family_text(family));

  // Aligned for nlmsghdr; the kernel fills at most a page-sized skb per read by default.
  alignas(nlmsghdr) std::array<char, 32768> buffer;
  // Bounded by max_entries and by SO_RCVTIMEO on every read.
  for (;;) {
    ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_sys_error("sock_diag read", family_text(family));
    }
    if (n == 0) throw_sys_error(EPROTO, "sock_diag read (no NLMSG_DONE)", family_text(family));
    const auto size = static_cast<std::size_t>(n);
    for (auto* h = message_at(buffer.data(), size, 0); h != nullptr;
         h = message_at(buffer.data(), size, next_offset(buffer.data(), h))) {
      if (h->nlmsg_seq != seq) continue;  // a reply to an earlier request of this socket
      if (h->nlmsg_type == NLMSG_DONE) return;
      if (h->nlmsg_type == NLMSG_ERROR) {
        nlmsgerr err{};
        std::memcpy(&err, NLMSG_DATA(h), std::min<std::size_t>(sizeof err, NLMSG_PAYLOAD(h, 0)));
        throw_sys_error(err.error < 0 ? -err.error : EPROTO, "sock_diag dump", family_text(family));
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || NLMSG_PAYLOAD(h, 0) < sizeof(inet_diag_msg))
        continue;
      inet_diag_msg msg{};
      std::memcpy(&msg, NLMSG_DATA(h), sizeof msg);
      if (out.size() >= max_entries)
        throw_sys_error(E2BIG, "sock_diag dump (over a million sockets)", family_text(family));
      out.push_back(entry_of(msg));
    }
  }
}

}  // namespace

std::vector<socket_entry> read_sock_diag(std::uint32_t states, std::optional<std::uint16_t> port) {
  unique_fd fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!fd) throw_sys_error("socket", "AF_NETLINK NETLINK_SOCK_DIAG");
  // A kernel that never answers must not hang the caller.
  timeval timeout{1, 0};
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0)
    throw_sys_error("setsockopt SO_RCVTIMEO", "NETLINK_SOCK_DIAG");
  std::vector<socket_entry> entries;
  std::uint32_t seq = 1;
  for (int family : {AF_INET, AF_INET6}) {
    try {
      dump_family(fd.get(), family, states, port, seq++, entries);
    } catch (const sys_error& e) {
      // A kernel without IPv6 has no tcp6 table; that is an empty answer, not a failure.
      if (family == AF_INET6 && e.errno_value() == ENOENT) continue;
      throw;
    }
  }
  return entries;
}

}  // namespace netkit::detail
