// udp-source: connect() on a UDP socket sends nothing but makes the kernel choose the
// source address and port for that destination; getsockname tells which.
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>

#include "lab_support.hpp"
#include "netkit/datagram.hpp"
#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace netkit::labs {

namespace {

bool is_loopback(const endpoint& ep) {
  if (ep.family() == AF_INET6) return ep.host() == "::1";
  auto* sin = reinterpret_cast<const sockaddr_in*>(ep.addr());
  return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
}

void try_destination(lab_context& ctx, std::string_view host) {
  std::string check = fmt::format("connect() to {} picks a source", host);
  unique_fd receiver;
  try {
    receiver = listen_on(endpoint::parse(fmt::format("udp://{}:0", host)), io_mode::blocking);
  } catch (const sys_error& e) {
    ctx.note("{}: cannot bind a receiver ({})", host, e.what());
    ctx.not_provoked(check, "a loopback source address and a port",
                     fmt::format("no {} on this host: {}", host, e.what()));
    return;
  }
  auto to = local_endpoint(receiver.get(), transport::udp);
  auto sock = open_dgram_client(to);
  auto source = local_endpoint(sock.get(), transport::udp);
  // Proof that nothing was sent: the receiver stays empty.
  bool arrived = wait_readable(receiver.get(), 100ms);
  ctx.note("connect {} -> getsockname {}; datagrams at the receiver: {}", to.to_uri(),
           source.to_uri(), arrived ? "yes" : "none");
  ctx.expect(
      check, "a loopback source address, a port, and no datagram sent",
      fmt::format("{}{}", host_port(source), arrived ? ", a datagram arrived" : ", none sent"),
      is_loopback(source) && source.family() == to.family() && source.port() != 0 && !arrived);
}

}  // namespace

void run_udp_source(lab_context& ctx) {
  for (auto host : {"127.0.0.1", "[::1]", "127.0.0.2"})
    try_destination(ctx, host);
}

}  // namespace netkit::labs
