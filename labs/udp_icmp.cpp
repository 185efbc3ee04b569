// udp-icmp: a datagram to a closed port draws an ICMP port-unreachable. Only a connected
// UDP socket is told (ECONNREFUSED); an unconnected one never hears of it.
#include <sys/socket.h>

#include <array>
#include <cerrno>

#include "lab_support.hpp"
#include "netkit/datagram.hpp"
#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace netkit::labs {

namespace {

// A UDP port on 127.0.0.1 that nobody has bound: one the kernel just gave and took back.
endpoint closed_port() {
  auto probe = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::blocking);
  return local_endpoint(probe.get(), transport::udp);
}

std::string recv_text(ssize_t n, int err, bool ready) {
  if (!ready) return "nothing within 300 ms";
  return n >= 0 ? fmt::format("received {} bytes", n)
                : fmt::format("failed with {}", errno_name(err));
}

}  // namespace

void run_udp_icmp(lab_context& ctx) {
  auto to = closed_port();
  std::array<char, 64> buffer{};

  auto unconnected = listen_on(endpoint::parse("udp://127.0.0.1:0"), io_mode::blocking);
  ssize_t sent = ::sendto(unconnected.get(), "ping", 4, 0, to.addr(), to.length());
  int send_err = errno;
  bool ready = wait_readable(unconnected.get(), 300ms);
  ssize_t n = ready ? ::recv(unconnected.get(), buffer.data(), buffer.size(), MSG_DONTWAIT) : -1;
  int err = errno;
  int pending = pending_error(unconnected.get());
  std::string quiet =
      fmt::format("sendto {}; recv {}; SO_ERROR {}", sent == 4 ? "ok" : errno_name(send_err),
                  recv_text(n, err, ready), pending ? errno_name(pending) : "0");
  ctx.note("unconnected socket -> {}: {}", to.to_uri(), quiet);

  auto connected = open_dgram_client(to);
  ssize_t sent2 = ::send(connected.get(), "ping", 4, MSG_NOSIGNAL);
  int send_err2 = errno;
  bool ready2 = wait_readable(connected.get(), 1000ms);
  ssize_t n2 = ready2 ? ::recv(connected.get(), buffer.data(), buffer.size(), MSG_DONTWAIT) : -1;
  int err2 = errno;
  std::string told = fmt::format("send {}; recv {}", sent2 == 4 ? "ok" : errno_name(send_err2),
                                 recv_text(n2, err2, ready2));
  ctx.note("connected socket -> {}: {}", to.to_uri(), told);

  ctx.expect("an unconnected UDP socket and a closed port",
             "sendto succeeds, no error is ever reported", quiet,
             sent == 4 && !ready && pending == 0);
  ctx.expect("a connected UDP socket and a closed port", "the next recv fails with ECONNREFUSED",
             told, sent2 == 4 && ready2 && n2 < 0 && err2 == ECONNREFUSED);
}

}  // namespace netkit::labs
