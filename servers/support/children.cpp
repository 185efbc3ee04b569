#include "support/children.hpp"

#include <sys/wait.h>

#include <atomic>
#include <cerrno>

#include <fmt/format.h>

#include "netkit/error.hpp"

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

}  // namespace netkit::servers::support
