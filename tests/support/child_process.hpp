// Runs a program as a child process with a deadline on everything: its stdout comes
// through a pipe (read line by line with a deadline), its stderr goes to a private file
// the test can read at any time. The destructor kills the child by PID (never by name)
// and always reaps it, so no test leaves a zombie or a stray process behind.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netkit/fd.hpp"
#include "support/test_env.hpp"

namespace netkit::test {

struct child_options {
  std::vector<std::string> argv;  // argv[0] is the program path (execv, no PATH lookup)
  // Applied (soft and hard) in the child before exec.
  std::optional<rlim_t> nofile_limit;
  // "NAME=VALUE" entries added to (or replacing) the inherited environment.
  std::vector<std::string> env;
  // The child's stdin: /dev/null, or a pipe the test writes with write_stdin().
  enum class input { null, pipe } stdin_from = input::null;
  // Called in the child after fork, before exec (only async-signal-safe work, e.g. a
  // seccomp filter: deny_netlink_sockets); false makes the child exit 126.
  bool (*before_exec)() = nullptr;
};

// How a child ended.
struct exit_status {
  int code = -1;   // exit code, or -1 if killed by a signal
  int signal = 0;  // terminating signal, or 0
  bool exited_normally() const noexcept { return signal == 0 && code == 0; }
  std::string describe() const;
};

class child_process {
 public:
  // Throws sys_error if the pipe/fork fails; an exec failure shows as exit code 127
  // with the reason in stderr_text().
  explicit child_process(const child_options& options);
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }

  // The next stdout line without '\n', or nullopt at EOF or when the deadline passes.
  std::optional<std::string> read_line(deadline until);

  // With stdin_from = pipe: writes all of `text` to the child's stdin (blocking). Throws
  // sys_error, EPIPE once the child has exited (SIGPIPE is ignored in this process from
  // the first call, so that a child's early exit fails the test instead of killing it).
  void write_stdin(std::string_view text);
  // Closes the child's stdin: it reads EOF. Idempotent.
  void close_stdin() noexcept { stdin_.reset(); }

  // Everything the child wrote to stderr so far.
  std::string stderr_text() const;

  bool signal(int sig) const noexcept;
  // Waits for the child to end; nullopt if it is still running at the deadline.
  std::optional<exit_status> wait(deadline until);
  // Non-blocking: true while the child has not ended (reaps it if it has).
  bool running();
  // SIGKILL and reap (no-op when already reaped).
  void kill_and_reap() noexcept;

 private:
  pid_t pid_ = -1;
  std::optional<exit_status> status_;
  unique_fd stdout_;
  unique_fd stdin_;      // write end of the child's stdin pipe, if any
  std::string pending_;  // stdout bytes after the last returned line
  bool stdout_eof_ = false;
  std::string stderr_path_;
};

// A program run to its end: how it ended, all its stdout and stderr.
struct run_result {
  exit_status status;
  std::string out;
  std::string err;
};

// Runs `argv` to completion within `limit` (throws std::runtime_error if it does not end
// in time; it is then killed and reaped) and collects its output.
run_result run_program(const std::vector<std::string>& argv,
                       clock::duration limit = std::chrono::seconds(60));

}  // namespace netkit::test
