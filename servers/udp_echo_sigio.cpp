// Signal-driven model (O_ASYNC + F_SETOWN_EX + F_SETSIG): the kernel queues a realtime
// signal when a datagram arrives. The handler only sets a flag; all I/O happens here,
// between sigsuspend calls, with the signals blocked. Because every wakeup drains the
// socket until EAGAIN, a lost or coalesced notification (the realtime queue overflowing
// into plain SIGIO) costs nothing.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "udp_echo_detail.hpp"

namespace netkit::servers::detail {

namespace {

std::atomic<bool> io_ready{false};
void on_io_signal(int) {
  io_ready.store(true);
}

// Restores the signal mask and dispositions on every exit path.
class signal_scope {
 public:
  explicit signal_scope(int io_sig) : io_sig_(io_sig) {
    sigemptyset(&block_);
    for (int s : {io_sig_, SIGIO, SIGINT, SIGTERM})
      sigaddset(&block_, s);
    if (::sigprocmask(SIG_BLOCK, &block_, &old_mask_) != 0) throw_sys_error("sigprocmask");
    struct sigaction sa {};
    sa.sa_handler = on_io_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(io_sig_, &sa, &old_io_);
    ::sigaction(SIGIO, &sa, &old_sigio_);
    install_stop_handlers();
    // What sigsuspend waits with: the old mask minus our signals.
    wait_mask_ = old_mask_;
    for (int s : {io_sig_, SIGIO, SIGINT, SIGTERM})
      sigdelset(&wait_mask_, s);
  }
  ~signal_scope() {
    // Signals queued after the last wait would hit the default action (terminate) once
    // unblocked below: consume them while still blocked.
    timespec zero{0, 0};
    while (::sigtimedwait(&block_, nullptr, &zero) > 0) {
    }
    restore_stop_handlers();
    ::sigaction(io_sig_, &old_io_, nullptr);
    ::sigaction(SIGIO, &old_sigio_, nullptr);
    ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  signal_scope(const signal_scope&) = delete;
  signal_scope& operator=(const signal_scope&) = delete;
  const sigset_t& wait_mask() const noexcept { return wait_mask_; }

 private:
  int io_sig_;
  sigset_t block_{}, old_mask_{}, wait_mask_{};
  struct sigaction old_io_ {
  }, old_sigio_{};
};

}  // namespace

void serve_sigio(int fd, dgram_echoer& echoer) {
  const int io_sig = SIGRTMIN;
  signal_scope signals(io_sig);
  // Deliver to this thread (not any thread of the process), with our realtime signal.
  f_owner_ex owner{F_OWNER_TID, static_cast<pid_t>(::gettid())};
  if (::fcntl(fd, F_SETOWN_EX, &owner) != 0) throw_sys_error("fcntl F_SETOWN_EX");
  if (::fcntl(fd, F_SETSIG, io_sig) != 0) throw_sys_error("fcntl F_SETSIG");
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_ASYNC | O_NONBLOCK) != 0)
    throw_sys_error("fcntl F_SETFL O_ASYNC");

  while (stop_signal.load() == 0) {
    io_ready.store(false);
    int handled = 0;
    step s = step::echoed;
    while (handled < datagrams_per_wakeup &&
           (s = echoer.echo_one(recv_flags::dont_wait)) != step::would_block)
      ++handled;
    if (s != step::would_block) continue;  // budget spent: more may wait, do not sleep
    // Atomically unblocks our signals and sleeps; one that arrived while we drained is
    // pending and ends the wait at once, so no wakeup is missed.
    ::sigsuspend(&signals.wait_mask());
  }
  ::fcntl(fd, F_SETFL, flags);
}

}  // namespace netkit::servers::detail
