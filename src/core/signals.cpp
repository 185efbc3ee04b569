#include "netkit/signals.hpp"

#include <string.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "netkit/error.hpp"

namespace netkit {

namespace {

// The handler may only touch lock-free atomics and write(2).
std::atomic<int> g_stop_signal{0};
std::atomic<int> g_wake_fd{-1};

void on_stop_signal(int sig) {
  int saved = errno;
  g_stop_signal.store(sig);
  if (int fd = g_wake_fd.load(); fd >= 0) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
  }
  errno = saved;
}

struct sigaction stop_action(interrupted_calls calls) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = calls == interrupted_calls::restart ? SA_RESTART : 0;
  return sa;
}

}  // namespace

void install_stop_handler(std::initializer_list<int> signals, interrupted_calls calls) {
  g_stop_signal.store(0);  // one that came while nobody was serving is stale
  auto sa = stop_action(calls);
  for (int sig : signals)
    if (::sigaction(sig, &sa, nullptr) != 0) throw_sys_error("sigaction", ::strsignal(sig));
}

int stop_signal_received() noexcept {
  return g_stop_signal.load();
}

int take_stop_signal() noexcept {
  return g_stop_signal.exchange(0);
}

void set_stop_wake_fd(int fd) noexcept {
  g_wake_fd.store(fd);
}

int stop_wake_fd() noexcept {
  return g_wake_fd.load();
}

void clear_stop_wake_fd(int fd) noexcept {
  g_wake_fd.compare_exchange_strong(fd, -1);
}

stop_signal_scope::stop_signal_scope() {
  g_stop_signal.store(0);
  sigemptyset(&blocked_);
  if (::sigprocmask(SIG_SETMASK, nullptr, &saved_mask_) != 0) throw_sys_error("sigprocmask");
  waiting_mask_ = saved_mask_;
  auto sa = stop_action(interrupted_calls::fail_with_eintr);
  if (::sigaction(SIGINT, &sa, &saved_int_) != 0) throw_sys_error("sigaction", "SIGINT");
  if (::sigaction(SIGTERM, &sa, &saved_term_) != 0) {
    ::sigaction(SIGINT, &saved_int_, nullptr);
    throw_sys_error("sigaction", "SIGTERM");
  }
}

stop_signal_scope::~stop_signal_scope() {
  if (blocked_any_) {
    // Signals queued after the last wait would meet their default action (terminate) once
    // unblocked below: take them while still blocked. Bounded: each call consumes one.
    timespec zero{0, 0};
    while (::sigtimedwait(&blocked_, nullptr, &zero) > 0) {
    }
  }
  ::sigaction(SIGINT, &saved_int_, nullptr);
  ::sigaction(SIGTERM, &saved_term_, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);
}

void stop_signal_scope::block(std::initializer_list<int> also) {
  for (int s : {SIGINT, SIGTERM})
    sigaddset(&blocked_, s);
  for (int s : also)
    sigaddset(&blocked_, s);
  if (::pthread_sigmask(SIG_BLOCK, &blocked_, nullptr) != 0) throw_sys_error("pthread_sigmask");
  blocked_any_ = true;
  waiting_mask_ = saved_mask_;
  for (int s = 1; s < NSIG; ++s)
    if (sigismember(&blocked_, s) == 1) sigdelset(&waiting_mask_, s);
}

int stop_signal_scope::wait() {
  // Each sigsuspend returns after one handled signal; only a stop signal ends the wait.
  while (received() == 0)
    ::sigsuspend(&waiting_mask_);
  return received();
}

}  // namespace netkit
