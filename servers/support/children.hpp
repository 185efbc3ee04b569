// Child processes of a forking server: SIGCHLD as a flag, and reaping without blocking.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <string>

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

}  // namespace netkit::servers::support
