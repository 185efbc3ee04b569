#include "support/children.hpp"

#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/log.hpp"

namespace netkit::servers::support {

namespace {
std::atomic<bool> g_child_exited{false};
void on_child(int) {
  g_child_exited.store(true);
}
}  // namespace

child_exit_flag::child_exit_flag() {
  g_child_exited.store(false);
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_child;
  sa.sa_flags = SA_NOCLDSTOP;
  if (::sigaction(SIGCHLD, &sa, &saved_) != 0) throw_sys_error("sigaction", "SIGCHLD");
}

bool child_exit_flag::take() noexcept {
  return g_child_exited.exchange(false);
}

void child_exit_flag::restore() noexcept {
  ::sigaction(SIGCHLD, &saved_, nullptr);
}

std::size_t reap_children(const std::function<void(pid_t, int)>& on_exit) {
  std::size_t reaped = 0;
  // Bounded by the number of children: each pass reaps one.
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return reaped;  // 0: the rest still run; -1 (ECHILD): no children
    ++reaped;
    on_exit(pid, status);
  }
}

void kill_and_reap(pid_t pid) noexcept {
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {}", WTERMSIG(status));
  return "ended";
}

pid_t fork_worker(supervisor_signals& signals, const std::function<void()>& in_child) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw_sys_error("fork", "worker process");
  if (pid > 0) return pid;
  // A parent killed by SIGKILL must not leave workers behind.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(0);  // it died before the line above
  signals.leave_parent();
  in_child();
  ::_exit(1);  // in_child must not return
}

namespace {
using steady = std::chrono::steady_clock;
// A worker that cannot be forked (EAGAIN: process limit), or that exited this soon after it
// started (it cannot start: replacing it at once would fork in a loop), is started again
// this much later.
constexpr std::chrono::milliseconds respawn_pause{1000};
}  // namespace

worker_pool::worker_pool(std::size_t size, spawn_fn spawn, gone_fn gone)
    : spawn_(std::move(spawn)),
      gone_(std::move(gone)),
      pids_(size, -1),
      started_(size),
      quick_ends_(size, 0) {}

void worker_pool::start() {
  for (std::size_t slot = 0; slot < pids_.size(); ++slot)
    start_slot(slot);
}

void worker_pool::start_slot(std::size_t slot) {
  pids_[slot] = spawn_(slot);
  started_[slot] = steady::now();
}

void worker_pool::reap(bool replace) {
  reap_children([&](pid_t pid, int status) {
    auto it = std::find(pids_.begin(), pids_.end(), pid);
    if (it == pids_.end()) return;
    auto slot = static_cast<std::size_t>(it - pids_.begin());
    *it = -1;
    if (gone_) gone_(slot);
    if (!replace) return;
    ++replaced_;
    // It exited by itself right after starting: it cannot start. A worker killed by a
    // signal is replaced at once, unless the one before it in this slot also died young
    // (a crash at start-up, the OOM killer): then at once could only fork in a tight loop.
    const bool quick = steady::now() - started_[slot] < respawn_pause;
    quick_ends_[slot] = quick ? quick_ends_[slot] + 1 : 0;
    if (quick && (WIFEXITED(status) || quick_ends_[slot] >= 2)) {
      log(log_level::error, "worker {} {} within {} ms of starting; starting another in {} ms", pid,
          describe_exit(status), respawn_pause.count(), respawn_pause.count());
      respawn_at_ = steady::now() + respawn_pause;
      return;
    }
    try {
      start_slot(slot);
      log(log_level::warning, "worker {} {}; started worker {} in its place", pid,
          describe_exit(status), pids_[slot]);
    } catch (const sys_error& e) {
      log(log_level::error, "worker {} {}; no replacement yet: {}", pid, describe_exit(status),
          e.what());
      respawn_at_ = steady::now() + respawn_pause;
    }
  });
}

void worker_pool::respawn_due() {
  if (!respawn_at_ || steady::now() < *respawn_at_) return;
  respawn_at_.reset();
  for (auto& pid : pids_) {
    if (pid > 0) continue;
    try {
      start_slot(static_cast<std::size_t>(&pid - pids_.data()));
    } catch (const sys_error& e) {
      log(log_level::error, "starting a worker: {}", e.what());
      respawn_at_ = steady::now() + respawn_pause;
      return;
    }
  }
}

bool worker_pool::any_live() const noexcept {
  return std::any_of(pids_.begin(), pids_.end(), [](pid_t p) { return p > 0; });
}

void worker_pool::stop(std::chrono::milliseconds grace, supervisor_signals& signals) {
  respawn_at_.reset();
  for (auto pid : pids_)
    if (pid > 0) ::kill(pid, SIGTERM);
  auto until = steady::now() + grace;
  reap(false);
  while (any_live() && steady::now() < until) {
    timespec ts{0, 50'000'000};  // bounded wait; SIGCHLD ends it early
    ::ppoll(nullptr, 0, &ts, signals.waiting_mask());
    signals.children.take();
    reap(false);
  }
  for (auto& pid : pids_) {
    if (pid <= 0) continue;
    log(log_level::warning, "worker {} did not stop within {} ms; killing it", pid, grace.count());
    kill_and_reap(pid);
    pid = -1;
  }
}

}  // namespace netkit::servers::support
