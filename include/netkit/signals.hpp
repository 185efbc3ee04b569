// Stop signals (SIGINT, SIGTERM): one process-wide handler for every kind of server. It
// only records which signal came and, when a wake descriptor is set, writes 8 bytes to it
// (an eventfd), so each server learns of the stop in the way that suits how it waits: an
// event loop through its eventfd, a blocking server through EINTR and the flag, a server
// that waits in ppoll/sigsuspend through a signal mask that opens only while it waits.
#pragma once

#include <signal.h>

#include <initializer_list>

namespace netkit {

// What happens to a blocking system call the stop signal interrupts.
enum class interrupted_calls {
  restart,          // SA_RESTART: the call continues; use with a wake descriptor
  fail_with_eintr,  // the call returns EINTR, so a blocking server looks at the flag
};

// Installs the stop handler for `signals` and forgets a signal recorded before. Process
// wide: the last call wins. Throws sys_error.
void install_stop_handler(std::initializer_list<int> signals, interrupted_calls calls);

// The stop signal that arrived since install_stop_handler (0: none). Safe from any thread.
int stop_signal_received() noexcept;
// Returns the recorded stop signal and forgets it.
int take_stop_signal() noexcept;

// The handler also writes an 8-byte 1 to `fd` (an eventfd; -1: nothing). One descriptor
// per process: an event loop that owns the signals sets its own. Safe from any thread.
void set_stop_wake_fd(int fd) noexcept;
int stop_wake_fd() noexcept;
// Clears the wake descriptor only if it still is `fd` (a loop going away must not clear
// the one a newer loop set).
void clear_stop_wake_fd(int fd) noexcept;

// SIGINT/SIGTERM for one server's lifetime: installs the handler (EINTR semantics) on
// construction and restores the previous handlers and signal mask on destruction.
// Construct before printing a banner, so a SIGTERM right after it stops the server
// cleanly. One per process at a time; not movable.
class stop_signal_scope {
 public:
  stop_signal_scope();
  ~stop_signal_scope();
  stop_signal_scope(const stop_signal_scope&) = delete;
  stop_signal_scope& operator=(const stop_signal_scope&) = delete;

  int received() const noexcept { return stop_signal_received(); }

  // Blocks the stop signals, and `also` (e.g. SIGCHLD, an I/O signal), in the calling
  // thread and in threads it creates afterwards. They are then taken only inside a wait
  // that uses waiting_mask() (ppoll, sigsuspend), so none can slip in between "check the
  // flag" and "wait". The destructor discards blocked signals still pending before it
  // unblocks them (their default action would end the process).
  void block(std::initializer_list<int> also = {});
  // The mask from before block(), with the blocked signals open.
  const sigset_t& waiting_mask() const noexcept { return waiting_mask_; }

  // After block(): sleeps until a stop signal arrives and returns its number.
  int wait();

 private:
  struct sigaction saved_int_ {};
  struct sigaction saved_term_ {};
  sigset_t saved_mask_{};
  sigset_t blocked_{};
  sigset_t waiting_mask_{};
  bool blocked_any_ = false;
};

}  // namespace netkit
