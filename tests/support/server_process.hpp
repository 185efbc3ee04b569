// A real `netkit echo-server` in a child process: started on port 0, its address parsed
// from the first stdout line ("listening on URI model=M codec=C nofile=S/H"), and its
// CPU time, RSS and descriptor count readable from /proc while it runs.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "netkit/endpoint.hpp"
#include "support/child_process.hpp"

namespace netkit::test {

struct server_config {
  // The netkit subcommand: any server that prints "listening on URI ..." first. --codec
  // is passed to echo-server only.
  std::string command = "echo-server";
  std::string model = "epoll";
  std::string codec = "line";
  std::string listen = "tcp://127.0.0.1:0";
  std::vector<std::string> extra_args;  // e.g. {"--max-conns", "10"}
  std::optional<rlim_t> nofile_limit;   // soft = hard, set before exec
  std::vector<std::string> env;         // "NAME=VALUE" for the server's environment
  // Run the server under this command (e.g. {"/usr/bin/strace", "-f", ...}); the
  // server itself is then the wrapper's child, and pid() names the server, not the wrapper.
  std::vector<std::string> wrapper;
};

// Snapshot of /proc/PID for the server.
struct proc_sample {
  std::chrono::nanoseconds cpu{0};  // utime + stime
  long rss_kib = 0;                 // VmRSS
  int fds = 0;                      // entries of /proc/PID/fd
};

// Reads /proc/<pid>; throws sys_error if the process is gone.
proc_sample sample_process(pid_t pid);
std::chrono::nanoseconds process_cpu_time(pid_t pid);
long process_rss_kib(pid_t pid);
int process_fd_count(pid_t pid);

// The netkit binary under test. Test executables get NETKIT_CLI as a compile definition
// (the support library does not), so each test translation unit registers it below.
std::string netkit_cli();
void set_netkit_cli(std::string path);

#ifdef NETKIT_CLI
namespace {
[[maybe_unused]] const bool netkit_cli_registered = (set_netkit_cli(NETKIT_CLI), true);
}  // namespace
#endif

class server_process {
 public:
  // Starts the server and waits (up to `startup`) for its first line; throws
  // std::runtime_error with the server's stderr if it does not come.
  explicit server_process(server_config config,
                          std::chrono::milliseconds startup = std::chrono::seconds(20));

  const endpoint& local() const noexcept { return local_; }
  const std::string& uri() const noexcept { return uri_; }
  const std::string& banner() const noexcept { return banner_; }
  // The echo-server process (the wrapper's child when a wrapper is used).
  pid_t pid() const noexcept { return server_pid_; }
  child_process& process() noexcept { return child_; }

  proc_sample sample() const { return sample_process(server_pid_); }
  bool alive();
  std::string log() const { return child_.stderr_text(); }

  // SIGTERM, then wait for the exit; nullopt if it did not end in time (it is then killed).
  std::optional<exit_status> terminate(std::chrono::milliseconds within = std::chrono::seconds(10));

 private:
  server_config config_;
  child_process child_;
  pid_t server_pid_ = -1;
  std::string banner_;
  std::string uri_;
  endpoint local_;
};

// "ASAN_OPTIONS=<inherited>:<extra>" (later options win), for a child's env.
std::string sanitizer_options(const char* variable, const std::string& extra);

// Starts `netkit echo-server` with `args` after the subcommand (no port-0 parsing), for
// tests of its command-line failures.
child_options echo_server_command(const std::vector<std::string>& args);

}  // namespace netkit::test
