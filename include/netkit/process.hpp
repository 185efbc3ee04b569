// Process-wide setup every netkit program does at start.
#pragma once

#include <sys/resource.h>

namespace netkit {

// SIGPIPE's default action kills the process when it writes to a socket whose peer
// has gone; a server must survive that and see EPIPE instead. Library sends use
// MSG_NOSIGNAL; this covers write(2)/writev(2) and third-party code too.
void ignore_sigpipe();

struct nofile_limit {
  rlim_t soft = 0;
  rlim_t hard = 0;
};

nofile_limit current_nofile_limit();

// Raises the soft RLIMIT_NOFILE to the hard limit (or to `wanted`, if lower) and
// returns the limit now in force.
nofile_limit raise_nofile_limit(rlim_t wanted = RLIM_INFINITY);

// Descriptors this process has open (entries of /proc/self/fd), for leak checks.
int open_fd_count();

}  // namespace netkit
