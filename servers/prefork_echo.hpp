// Prefork stream echo (UNP ch. 30 "passing descriptors"): the parent owns the listener and
// accepts; each connection is handed with SCM_RIGHTS (send_fds) to an idle worker process,
// which serves it to EOF with blocking I/O. `netkit echo-server --model prefork` calls this
// for tcp:// and unix:// URIs.
#pragma once

#include <cstddef>

#include "netkit/codec/codec.hpp"
#include "netkit/endpoint.hpp"
#include "netkit/socket.hpp"

namespace netkit::servers {

struct prefork_options {
  endpoint listen;           // tcp:// or unix:// (stream)
  listen_options listening;  // backlog, SO_REUSEPORT, Unix file mode
  codec_spec codec;          // framing of requests and replies
  std::size_t workers = 4;   // worker processes, 1..max_prefork_workers
};

inline constexpr std::size_t max_prefork_workers = 1024;

// Prints "listening on URI model=prefork codec=C workers=N nofile=S/H" as its first stdout
// line (flushed; SIGINT/SIGTERM handling is already in place), serves until SIGINT/SIGTERM,
// then stops accepting, ends and reaps every worker, removes a Unix socket file it created
// and returns 0. A worker that dies is reaped and replaced. Setup errors throw (sys_error,
// usage_error). Call from a single-threaded process: it forks.
int run_prefork_echo_server(const prefork_options& opts);

}  // namespace netkit::servers
