// Model "fork" (UNP ch. 5, the course's multi-process server): the parent blocks in
// accept(2) and forks one child per connection. The child closes its copy of the
// listener, serves the connection to EOF with blocking I/O (support/blocking_echo) and
// exits; the parent closes its copy of the connected socket at once, so it holds no
// descriptor of any served connection. Ended children are reaped in one of the two
// classic ways (--sigchld):
//  - reap: a SIGCHLD handler sets a flag (no SA_RESTART, so it interrupts the blocking
//    accept with EINTR, after which the parent simply carries on) and the parent reaps
//    with a waitpid(-1, WNOHANG) loop: one SIGCHLD may stand for many ended children.
//  - ignore: SIGCHLD is SIG_IGN, so the kernel reaps each child at exit (no zombie, but
//    no exit status either). The parent then tracks its children by pidfd (pidfd_open),
//    which names one process and cannot be confused by a reused pid.
// SIGTERM/SIGINT stops the parent, which signals every child and waits for it (SIGKILL
// after a grace period); each child also has PR_SET_PDEATHSIG, so a parent killed
// outright takes its children along. tcp:// and unix://.
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/signals.hpp"
#include "server_model.hpp"
#include "support/blocking_echo.hpp"
#include "support/blocking_listener.hpp"
#include "support/children.hpp"

namespace netkit::servers {

namespace {

using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view sigchld_flag = "--sigchld";
// Shutdown: children get SIGTERM and this long to finish (they notice within
// stop_check_interval), then SIGKILL.
constexpr milliseconds stop_grace{5000};
// How often stop() looks again while children are finishing.
constexpr int stop_poll_ms = 20;

enum class sigchld_mode { reap, ignore };

// pidfd_open(2) and pidfd_send_signal(2) through syscall(2): glibc 2.36's <sys/pidfd.h>
// declares them without C linkage.
int open_pidfd(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}
void signal_pidfd(int pidfd, int sig) {
  ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
}

class fork_parent {
 public:
  fork_parent(const model_settings& settings, sigchld_mode mode)
      : mode_(mode),
        listener_(settings),
        admission_(settings.max_conns),
        dec_(make_decoder(settings.codec)),
        enc_(make_encoder(settings.codec)) {
    if (mode_ == sigchld_mode::reap) {
      reaper_.emplace();
    } else {
      struct sigaction sa {};
      sa.sa_handler = SIG_IGN;
      sigemptyset(&sa.sa_mask);
      if (::sigaction(SIGCHLD, &sa, &saved_sigchld_) != 0)
        throw_sys_error("sigaction", "SIGCHLD SIG_IGN");
    }
  }
  ~fork_parent() {
    if (mode_ == sigchld_mode::ignore) ::sigaction(SIGCHLD, &saved_sigchld_, nullptr);
  }
  fork_parent(const fork_parent&) = delete;
  fork_parent& operator=(const fork_parent&) = delete;

  const endpoint& local() const noexcept { return listener_.local(); }

  void run(const stop_signal_scope& stop) {
    while (!stop.received()) {
      collect_ended();
      auto conn = listener_.accept();
      if (!conn) continue;  // EINTR (SIGCHLD or a stop signal), timeout: carry on
      collect_ended();      // the cap counts children that are really still there
      if (!admission_.admit(children_.size(), conn.get(), local().kind())) continue;
      spawn(std::move(conn));
    }
  }

  void stop();

  std::size_t forked() const noexcept { return forked_; }
  std::size_t reaped() const noexcept { return reaped_; }
  std::size_t interrupted() const noexcept { return listener_.interrupted(); }

 private:
  void spawn(unique_fd conn);
  [[noreturn]] void run_child(unique_fd conn);
  void collect_ended();
  void reap_ended();
  void forget_exited_pidfds();
  void signal_all(int sig);

  sigchld_mode mode_;
  support::blocking_listener listener_;
  support::admission admission_;
  std::unique_ptr<decoder> dec_;
  std::unique_ptr<encoder> enc_;
  std::optional<support::child_exit_flag> reaper_;  // --sigchld reap
  struct sigaction saved_sigchld_ {};               // --sigchld ignore
  // Live children: pid -> pidfd (--sigchld ignore only; invalid with reap, where an
  // unreaped pid cannot be reused and so names the child safely).
  std::map<pid_t, unique_fd> children_;
  std::size_t forked_ = 0;
  std::size_t reaped_ = 0;
};

void fork_parent::spawn(unique_fd conn) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    // EAGAIN: the process limit. That client is refused; the others are served on.
    log(log_level::error, "fork for {}: {}; closing it",
        support::peer_name(conn.get(), local().kind()), errno_text(errno));
    return;
  }
  if (pid == 0) {
    // A parent killed by SIGKILL must not leave its children behind: armed first, then
    // checked, so a parent that died in between is seen.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(0);
    run_child(std::move(conn));
  }
  ++forked_;
  // The child has its own copy; the parent must not keep one, or the client would never
  // see EOF when the child closes, and the parent would run out of descriptors.
  conn.reset();
  unique_fd pidfd;
  if (mode_ == sigchld_mode::ignore) {
    // The child may already be gone (and reaped by the kernel): then there is nothing
    // to track. Its pid cannot have been reused in between unless every pid wrapped.
    pidfd.reset(open_pidfd(pid));
    if (!pidfd) {
      if (errno == ESRCH) return;
      // Out of descriptors (EMFILE: a pidfd per live child): a child we cannot track
      // could outlive the server, so it goes now, and its client sees the connection reset.
      log(log_level::warning,
          "closing a connection: cannot track child {} (pidfd_open: {}); with --sigchld "
          "ignore each live child holds one of the parent's descriptors (--max-conns caps "
          "them)",
          pid, errno_text(errno));
      ::kill(pid, SIGKILL);
      return;
    }
  }
  children_.emplace(pid, std::move(pidfd));
}

void fork_parent::run_child(unique_fd conn) {
  // What a child must not hold: the listener (only the parent accepts; a child holding it
  // would keep the port open after the parent stops) and the other children's pidfds.
  listener_.close_in_child();
  for (auto& [pid, pidfd] : children_)
    pidfd.reset();
  if (reaper_)
    reaper_->restore();
  else
    ::sigaction(SIGCHLD, &saved_sigchld_, nullptr);
  support::serve_accepted_echo(conn.get(), local().kind(), *dec_, *enc_,
                               fmt::format("child {}", ::getpid()));
  conn.reset();
  std::fflush(stderr);
  ::_exit(0);
}

void fork_parent::reap_ended() {
  reaped_ += support::reap_children([this](pid_t pid, int status) {
    children_.erase(pid);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
      log(log_level::warning, "child {} {}", pid, support::describe_exit(status));
  });
}

void fork_parent::forget_exited_pidfds() {
  std::vector<pollfd> fds;
  fds.reserve(children_.size());
  for (auto& [pid, pidfd] : children_)
    fds.push_back({pidfd.get(), POLLIN, 0});
  if (fds.empty() || ::poll(fds.data(), fds.size(), 0) <= 0) return;
  for (const auto& p : fds) {
    if (p.revents == 0) continue;  // a pidfd is readable once its process has ended
    auto it = std::find_if(children_.begin(), children_.end(),
                           [&p](const auto& c) { return c.second.get() == p.fd; });
    children_.erase(it);
    ++reaped_;  // by the kernel
  }
}

void fork_parent::collect_ended() {
  if (mode_ == sigchld_mode::ignore) {
    forget_exited_pidfds();
    return;
  }
  // The flag only says "at least one ended"; the waitpid loop reaps every one.
  if (reaper_->take()) reap_ended();
}

void fork_parent::signal_all(int sig) {
  for (auto& [pid, pidfd] : children_) {
    if (pidfd)
      signal_pidfd(pidfd.get(), sig);
    else
      ::kill(pid, sig);
  }
}

void fork_parent::stop() {
  listener_.close();
  signal_all(SIGTERM);
  auto until = steady::now() + stop_grace;
  // Bounded: by the grace period, then one SIGKILL round.
  for (;;) {
    if (mode_ == sigchld_mode::reap)
      reap_ended();
    else
      forget_exited_pidfds();
    if (children_.empty()) return;
    if (steady::now() >= until) break;
    std::this_thread::sleep_for(milliseconds(stop_poll_ms));
  }
  log(log_level::warning, "{} children did not stop within {} ms; killing them", children_.size(),
      stop_grace.count());
  signal_all(SIGKILL);
  for (auto& [pid, pidfd] : children_) {
    if (pidfd) {
      pollfd p{pidfd.get(), POLLIN, 0};
      while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
    } else {
      support::kill_and_reap(pid);
    }
  }
  children_.clear();
}

int run(const server_model& model, const model_settings& settings) {
  auto mode = settings.own_choice(model, sigchld_flag) == "ignore" ? sigchld_mode::ignore
                                                                   : sigchld_mode::reap;
  // Installed before the banner: a SIGTERM right after it must stop us cleanly.
  stop_signal_scope stop;
  fork_parent parent(settings, mode);
  support::print_banner(parent.local(), model.name, settings.codec,
                        fmt::format(" sigchld={} max-conns={}",
                                    settings.own_choice(model, sigchld_flag), settings.max_conns));
  parent.run(stop);
  parent.stop();
  log(log_level::info,
      "stopped by signal {}: {} children forked, {} reaped ({}), {} accepts interrupted by "
      "a signal (EINTR) and resumed",
      stop.received(), parent.forked(), parent.reaped(),
      mode == sigchld_mode::reap ? "waitpid loop" : "by the kernel", parent.interrupted());
  return 0;
}

}  // namespace

server_model fork_model() {
  return {
      .name = "fork",
      .family = transport_family::stream,
      .transports = {},
      .description =
          "blocking accept, fork(2) one child per connection: one process per "
          "client (fork cost per connect; the process limit bounds clients)",
      .takes = {common_option::codec, common_option::unix_mode, common_option::reuse_port,
                common_option::max_conns},
      .own_options = {{.flag = sigchld_flag,
                       .help = "How ended children are reaped. reap: a SIGCHLD handler plus a "
                               "waitpid(-1, WNOHANG) loop, which learns each child's exit status "
                               "(a blocking accept the signal interrupts returns EINTR and is "
                               "resumed). ignore: SIGCHLD set to SIG_IGN, so the kernel reaps "
                               "each child itself at exit: no zombie, but no exit status (wait "
                               "would block until every child is gone, then fail with ECHILD); "
                               "the parent then tracks each live child by a pidfd, one of its "
                               "descriptors per child",
                       .default_value = 0,
                       .min = 0,
                       .max = 0,
                       .choices = {"reap", "ignore"}}},
      .probe = nullptr,
      .run = run};
}

}  // namespace netkit::servers
