// The framed echo on one blocking connection, as a forked worker (prefork, fork), a
// thread (thread), the one loop of the iterative server, or a process that received the
// connection by descriptor passing (fd-pass) serves it.
#pragma once

#include <sys/time.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "netkit/buffer.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/endpoint.hpp"

namespace netkit::servers::support {

// How late a server blocked in read(2), write(2) or accept(2) notices a stop signal that
// landed just before the call (the handler only sets a flag; SO_RCVTIMEO/SO_SNDTIMEO
// bound the wait), or a thread that never sees the signal notices the flag.
inline constexpr timeval stop_check_interval{0, 200'000};

// SO_RCVTIMEO and SO_SNDTIMEO of `fd` set to stop_check_interval. Throws sys_error.
void set_stop_check_timeouts(int fd);

// The echo step every model without an event loop makes after a read: decodes every
// complete frame in `in` (consuming it) and appends its re-encoded reply to `out`. Returns
// false after a protocol error, which it logs naming `peer` ("closing PEER: protocol
// error: ..."); the replies of the frames before it are in `out`.
bool echo_frames(decoder& dec, byte_buffer& in, const encoder& enc, byte_buffer& out,
                 std::string_view peer);

// The peer's URI, or "(unknown peer)" when getpeername fails (it already reset).
std::string peer_name(int fd, transport kind);

// Serves the connection on blocking descriptor `fd` (not owned) until the peer's EOF:
// reads, decodes every complete frame, and writes the replies of each read, re-encoded,
// before reading again (so a client that does not read holds one read's replies here,
// never more). Ends early on a protocol error (the replies to the frames before it still
// go out), an I/O error, or when stop_requested() says so; it is asked after every read
// or write that returns without progress (EINTR, or a timeout the caller set with
// SO_RCVTIMEO/SO_SNDTIMEO). Never throws for the connection's own errors: logs them
// (`peer` names the connection) and returns. Returns the bytes written back.
std::uint64_t serve_blocking_echo(int fd, std::string_view peer, decoder& dec, const encoder& enc,
                                  const std::function<bool()>& stop_requested);

// serve_blocking_echo for an accepted connection of a server stopped by SIGINT/SIGTERM
// (netkit/signals.hpp): sets the stop-check timeouts, names the peer, logs it at debug
// level (`who`: "worker 123", "thread 4"), and stops when a stop signal was received.
// Never throws for the connection's own errors.
void serve_accepted_echo(int fd, transport kind, decoder& dec, const encoder& enc,
                         std::string_view who);

}  // namespace netkit::servers::support
