// Child processes of a forking server: SIGCHLD as a flag, reaping without blocking, and a
// supervised pool of worker processes (prefork, --processes N).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "netkit/signals.hpp"

namespace netkit::servers::support {

// Makes SIGCHLD (for ended children only: SA_NOCLDSTOP) set a flag, and restores the
// previous handler on destruction. Block SIGCHLD with stop_signal_scope::block({SIGCHLD})
// so it is taken only while waiting. One per process; not movable.
class child_exit_flag {
 public:
  child_exit_flag();
  ~child_exit_flag() { restore(); }
  child_exit_flag(const child_exit_flag&) = delete;
  child_exit_flag& operator=(const child_exit_flag&) = delete;

  // True once after one or more children ended (then reap_children).
  bool take() noexcept;
  // SIGCHLD back to the handler from before; a forked child calls it first.
  void restore() noexcept;

 private:
  struct sigaction saved_ {};
};

// Reaps every child that has ended, without blocking (one SIGCHLD may stand for several),
// calling on_exit(pid, wait status) for each. Returns how many were reaped.
std::size_t reap_children(const std::function<void(pid_t, int)>& on_exit);

// Kills (SIGKILL) and reaps `pid`, a child not yet reaped (so the pid cannot have been
// reused by another process).
void kill_and_reap(pid_t pid) noexcept;

// "exited with status N", "was killed by signal N".
std::string describe_exit(int status);

// The signals of a supervising parent: SIGINT/SIGTERM/SIGCHLD are blocked and taken only
// inside a wait that uses waiting_mask() (ppoll), so none slips in between "check the
// flags" and "wait". The stop handler has no SA_RESTART: a worker's blocking read returns
// EINTR and looks at the flag. Construct before printing the banner.
struct supervisor_signals {
  stop_signal_scope stop;
  child_exit_flag children;

  supervisor_signals() { stop.block({SIGCHLD}); }
  const sigset_t* waiting_mask() const noexcept { return &stop.waiting_mask(); }
  // In a new worker: SIGCHLD back to its default; the stop handler is kept.
  void leave_parent() noexcept { children.restore(); }
  // In a new worker, once it can take a stop signal: the signals unblocked.
  void unblock() noexcept { ::pthread_sigmask(SIG_SETMASK, waiting_mask(), nullptr); }
};

// Forks a worker of this (supervising) process: the child asks for SIGTERM should the parent
// die (PR_SET_PDEATHSIG), calls signals.leave_parent() and then `in_child`, which must not
// return (it ends with _exit: the parent's stack, with its listeners and socket-file
// guards, must not unwind in the child). Returns the child's pid; throws sys_error.
pid_t fork_worker(supervisor_signals& signals, const std::function<void()>& in_child);

// A fixed number of worker processes kept alive by their parent. A worker that ends while
// the pool is serving is logged (its pid and wait status) and replaced in its slot; a fork
// that fails, or a worker that exited by itself within a second of starting, is retried a
// second later (no fork loop). Parent only, one thread.
class worker_pool {
 public:
  // Forks the worker for `slot` (e.g. with fork_worker) and returns its pid; throws
  // sys_error when it cannot.
  using spawn_fn = std::function<pid_t(std::size_t slot)>;
  // Told that the worker in `slot` has been reaped (before it is replaced).
  using gone_fn = std::function<void(std::size_t slot)>;

  worker_pool(std::size_t size, spawn_fn spawn, gone_fn gone = {});

  // Forks every worker; throws sys_error.
  void start();
  // Reaps every ended child, so no worker stays a zombie; replaces each when `replace`.
  void reap(bool replace);
  // Forks the workers whose replacement failed, once respawn_at() has passed.
  void respawn_due();
  std::optional<std::chrono::steady_clock::time_point> respawn_at() const noexcept {
    return respawn_at_;
  }
  // SIGTERM to every worker, then waits for them (ppoll with `signals`' mask: SIGCHLD ends
  // each wait early) up to `grace`; a worker still running then is killed (logged).
  void stop(std::chrono::milliseconds grace, supervisor_signals& signals);

  std::size_t size() const noexcept { return pids_.size(); }
  pid_t pid(std::size_t slot) const noexcept { return pids_[slot]; }  // -1: none
  std::size_t replaced() const noexcept { return replaced_; }

 private:
  bool any_live() const noexcept;
  void start_slot(std::size_t slot);

  spawn_fn spawn_;
  gone_fn gone_;
  std::vector<pid_t> pids_;
  std::vector<std::chrono::steady_clock::time_point> started_;
  // Per slot: how many workers in a row ended within respawn_pause of starting.
  std::vector<unsigned> quick_ends_;
  std::optional<std::chrono::steady_clock::time_point> respawn_at_;
  std::size_t replaced_ = 0;
};

}  // namespace netkit::servers::support
