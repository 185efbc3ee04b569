#include "support/pty_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit::test {

pty_process::pty_process(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env) {
  master_ = unique_fd(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master_) throw_sys_error("posix_openpt", "pty");
  if (::grantpt(master_.get()) != 0 || ::unlockpt(master_.get()) != 0)
    throw_sys_error("unlockpt", "pty");
  std::string slave = ::ptsname(master_.get());
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw_sys_error("fork", argv.at(0));
  if (pid_ == 0) {
    // Only async-signal-safe calls from here to exec.
    ::setsid();
    int fd = ::open(slave.c_str(), O_RDWR);
    if (fd < 0) ::_exit(126);
    ::ioctl(fd, TIOCSCTTY, 0);
    winsize size{};
    size.ws_row = 24;
    size.ws_col = 200;  // wide: the test's lines never wrap
    ::ioctl(fd, TIOCSWINSZ, &size);
    ::dup2(fd, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    if (fd > 2) ::close(fd);
    ::signal(SIGPIPE, SIG_DFL);
    for (const auto& e : env)
      ::putenv(const_cast<char*>(e.c_str()));
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int flags = ::fcntl(master_.get(), F_GETFL);
  ::fcntl(master_.get(), F_SETFL, flags | O_NONBLOCK);
}

pty_process::~pty_process() {
  if (!status_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

void pty_process::type(std::string_view keys) {
  while (!keys.empty()) {
    ssize_t n = ::write(master_.get(), keys.data(), keys.size());
    if (n < 0 && errno == EAGAIN) {
      pump(10);
      continue;
    }
    if (n < 0) throw_sys_error("write", "pty master");
    keys.remove_prefix(static_cast<std::size_t>(n));
  }
}

void pty_process::pump(int timeout_ms) {
  pollfd p{master_.get(), POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(master_.get(), buf, sizeof buf);
    if (n <= 0) return;  // EAGAIN, or EIO once every slave descriptor has closed
    raw_.append(buf, static_cast<std::size_t>(n));
  }
}

const std::string& pty_process::screen() {
  pump(0);
  screen_.clear();
  for (char c : raw_)
    if (c != '\r') screen_ += c;
  return screen_;
}

bool pty_process::wait_for(std::string_view text, deadline until, std::size_t from) {
  for (;;) {
    const auto& s = screen();
    if (s.size() >= from && s.find(text, from) != std::string::npos) return true;
    if (clock::now() >= until) return false;
    pump(10);
  }
}

std::vector<pid_t> pty_process::children() const {
  std::vector<pid_t> out;
  std::ifstream in(fmt::format("/proc/{}/task/{}/children", pid_, pid_));
  pid_t child = 0;
  while (in >> child)
    out.push_back(child);
  return out;
}

std::optional<exit_status> pty_process::wait(deadline until) {
  while (!status_) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exit_status s;
      if (WIFEXITED(st)) s.code = WEXITSTATUS(st);
      if (WIFSIGNALED(st)) s.signal = WTERMSIG(st);
      status_ = s;
      break;
    }
    if (clock::now() >= until) return std::nullopt;
    pump(10);
  }
  pump(0);
  return status_;
}

bool pty_process::running() {
  return !wait(clock::now());
}

bool process_exists(pid_t pid) {
  struct stat st {};
  return ::stat(fmt::format("/proc/{}", pid).c_str(), &st) == 0;
}

}  // namespace netkit::test
