// What a test sees of a server's worker processes from /proc: its children, their state,
// their threads and the sockets they hold.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string_view>
#include <vector>

#include "support/test_env.hpp"

namespace netkit::test {

// Children of `pid`, forked by any of its threads.
std::vector<pid_t> children_of(pid_t pid);

// State letter from /proc/PID/stat ('Z' for a zombie), or '?' if the process is gone.
char process_state(pid_t pid);

// Children of `pid` that are zombies.
int zombie_children(pid_t pid);

// Polls until `pid` has exactly `n` children, none a zombie, and none of `gone`.
bool wait_for_workers(pid_t pid, std::size_t n, const std::vector<pid_t>& gone, deadline until);

// Threads of `pid` (entries of /proc/PID/task); 0 if it is gone.
std::size_t thread_count(pid_t pid);
// Threads of `pid` whose name (comm) is `name`.
std::size_t thread_count(pid_t pid, std::string_view name);
// Thread ids of `pid` (the names in /proc/PID/task), sorted. pthread_join returns once
// the kernel clears the thread's tid, before the exiting task leaves /proc/PID/task: to
// check that threads started and ended, compare ids taken before them, never counts.
std::vector<pid_t> thread_ids(pid_t pid);
// Threads of `pid` now that are not in `before`, which must be sorted (thread_ids gives
// it so).
std::vector<pid_t> threads_started_since(pid_t pid, const std::vector<pid_t>& before);

// Descriptors of `pid` that are sockets (links "socket:[inode]" in /proc/PID/fd).
std::size_t socket_count(pid_t pid);

// The largest VmRSS among `pid` and its children (a forking server's memory is in the
// child that serves).
long max_tree_rss_kib(pid_t pid);

}  // namespace netkit::test
