// io_uring(7) through liburing: a completion backend. Readiness watches (the loop's
// eventfd waker, anything else that asks) are multishot IORING_OP_POLL_ADD requests;
// servers submit their own accept/recv/send operations through sqe() and get each
// completion back through a completion_handler, called from wait().
#pragma once

#include <liburing.h>

#include <cstdint>
#include <vector>

#include "netkit/event/backend.hpp"

namespace netkit::detail {

// Receives the completions of operations submitted through uring_backend. Must stay
// alive until the last completion of every operation it submitted has arrived (a
// multishot operation ends with a completion without IORING_CQE_F_MORE).
class completion_handler {
 public:
  // `op` is the small tag (0..max_op) given to uring_backend::target(); result and flags
  // are the CQE's res and flags.
  virtual void on_completion(unsigned op, int result, std::uint32_t flags) = 0;

 protected:
  ~completion_handler() = default;
};

// Owns the ring. Loop thread only; the ring is enabled on the first wait(), so a loop
// may be built on one thread and run on another (IORING_SETUP_SINGLE_ISSUER).
class uring_backend final : public backend {
 public:
  // Operation tags carried in the low bits of user_data (handlers are 8-aligned).
  static constexpr unsigned max_op = 6;

  uring_backend();
  ~uring_backend() override;
  uring_backend(const uring_backend&) = delete;
  uring_backend& operator=(const uring_backend&) = delete;

  std::string_view name() const noexcept override { return "uring"; }
  // A multishot poll reports each wake-up, like EPOLLET: handlers drain.
  bool edge_triggered() const noexcept override { return true; }
  void add(int fd, std::uint32_t interest, std::uint64_t token) override;
  void modify(int fd, std::uint32_t interest, std::uint64_t token) override;
  void remove(int fd) noexcept override;
  // Submits everything queued since the last call and waits for completions in one
  // io_uring_enter; completions of operations go straight to their handlers.
  void wait(int timeout_ms, std::vector<ready_event>& out) override;
  bool completion_based() const noexcept override { return true; }

  // A free submission entry (never null: a full queue is submitted first). Prepare it
  // with io_uring_prep_*, then call target(). Submitted on the next wait().
  io_uring_sqe* sqe();
  // Routes the completion of `sqe` to handler->on_completion(op, ...); a null handler
  // discards it (e.g. cancel requests).
  static void target(io_uring_sqe* sqe, completion_handler* handler, unsigned op) noexcept;
  // user_data of an operation, for io_uring_prep_cancel64.
  static std::uint64_t user_data(completion_handler* handler, unsigned op) noexcept;

  io_uring& ring() noexcept { return ring_; }

  // Operations whose owner is gone (a cancelled connect): each frees itself when its
  // completion arrives, and the ring waits (bounded) for those before it is torn down.
  void orphan_added() noexcept { ++orphans_; }
  void orphan_done() noexcept { --orphans_; }
  std::size_t orphans() const noexcept { return orphans_; }
  // Enables the ring now if it is not yet (see the class comment); loop thread only.
  void enable();
  // Submits the queued entries now, without waiting. Call it before closing a descriptor
  // that a queued operation names: a submitted operation holds its own reference to the
  // file, a queued one only the number, which the process (another thread's accept or
  // socket) may reuse as soon as it is closed. Returns 0 or a negative errno.
  int submit_queued() noexcept;
  // A fresh provided-buffer group id for this ring.
  std::uint16_t allocate_buffer_group() noexcept { return next_buffer_group_++; }
  std::uint32_t setup_flags() const noexcept { return setup_flags_; }

  // Waits for and dispatches operation completions only (readiness is kept for the next
  // wait()), for owners that must see their last completion before freeing themselves.
  void run_completions(int timeout_ms);

 private:
  struct watch {
    std::uint64_t token = 0;
    std::uint32_t interest = 0;
    std::uint32_t serial = 0;  // bumped on every arm/cancel: older completions are stale
    bool active = false;
  };
  void arm(int fd, watch& w);
  void cancel_poll(int fd, watch& w);
  void reap(std::vector<ready_event>& out);
  void submit_and_wait(int timeout_ms);

  io_uring ring_{};
  std::uint32_t setup_flags_ = 0;
  std::size_t orphans_ = 0;
  bool enabled_ = false;
  std::uint16_t next_buffer_group_ = 0;
  std::vector<watch> watches_;     // indexed by descriptor
  std::vector<ready_event> held_;  // readiness seen by run_completions()
  struct completion {
    std::uint64_t user_data;
    int result;
    std::uint32_t flags;
  };
  // Completions taken off the queue and not yet dispatched: batch_[next_] onwards. A
  // handler may reap again (destroying a client or server waits for its operations'
  // completions): that inner reap dispatches the rest of this batch first, in order, and
  // the outer one then finds nothing left of it.
  std::vector<completion> batch_;
  std::size_t next_ = 0;
  void dispatch(completion c, std::vector<ready_event>& out);
};

// The loop's backend as io_uring, or nullptr for a readiness backend.
inline uring_backend* as_uring(backend& b) noexcept {
  return b.completion_based() ? static_cast<uring_backend*>(&b) : nullptr;
}

}  // namespace netkit::detail
