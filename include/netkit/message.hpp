// sendmsg/recvmsg with iovecs and ancillary data, and descriptor passing (SCM_RIGHTS)
// over Unix-domain sockets. Per-message path: these return values, never throw for an
// OS error (see error.hpp).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

#include "netkit/endpoint.hpp"
#include "netkit/error.hpp"
#include "netkit/fd.hpp"

namespace netkit {

// The kernel refuses more descriptors than this in one SCM_RIGHTS message (SCM_MAX_FD in
// include/net/scm.h; unix(7)). send_message checks it up front and reports EINVAL.
inline constexpr std::size_t max_fds_per_message = 253;

// Result of one recvmsg. Owns every descriptor that arrived.
struct received_message {
  ssize_t n = 0;                   // payload bytes placed in the buffers
  int err = 0;                     // as io_result: 0, EAGAIN, or the failure
  std::size_t full_size = 0;       // datagram size before truncation (MSG_TRUNC); else n
  bool truncated = false;          // MSG_TRUNC: the datagram did not fit; the rest is lost
  bool control_truncated = false;  // MSG_CTRUNC: descriptors were lost; see recv_message
  std::vector<unique_fd> fds;      // SCM_RIGHTS descriptors, all close-on-exec
  endpoint from;                   // sender (datagram sockets); unset for connected streams

  bool ok() const noexcept { return err == 0; }
  bool would_block() const noexcept { return err == EAGAIN || err == EWOULDBLOCK; }
  // Stream EOF: nothing read, no error, no descriptors.
  bool eof() const noexcept { return err == 0 && n == 0 && fds.empty() && full_size == 0; }
};

enum class recv_flags : int {
  none = 0,
  dont_wait = MSG_DONTWAIT,  // non-blocking for this call only
};

// sendmsg(2) with MSG_NOSIGNAL. `fds` go as one SCM_RIGHTS message (at most
// max_fds_per_message, else EINVAL before any syscall); the caller keeps ownership of them.
// `to` addresses an unconnected datagram socket (nullptr: connected). EINTR is retried.
io_result send_message(int sock, std::span<const iovec> data, std::span<const int> fds = {},
                       const endpoint* to = nullptr);

// recvmsg(2) with MSG_CMSG_CLOEXEC into `data`, room for up to `max_fds` descriptors.
// `kind` names the socket's transport so `from` can be filled in (datagram sockets).
// MSG_CTRUNC (the control buffer was too small, or the receiver hit RLIMIT_NOFILE) is an
// error: every descriptor that did arrive is closed, `control_truncated` is set and err is
// EMSGSIZE; the payload bytes in `n` are still valid. EINTR is retried.
received_message recv_message(int sock, std::span<const iovec> data, std::size_t max_fds,
                              transport kind = transport::unix_stream,
                              recv_flags flags = recv_flags::none);

// Sends `fds` with `payload`. unix(7): a descriptor needs at least one byte of real data
// to travel with on a stream socket, so an empty payload is sent as one NUL byte.
io_result send_fds(int sock, std::span<const int> fds, std::span<const std::byte> payload = {});

// Receives up to `max_fds` descriptors and up to `payload.size()` bytes (at least one byte
// of room is used internally when `payload` is empty).
received_message recv_fds(int sock, std::size_t max_fds, std::span<std::byte> payload = {},
                          recv_flags flags = recv_flags::none);

}  // namespace netkit
