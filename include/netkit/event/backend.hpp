// The demultiplexer behind an event_loop: one implementation per Linux mechanism
// (select, poll, epoll LT, epoll ET, io_uring), chosen at run time by name.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace netkit {

// Readiness interest and results (a small subset of epoll's bits, portable to all backends).
enum io_events : std::uint32_t {
  io_read = 1u << 0,
  io_write = 1u << 1,
  // HUP, ERR or the peer's FIN (RDHUP): the next reads/writes report what happened. An
  // edge-triggered reader that sees it reads to EOF/EAGAIN; otherwise a short read may end
  // its turn, as nothing else is left behind the data.
  io_hangup = 1u << 2,
};

struct ready_event {
  std::uint64_t token;  // given to add(); the loop uses it to detect stale events
  std::uint32_t events;
};

// Not thread-safe: used only by its loop's thread.
class backend {
 public:
  virtual ~backend() = default;
  virtual std::string_view name() const noexcept = 0;
  // Edge-triggered backends report readiness once per change: handlers must drain
  // (or ask the loop to call them again) instead of relying on a repeat report.
  virtual bool edge_triggered() const noexcept { return false; }
  // Highest descriptor the backend can watch (select: FD_SETSIZE - 1), or -1 for no limit.
  virtual int max_fd() const noexcept { return -1; }

  virtual void add(int fd, std::uint32_t interest, std::uint64_t token) = 0;
  virtual void modify(int fd, std::uint32_t interest, std::uint64_t token) = 0;
  virtual void remove(int fd) noexcept = 0;
  // Waits up to timeout_ms (-1: forever) and appends what is ready to `out`.
  // EINTR returns with nothing ready.
  virtual void wait(int timeout_ms, std::vector<ready_event>& out) = 0;

  // Completion backends (io_uring) own I/O operations as well as readiness: the library
  // then drives connections with submitted operations instead of readiness reports. Such
  // a backend runs handlers inside wait() and must call stamp_turn_clock() before it does.
  virtual bool completion_based() const noexcept { return false; }

 protected:
  // Sets the loop's time of the turn (event_loop::now()) to now. A completion backend's
  // handlers run inside wait(), before the loop gets back to read the clock: stamped
  // first, they see when the wait returned, not when the loop last woke.
  void stamp_turn_clock() noexcept {
    if (turn_clock_) *turn_clock_ = std::chrono::steady_clock::now();
  }

 private:
  friend class event_loop;  // shares its clock on construction, withdraws it on destruction
  std::chrono::steady_clock::time_point* turn_clock_ = nullptr;
};

struct backend_info {
  std::string name;
  std::string description;
  bool available;               // this kernel (and process limits) can run it
  std::string problem;          // why not, when unavailable
  std::string kernel_features;  // what this kernel gave the backend (io_uring), if any
};

// Every backend netkit knows, probed against this kernel.
std::vector<backend_info> list_backends();

// Creates the backend called `name`. Throws usage_error for an unknown name (listing the
// valid ones) and sys_error when the kernel refuses it (e.g. io_uring disabled).
std::unique_ptr<backend> make_backend(std::string_view name);

}  // namespace netkit
