// A program run on a pseudo-terminal, as a user runs it: its stdin, stdout and stderr are
// the terminal's slave side, it is the session leader with that terminal as its
// controlling terminal (so Ctrl-C written to the master is SIGINT to its foreground
// group), and the test reads what the screen shows and types into it. Every wait has a
// deadline; the destructor kills the process by PID and reaps it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netkit/fd.hpp"
#include "support/child_process.hpp"
#include "support/test_env.hpp"

namespace netkit::test {

class pty_process {
 public:
  // argv[0] is the program path (execv). Throws sys_error if the terminal or fork fails.
  explicit pty_process(const std::vector<std::string>& argv,
                       const std::vector<std::string>& env = {});
  ~pty_process();
  pty_process(const pty_process&) = delete;
  pty_process& operator=(const pty_process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  // The terminal's master side (tcgetattr on it reads the terminal's modes).
  int master() const noexcept { return master_.get(); }
  // Writes to the terminal as typed keys ("hello\r", "\x03" for Ctrl-C, "\x04" Ctrl-D).
  void type(std::string_view keys);
  // Everything shown so far, with the terminal's "\r\n" turned into "\n".
  const std::string& screen();
  // Waits until the screen contains `text` (after position `from`); false on the deadline.
  bool wait_for(std::string_view text, deadline until, std::size_t from = 0);
  // The process's children now (from /proc), e.g. a program's forked helper.
  std::vector<pid_t> children() const;

  std::optional<exit_status> wait(deadline until);
  bool running();

 private:
  void pump(int timeout_ms);
  pid_t pid_ = -1;
  unique_fd master_;
  std::string raw_, screen_;
  std::optional<exit_status> status_;
};

// True while `pid` exists in any state (a zombie too).
bool process_exists(pid_t pid);

}  // namespace netkit::test
