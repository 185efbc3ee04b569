// Datagram model "sigio" (O_ASYNC + F_SETOWN_EX + F_SETSIG): the kernel queues a realtime
// signal when a datagram arrives. The handler only sets a flag; all I/O happens here,
// between sigsuspend calls, with the signals blocked. Because every wakeup drains the
// socket until EAGAIN, a lost or coalesced notification (the realtime queue overflowing
// into plain SIGIO) costs nothing.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "netkit/error.hpp"
#include "netkit/signals.hpp"
#include "server_model.hpp"
#include "support/dgram_echo.hpp"

namespace netkit::servers {

namespace {

std::atomic<bool> io_ready{false};
void on_io_signal(int) {
  io_ready.store(true);
}

// The I/O signals' handler for the server's lifetime; the previous one back afterwards.
class io_signal_handler {
 public:
  explicit io_signal_handler(int io_sig) : io_sig_(io_sig) {
    struct sigaction sa {};
    sa.sa_handler = on_io_signal;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(io_sig_, &sa, &old_io_) != 0) throw_sys_error("sigaction", "SIGRTMIN");
    ::sigaction(SIGIO, &sa, &old_sigio_);
  }
  ~io_signal_handler() {
    ::sigaction(io_sig_, &old_io_, nullptr);
    ::sigaction(SIGIO, &old_sigio_, nullptr);
  }
  io_signal_handler(const io_signal_handler&) = delete;
  io_signal_handler& operator=(const io_signal_handler&) = delete;

 private:
  int io_sig_;
  struct sigaction old_io_ {};
  struct sigaction old_sigio_ {};
};

int run(const server_model& model, const model_settings& settings) {
  const int io_sig = SIGRTMIN;
  // Declared first, destroyed last: it discards the I/O signals still pending before it
  // unblocks them, after io_signal_handler has put their default action back.
  stop_signal_scope stop;
  stop.block({io_sig, SIGIO});
  io_signal_handler io_handler(io_sig);
  auto socket = support::open_dgram_socket(model, settings, io_mode::nonblocking);
  int fd = socket.fd.get();
  // Deliver to this thread (not any thread of the process), with our realtime signal.
  f_owner_ex owner{F_OWNER_TID, static_cast<pid_t>(::gettid())};
  if (::fcntl(fd, F_SETOWN_EX, &owner) != 0) throw_sys_error("fcntl F_SETOWN_EX");
  if (::fcntl(fd, F_SETSIG, io_sig) != 0) throw_sys_error("fcntl F_SETSIG");
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_ASYNC | O_NONBLOCK) != 0)
    throw_sys_error("fcntl F_SETFL O_ASYNC");

  support::dgram_echoer echoer(fd, settings);
  while (stop.received() == 0) {
    io_ready.store(false);
    int handled = 0;
    auto s = support::step::echoed;
    while (handled < support::datagrams_per_wakeup &&
           (s = echoer.echo_one(recv_flags::dont_wait)) != support::step::would_block)
      ++handled;
    if (s != support::step::would_block) continue;  // budget spent: more may wait, do not sleep
    // Atomically unblocks our signals and sleeps; one that arrived while we drained is
    // pending and ends the wait at once, so no wakeup is missed.
    ::sigsuspend(&stop.waiting_mask());
  }
  ::fcntl(fd, F_SETFL, flags);
  return support::print_dgram_summary(echoer);
}

}  // namespace

server_model dgram_sigio_model() {
  return support::dgram_model(
      "sigio", "signal-driven I/O: the kernel queues a realtime signal per arrival", run);
}

}  // namespace netkit::servers
