// The datagram echo server (udp:// and unix-dgram://) as a function, for programs and
// tests that run it without the command line. `netkit echo-server` reaches the same
// models through the registry.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>

#include "netkit/endpoint.hpp"

namespace netkit::servers {

struct dgram_server_options {
  endpoint listen;
  std::string model = "blocking";    // a datagram model of the registry: blocking | epoll | sigio
  std::size_t max_datagram = 65536;  // receive buffer; a longer datagram is reported and dropped
  bool verbose = false;              // one log line per datagram on stderr
  std::optional<mode_t> unix_mode;   // mode of a unix-dgram socket file
};

// Prints "listening on URI model=M" as its first stdout line (flushed), serves until
// SIGINT/SIGTERM, prints a summary line and returns the exit code (0 after a signal).
// Setup errors throw (sys_error; usage_error for an unknown model or a stream endpoint).
int run_dgram_echo_server(const dgram_server_options& opts);

}  // namespace netkit::servers
