// Accepts connections on a listening socket for a readiness loop.
// Descriptor exhaustion (EMFILE/ENFILE) must not spin the CPU: a level-triggered
// listener with a pending connection stays readable forever. We keep one spare
// descriptor; when accept fails for lack of descriptors we close the spare, accept the
// oldest pending connection and close it at once (the client sees EOF: "shed load"),
// then reopen the spare. If even that is impossible, accepting pauses for a moment.
#pragma once

#include <functional>

#include "net/spare_descriptor.hpp"
#include "netkit/endpoint.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/fd.hpp"
#include "netkit/socket.hpp"

namespace netkit::detail {

class acceptor final : public io_handler {
 public:
  using accept_fn = std::function<void(unique_fd, endpoint)>;
  // Takes `listening` (a listening socket of kind `kind`, non-blocking) over.
  acceptor(event_loop& loop, unique_fd listening, transport kind, accept_fn on_accept);
  ~acceptor();

  const endpoint& local() const noexcept { return local_; }
  std::uint64_t shed() const noexcept { return spare_.shed(); }
  void close() noexcept;  // stop accepting (graceful shutdown)
  void on_io(std::uint32_t events) override;

 private:
  void pause();

  event_loop& loop_;
  endpoint local_;
  unique_fd listen_fd_;
  spare_descriptor spare_;
  watch_id watch_;
  accept_fn on_accept_;
  timer_id resume_timer_ = 0;
};

}  // namespace netkit::detail
