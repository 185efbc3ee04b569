// The listener of a server that blocks in accept(2): iterative, fork and thread. It wakes
// at least every stop_check_interval (SO_RCVTIMEO), so a stop signal that lands just
// before accept is seen; an accept the signal interrupts (EINTR) just returns no
// connection and the caller carries on.
#pragma once

#include <cstddef>
#include <string_view>

#include "netkit/endpoint.hpp"
#include "netkit/fd.hpp"
#include "netkit/unix_socket.hpp"
#include "server_model.hpp"

namespace netkit::servers::support {

class blocking_listener {
 public:
  // Listens on settings.listen (backlog SOMAXCONN, --reuse-port, --mode). Throws
  // sys_error naming the endpoint.
  explicit blocking_listener(const model_settings& settings);

  const endpoint& local() const noexcept { return local_; }
  int fd() const noexcept { return listener_.fd.get(); }

  // The next connection (blocking, close-on-exec, TCP_NODELAY on TCP), or an invalid fd
  // when accept returned without one: EINTR (a signal: SIGCHLD, a stop signal), the
  // receive timeout, a connection that failed before it was accepted, or EMFILE/ENFILE/
  // ENOBUFS/ENOMEM (logged, and then it pauses: the backlog holds the clients meanwhile).
  // Other errors throw sys_error.
  unique_fd accept();

  // Closes the listener and removes its socket file (connections still in the backlog
  // are reset).
  void close() noexcept;
  // In a forked child: closes the child's copy of the listener and leaves the socket file
  // to the parent.
  void close_in_child() noexcept;

  std::size_t interrupted() const noexcept { return interrupted_; }

 private:
  unix_listener listener_;
  endpoint local_;
  std::size_t interrupted_ = 0;  // accepts that returned EINTR
  std::size_t resource_errors_ = 0;
};

// The --max-conns rule of the blocking models, in the words the event-loop servers use:
// false, counted and logged (the first refusal and every 1000th at warning level, the
// rest at debug) when `open` connections already reach `max_conns` (0: no limit). The
// caller refuses by closing the accepted socket.
class admission {
 public:
  explicit admission(std::size_t max_conns) noexcept : max_conns_(max_conns) {}
  bool admit(std::size_t open, int fd, transport kind);
  std::size_t refused() const noexcept { return refused_; }

 private:
  std::size_t max_conns_;
  std::size_t refused_ = 0;
};

// The first stdout line of a stream model, flushed: "listening on URI model=NAME codec=C
// EXTRA nofile=S/H" (EXTRA may be empty: " max-conns=8 sigchld=reap").
void print_banner(const endpoint& local, std::string_view model, const codec_spec& codec,
                  std::string_view extra);

}  // namespace netkit::servers::support
