// Datagram echo client (udp:// and unix-dgram://): `netkit echo-client` calls it for
// datagram URIs, and the datagram tests measure servers and relays with it.
#pragma once

#include <chrono>
#include <cstddef>

#include "netkit/endpoint.hpp"

namespace netkit::clients {

struct dgram_client_options {
  endpoint connect;
  std::size_t count = 0;  // 0: one request per stdin line, reply printed on stdout
  std::size_t size = 64;  // bytes per request in count mode (>= 16: the sequence header)
  std::chrono::milliseconds timeout{500};  // per request attempt
  int retries = 3;                         // further attempts after a timeout
};

// Sends requests carrying sequence numbers and prints, at the end, one line:
//   "summary: requests=N datagrams=D replies=R lost=L duplicated=U reordered=O
//    unanswered=A truncated=T rtt_us_min=… rtt_us_avg=… rtt_us_max=…"
// Every attempt is its own datagram (its index in send order is in the header), so
// lost/duplicated/reordered count datagrams, exactly as `netkit udp-relay` counts them.
// Returns 0 when every request was answered, 3 when some stayed unanswered, 2 when the
// server is not there ("no server at URI": ECONNREFUSED).
int run_dgram_echo_client(const dgram_client_options& opts);

}  // namespace netkit::clients
