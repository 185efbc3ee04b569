#include "support/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/process.hpp"

extern char** environ;

namespace netkit::test {

std::string exit_status::describe() const {
  if (signal != 0) return fmt::format("killed by signal {} ({})", signal, strsignal(signal));
  return fmt::format("exit code {}", code);
}

namespace {

exit_status decode(int raw) {
  exit_status s;
  if (WIFEXITED(raw)) s.code = WEXITSTATUS(raw);
  if (WIFSIGNALED(raw)) s.signal = WTERMSIG(raw);
  return s;
}

}  // namespace

child_process::child_process(const child_options& options) {
  if (options.argv.empty()) throw std::invalid_argument("child_process: empty argv");
  char path_template[] = "/tmp/netkit-test-stderr-XXXXXX";
  unique_fd err_fd(::mkostemp(path_template, O_CLOEXEC));
  if (!err_fd) throw_sys_error("mkostemp", path_template);
  stderr_path_ = path_template;

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_sys_error("pipe2");
  unique_fd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  unique_fd stdin_read, stdin_write;
  if (options.stdin_from == child_options::input::pipe) {
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_sys_error("pipe2");
    stdin_read = unique_fd(pipe_fds[0]);
    stdin_write = unique_fd(pipe_fds[1]);
  }

  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls (the test process may have other threads).
  std::vector<char*> argv;
  for (const auto& a : options.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    bool replaced = false;
    for (const auto& add : options.env)
      if (entry.substr(0, entry.find('=') + 1) == add.substr(0, add.find('=') + 1)) replaced = true;
    if (!replaced) env_storage.emplace_back(entry);
  }
  env_storage.insert(env_storage.end(), options.env.begin(), options.env.end());
  std::vector<char*> envp;
  for (auto& e : env_storage)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  rlimit limit{};
  if (options.nofile_limit) limit = {*options.nofile_limit, *options.nofile_limit};

  pid_ = ::fork();
  if (pid_ < 0) throw_sys_error("fork");
  if (pid_ == 0) {
    ::dup2(write_end.get(), STDOUT_FILENO);
    ::dup2(err_fd.get(), STDERR_FILENO);
    int input = stdin_read ? stdin_read.get() : ::open("/dev/null", O_RDONLY);
    if (input >= 0) ::dup2(input, STDIN_FILENO);
    // The server must see only its own descriptors (EMFILE tests count them).
    ::close_range(3, ~0u, 0);
    // Restore what the test runner may have changed.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGUSR1, SIGCHLD})
      ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (options.nofile_limit && ::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      static const char msg[] = "child_process: setrlimit RLIMIT_NOFILE failed\n";
      [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
      ::_exit(126);
    }
    if (options.before_exec && !options.before_exec()) {
      static const char msg[] = "child_process: before_exec failed\n";
      [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
      ::_exit(126);
    }
    ::execve(argv[0], argv.data(), envp.data());
    static const char msg[] = "child_process: execv failed\n";
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(127);
  }
  stdout_ = std::move(read_end);
  stdin_ = std::move(stdin_write);
}

void child_process::write_stdin(std::string_view text) {
  static const bool sigpipe_ignored = (ignore_sigpipe(), true);
  (void)sigpipe_ignored;
  if (!stdin_) throw std::logic_error("child_process::write_stdin: stdin is not a pipe");
  // Bound: each iteration writes at least one byte or throws.
  while (!text.empty()) {
    ssize_t n = ::write(stdin_.get(), text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_sys_error("write", "child stdin");
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

child_process::~child_process() {
  kill_and_reap();
  if (!stderr_path_.empty()) ::unlink(stderr_path_.c_str());
}

std::optional<std::string> child_process::read_line(deadline until) {
  // Bound: each iteration either returns or reads at least one byte, and stops at
  // the deadline or EOF.
  for (;;) {
    if (auto nl = pending_.find('\n'); nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return line;
    }
    if (stdout_eof_) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{stdout_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) throw_sys_error("poll", "child stdout");
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(stdout_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      stdout_eof_ = true;
      continue;
    }
    pending_.append(buf, static_cast<std::size_t>(n));
  }
}

std::string child_process::stderr_text() const {
  std::ifstream in(stderr_path_, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool child_process::signal(int sig) const noexcept {
  if (status_ || pid_ <= 0) return false;
  return ::kill(pid_, sig) == 0;
}

std::optional<exit_status> child_process::wait(deadline until) {
  if (status_) return status_;
  // Bound: polls every 5 ms until the deadline.
  for (;;) {
    int raw = 0;
    pid_t r = ::waitpid(pid_, &raw, WNOHANG);
    if (r == pid_) {
      status_ = decode(raw);
      return status_;
    }
    if (r < 0 && errno != EINTR) {
      status_ = exit_status{};  // not our child any more: nothing to wait for
      return status_;
    }
    if (clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool child_process::running() {
  return !wait(clock::now()).has_value();
}

void child_process::kill_and_reap() noexcept {
  if (pid_ <= 0 || status_) return;
  ::kill(pid_, SIGKILL);
  int raw = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &raw, 0);
  } while (r < 0 && errno == EINTR);
  status_ = r == pid_ ? decode(raw) : exit_status{};
}

run_result run_program(const std::vector<std::string>& argv, clock::duration limit) {
  child_process child(child_options{argv, std::nullopt, {}});
  run_result r;
  auto until = deadline_after(limit);
  while (auto line = child.read_line(until))
    r.out += *line + "\n";
  auto st = child.wait(until);
  if (!st) throw std::runtime_error(argv.front() + " did not finish in time");
  r.status = *st;
  r.err = child.stderr_text();
  return r;
}

}  // namespace netkit::test
