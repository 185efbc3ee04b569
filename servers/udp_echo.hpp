// Datagram echo (udp:// and unix-dgram://) in three I/O models, and its client.
// `netkit echo-server` / `netkit echo-client` call these for datagram URIs.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "netkit/endpoint.hpp"

namespace netkit::servers {

struct dgram_server_options {
  endpoint listen;
  std::string model = "blocking";    // blocking | epoll | sigio
  std::size_t max_datagram = 65536;  // receive buffer; a longer datagram is reported and dropped
  bool verbose = false;              // one log line per datagram on stderr
  std::optional<mode_t> unix_mode;   // mode of a unix-dgram socket file
};

// Prints "listening on URI model=M" as its first stdout line (flushed), serves until
// SIGINT/SIGTERM, prints a summary line and returns the exit code (0 after a signal).
// Setup errors throw (sys_error, usage_error for an unknown model).
int run_dgram_echo_server(const dgram_server_options& opts);

// "blocking", "epoll", "sigio".
std::vector<std::string_view> dgram_models();

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

}  // namespace netkit::servers
