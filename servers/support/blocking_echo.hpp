// The framed echo on one blocking connection, as a forked worker (prefork) or a process
// that received the connection by descriptor passing (fd-pass) serves it.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "netkit/codec/codec.hpp"

namespace netkit::servers::support {

// Serves the connection on blocking descriptor `fd` (not owned) until the peer's EOF:
// reads, decodes every complete frame, and writes the replies of each read, re-encoded,
// with one blocking write. Ends early on a protocol error (the replies to the frames
// before it still go out), an I/O error, or when stop_requested() says so; it is asked
// after every read that returns without data (EINTR, or a receive timeout the caller set
// with SO_RCVTIMEO). Never throws for the connection's own errors: logs them (`peer`
// names the connection) and returns. Returns the bytes written back.
std::uint64_t serve_blocking_echo(int fd, std::string_view peer, decoder& dec, const encoder& enc,
                                  const std::function<bool()>& stop_requested);

}  // namespace netkit::servers::support
