// A datagram echo server (servers/udp_echo.hpp) in a forked child, for tests linked with
// the datagram server sources. Header-only: the support library does not link them.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

#include "netkit/endpoint.hpp"
#include "netkit/error.hpp"
#include "netkit/fd.hpp"
#include "udp_echo.hpp"

namespace netkit::test {

// run_dgram_echo_server in a forked child; the child's stdout comes back through a pipe so
// the "listening on URI" line tells where it listens. The destructor stops (SIGTERM) and
// reaps it.
class dgram_server_child {
 public:
  explicit dgram_server_child(servers::dgram_server_options opts) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw_sys_error("pipe2");
    std::fflush(stdout);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives a test that aborts
      ::dup2(p[1], STDOUT_FILENO);
      int rc = 1;
      try {
        rc = servers::run_dgram_echo_server(opts);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "server: %s\n", e.what());
      }
      std::fflush(stdout);
      ::_exit(rc);
    }
    ::close(p[1]);
    out_.reset(p[0]);
    auto line = read_line(std::chrono::seconds(10));
    if (line.rfind("listening on ", 0) != 0) throw std::runtime_error("no banner: " + line);
    auto uri = line.substr(13, line.find(' ', 13) - 13);
    local_ = endpoint::parse(uri);
  }
  ~dgram_server_child() { stop(); }

  const endpoint& local() const noexcept { return local_; }

  // SIGTERM; returns the exit status and the rest of stdout (the summary line).
  std::pair<int, std::string> stop() {
    if (pid_ <= 0) return {-1, {}};
    ::kill(pid_, SIGTERM);
    std::string rest;
    for (std::string l; !(l = read_line(std::chrono::seconds(10))).empty();)
      rest += l + "\n";
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    out_.reset();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, rest};
  }

 private:
  std::string read_line(std::chrono::milliseconds within) {
    std::string line;
    char c;
    pollfd p{out_.get(), POLLIN, 0};
    while (::poll(&p, 1, static_cast<int>(within.count())) == 1 && ::read(out_.get(), &c, 1) == 1) {
      if (c == '\n') return line;
      line += c;
    }
    return line;
  }

  pid_t pid_ = -1;
  unique_fd out_;
  endpoint local_;
};

}  // namespace netkit::test
