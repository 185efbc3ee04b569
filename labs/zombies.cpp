// zombies: a forking server's children that end and are not waited for stay zombies.
// Each variant runs as its own server process (a child of the lab), so its SIGCHLD handling
// touches nothing else; the server forks `children` workers that all exit at once.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <thread>
#include <vector>

#include "lab_support.hpp"
#include "netkit/error.hpp"
#include "netkit/fd.hpp"
#include "support/children.hpp"

namespace netkit::labs {

namespace {

constexpr int children = 10;

enum class handling { none, single_wait, waitpid_loop };

std::atomic<int> g_handler_runs{0};  // lock-free: safe in a handler

// The classic mistake: one wait() per SIGCHLD, but one SIGCHLD may stand for many children.
void wait_once(int) {
  int saved = errno;
  ++g_handler_runs;
  ::wait(nullptr);
  errno = saved;
}

int count_zombies(const std::vector<pid_t>& pids) {
  int n = 0;
  for (pid_t pid : pids)
    n += process_state(pid) == 'Z';
  return n;
}

// The server process: forks the workers, lets them all exit while SIGCHLD is blocked (as
// it is while a handler runs or a busy server has it masked), unblocks it, then counts the
// zombies from /proc. Reports "exited zombies-after handler-runs", then reaps the rest.
int serve(handling how, int out) {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &sa, nullptr);
  std::optional<servers::support::child_exit_flag> flag;
  if (how == handling::single_wait) {
    sa.sa_handler = wait_once;
    ::sigaction(SIGCHLD, &sa, nullptr);
  } else if (how == handling::waitpid_loop) {
    flag.emplace();
  }
  sigset_t chld, old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, &old);

  int release[2];
  if (::pipe2(release, O_CLOEXEC) != 0) return 2;
  unique_fd hold(release[1]);
  std::vector<pid_t> pids;
  for (int i = 0; i < children; ++i) {
    pid_t pid = ::fork();
    if (pid < 0) break;
    if (pid == 0) {
      ::close(out);
      ::close(release[1]);
      char c;
      while (::read(release[0], &c, 1) < 0 && errno == EINTR) {
      }
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  ::close(release[0]);
  hold.reset();  // every worker reads EOF and exits, all at once
  // Until all have ended (bounded: 2 s).
  int exited = 0;
  for (int i = 0; i < 2000 && (exited = count_zombies(pids)) < static_cast<int>(pids.size()); ++i)
    ::usleep(1000);
  ::sigprocmask(SIG_SETMASK, &old, nullptr);  // the pending SIGCHLD is delivered now, once
  if (flag && flag->take()) servers::support::reap_children([](pid_t, int) {});
  ::usleep(20'000);
  int left = count_zombies(pids);
  write_all(out, fmt::format("{} {} {}\n", exited, left, g_handler_runs.load()));
  for (pid_t pid : pids)
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  return 0;
}

struct findings {
  int exited = -1;
  int left = -1;
  int handler_runs = -1;
};

findings run_variant(lab_context& ctx, handling how, const char* label) {
  auto child = run_child([how](int out) { return serve(how, out); });
  findings f;
  if (std::sscanf(child.output.c_str(), "%d %d %d", &f.exited, &f.left, &f.handler_runs) != 3)
    throw_sys_error(EPROTO, "zombies server report", child.output + " " + child.describe());
  ctx.note("{}: {} of {} children exited together; zombies left (from /proc): {}{}", label,
           f.exited, children, f.left,
           how == handling::single_wait
               ? fmt::format("; the handler ran {} time(s)", f.handler_runs)
               : "");
  return f;
}

}  // namespace

void run_zombies(lab_context& ctx) {
  auto none = run_variant(ctx, handling::none, "no SIGCHLD handling");
  auto once = run_variant(ctx, handling::single_wait, "one wait() in the SIGCHLD handler");
  auto loop = run_variant(ctx, handling::waitpid_loop, "waitpid(WNOHANG) loop after SIGCHLD");

  ctx.expect("no SIGCHLD handling", fmt::format("all {} children stay zombies", children),
             fmt::format("{} zombies", none.left), none.left == children);
  ctx.expect("one wait() per SIGCHLD when many exit at once",
             "signals merge: only as many reaped as the handler ran, some remain",
             fmt::format("{} zombies after {} handler run(s)", once.left, once.handler_runs),
             once.left > 0 && once.left == children - once.handler_runs);
  ctx.expect("a waitpid(WNOHANG) loop", "no zombies", fmt::format("{} zombies", loop.left),
             loop.left == 0);
}

}  // namespace netkit::labs
