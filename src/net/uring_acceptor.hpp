// Accepts connections for a completion (io_uring) loop with one multishot IORING_OP_ACCEPT:
// a single submission yields a completion per connection until the kernel ends it (no
// IORING_CQE_F_MORE), when it is submitted again.
// Descriptor exhaustion: a multishot accept ends with -EMFILE/-ENFILE. We then shed the
// oldest pending connection with the spare-descriptor trick (see acceptor.hpp) and then
// wait for the next connection with a poll request, not the accept: the kernel reserves a
// descriptor before it waits, so an accept re-armed while out of descriptors fails at once,
// forever. When even shedding is impossible, accepting pauses for a moment. Each failure
// costs a few completions per waiting connection or per pause, never a spin.
#pragma once

#include <functional>

#include "event/backend_uring.hpp"
#include "net/spare_descriptor.hpp"
#include "netkit/endpoint.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/fd.hpp"
#include "netkit/socket.hpp"

namespace netkit::detail {

// Owns the listening descriptor. Loop thread only. Must not be destroyed while an accept
// is in flight: close() it, then run completions until idle() (the server's destructor
// does).
class uring_acceptor final : public completion_handler {
 public:
  using accept_fn = std::function<void(unique_fd, endpoint)>;
  // Takes `listening` (a listening socket of kind `kind`, non-blocking: io_uring waits for
  // us, and shed_one() must never block) over.
  uring_acceptor(event_loop& loop, uring_backend& ring, unique_fd listening, transport kind,
                 accept_fn on_accept);
  ~uring_acceptor();

  const endpoint& local() const noexcept { return local_; }
  std::uint64_t shed() const noexcept { return spare_.shed(); }
  // Stops accepting (cancels the accept, closes the listener).
  void close() noexcept;
  bool idle() const noexcept { return !in_flight_; }

  void on_completion(unsigned op, int result, std::uint32_t flags) override;

 private:
  void arm();
  void wait_for_connection();
  // Handles -EMFILE & co; returns false when accepting is paused.
  bool out_of_descriptors();
  void pause();

  event_loop& loop_;
  uring_backend& ring_;
  endpoint local_;
  unique_fd listen_fd_;
  spare_descriptor spare_;
  accept_fn on_accept_;
  bool in_flight_ = false;  // the accept, or the poll that replaces it while out of fds
  unsigned armed_op_ = 0;
  timer_id resume_timer_ = 0;
};

}  // namespace netkit::detail
