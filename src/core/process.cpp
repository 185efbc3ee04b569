#include "netkit/process.hpp"

#include <dirent.h>
#include <signal.h>

#include <algorithm>

#include "netkit/error.hpp"

namespace netkit {

void ignore_sigpipe() {
  struct sigaction sa {};
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGPIPE, &sa, nullptr) != 0) throw_sys_error("sigaction SIGPIPE");
}

nofile_limit current_nofile_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) throw_sys_error("getrlimit RLIMIT_NOFILE");
  return {rl.rlim_cur, rl.rlim_max};
}

nofile_limit raise_nofile_limit(rlim_t wanted) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) throw_sys_error("getrlimit RLIMIT_NOFILE");
  rlim_t target = std::min(wanted, rl.rlim_max);
  if (target > rl.rlim_cur) {
    rl.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) throw_sys_error("setrlimit RLIMIT_NOFILE");
  }
  return current_nofile_limit();
}

int open_fd_count() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) throw_sys_error("opendir", "/proc/self/fd");
  int count = 0;
  while (dirent* entry = ::readdir(dir))
    if (entry->d_name[0] != '.') ++count;
  ::closedir(dir);
  return count - 1;  // the directory stream's own descriptor
}

}  // namespace netkit
