// A single-threaded event loop (reactor) over a pluggable backend, with timers and a
// thread-safe wake-up so other threads can post work.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "netkit/event/backend.hpp"
#include "netkit/fd.hpp"

namespace netkit {

// Receives readiness for one watched descriptor. Does not own the descriptor.
class io_handler {
 public:
  virtual void on_io(std::uint32_t events) = 0;

 protected:
  ~io_handler() = default;
};

// Names one watch. A stale id (the watch was removed, the slot reused) is detected by
// its generation, so an event queued for a closed descriptor never reaches a new owner
// of the same descriptor number.
struct watch_id {
  std::uint32_t slot = UINT32_MAX;
  std::uint32_t generation = 0;
  bool valid() const noexcept { return slot != UINT32_MAX; }
};

using timer_id = std::uint64_t;

// Work its owner queues on a loop with defer(task) to run once after the turn's dispatch,
// without an allocation (defer(fn) stores a std::function): what a path taken per
// connection uses. Owned by the caller; queued at most once at a time (deferring it again
// before it has run does nothing); its owner cancels it before destroying it.
class deferred_task {
 public:
  virtual void run() = 0;
  bool queued() const noexcept { return queued_; }

 protected:
  ~deferred_task() = default;

 private:
  friend class event_loop;
  bool queued_ = false;
};

class event_loop {
 public:
  using clock = std::chrono::steady_clock;

  explicit event_loop(std::unique_ptr<backend> b);
  explicit event_loop(std::string_view backend_name);
  ~event_loop();
  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;

  backend& io_backend() noexcept { return *backend_; }
  bool edge_triggered() const noexcept { return edge_triggered_; }

  // Loop thread only. Throws sys_error naming the descriptor if the backend refuses it
  // (for select: a descriptor >= FD_SETSIZE).
  watch_id watch(int fd, std::uint32_t interest, io_handler& handler);
  void modify(watch_id id, std::uint32_t interest);
  void unwatch(watch_id id) noexcept;  // events already queued for it are dropped
  // Calls the handler again on the next turn without waiting for the backend: how an
  // edge-triggered reader that stopped at its budget gets back to the rest.
  void call_again(watch_id id, std::uint32_t events);

  // Loop thread only: runs fn after this turn's events are dispatched (two-phase close:
  // stop I/O now, free after the dispatch that may still hold a pointer).
  void defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }
  // The same for a task object: runs task.run() once, after this turn's dispatch.
  void defer(deferred_task& task);
  // Drops `task` if it is queued (its owner's destructor calls this).
  void cancel(deferred_task& task) noexcept;

  // Loop thread only.
  timer_id run_after(clock::duration delay, std::function<void()> fn);
  timer_id run_every(clock::duration period, std::function<void()> fn);
  void cancel(timer_id id) noexcept;

  // Safe to call from any thread: runs fn on the loop thread soon.
  void post(std::function<void()> fn);
  // Safe to call from any thread (and from a signal handler through stop_on_signal).
  void stop() noexcept;

  // Makes SIGINT/SIGTERM (or others) stop this loop: the handler only sets a flag and
  // wakes the loop through its eventfd. One loop per process may own the signals.
  void stop_on_signals(std::initializer_list<int> signals);
  int stop_signal() const noexcept { return stop_signal_.load(); }
  // True once stop() was called (or a stop signal came): run() returns.
  bool stopping() const noexcept { return stopping_.load(); }

  // Busy polling: before a turn would block, poll the backend without blocking for up to
  // `window` (never past the next timer), and block only if nothing came. A request that
  // arrives meanwhile is served without the wake-up of a sleeping thread (in a VM, an
  // interrupt through the hypervisor), at the price of a CPU kept busy while idle for up
  // to `window` after each event. 0 (the default): block at once. Loop thread only.
  void set_busy_poll(std::chrono::microseconds window) noexcept { busy_poll_ = window; }
  std::chrono::microseconds busy_poll() const noexcept { return busy_poll_; }
  // Turns whose events a busy poll found (they did not block), and turns that blocked.
  std::uint64_t busy_poll_hits() const noexcept { return busy_poll_hits_; }
  std::uint64_t blocking_waits() const noexcept { return blocking_waits_; }

  // Runs until stop(). Returns when stopped.
  void run();
  // One turn: wait (up to timeout), dispatch events, timers, posted work.
  void run_once(std::chrono::milliseconds timeout);

  // True on the thread that runs this loop, or before the loop has first run (a loop may
  // be built on one thread and run on another): what "loop thread only" means on every
  // declaration. Debug builds assert it in those methods (NETKIT_ASSERT_LOOP_THREAD).
  bool in_loop_thread() const noexcept {
    auto owner = loop_thread_.load(std::memory_order_relaxed);
    return owner == std::thread::id() || owner == std::this_thread::get_id();
  }

  // When this turn's wait returned: the clock as handlers should read it.
  clock::time_point now() const noexcept { return now_; }
  std::uint64_t turns() const noexcept { return turns_; }

 private:
  struct watch_slot {
    int fd = -1;
    std::uint32_t generation = 0;
    std::uint32_t interest = 0;
    io_handler* handler = nullptr;
  };
  struct timer {
    std::function<void()> fn;
    clock::duration period{};
  };
  class waker;

  static std::uint64_t token_of(watch_id id) noexcept {
    return (std::uint64_t{id.generation} << 32) | id.slot;
  }
  void dispatch(const ready_event& ev);
  void run_timers();
  void run_posted();
  void run_deferred();
  int next_timeout_ms(std::chrono::milliseconds cap) const;
  // Fills ready_: busy polls first when set_busy_poll() asked for it, then waits.
  void wait_for_events(std::chrono::milliseconds cap);

  std::unique_ptr<backend> backend_;
  bool edge_triggered_;
  std::vector<watch_slot> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::vector<ready_event> ready_;
  std::vector<ready_event> again_, again_swap_;
  std::vector<std::function<void()>> deferred_, deferred_running_;
  std::vector<deferred_task*> deferred_tasks_, deferred_tasks_running_;  // nullptr: cancelled

  std::multimap<clock::time_point, timer_id> timer_queue_;
  std::unordered_map<timer_id, timer> timers_;
  timer_id next_timer_ = 1;

  std::unique_ptr<waker> waker_;
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_, running_;

  std::atomic<bool> stopping_{false};
  std::atomic<int> stop_signal_{0};
  std::atomic<std::thread::id> loop_thread_{};
  clock::time_point now_;
  std::uint64_t turns_ = 0;
  std::chrono::microseconds busy_poll_{0};
  std::uint64_t busy_poll_hits_ = 0, blocking_waits_ = 0;
};

}  // namespace netkit

// Debug builds (and any build with NETKIT_CHECK_LOOP_THREAD, as the ASan preset): abort with
// a message when a loop-thread-only method is called from another thread (as muduo's
// assertInLoopThread). Release builds: nothing.
namespace netkit {
void detail_assert_loop_thread(const event_loop& loop, const char* function) noexcept;
}
#if defined(NDEBUG) && !defined(NETKIT_CHECK_LOOP_THREAD)
#define NETKIT_LOOP_THREAD_CHECKS 0
#define NETKIT_ASSERT_LOOP_THREAD(loop) ((void)0)
#else
#define NETKIT_LOOP_THREAD_CHECKS 1
#define NETKIT_ASSERT_LOOP_THREAD(loop) ::netkit::detail_assert_loop_thread((loop), __func__)
#endif
