// A process as /proc shows it: its state, its CPU time, its children, and the CPU time of
// a whole process tree (a forking server and its workers, threads included), which is
// what "server CPU per message" has to count for a process-per-connection model.
#pragma once

#include <sys/types.h>

#include <optional>
#include <vector>

namespace netkit::inspect {

struct process_stat {
  char state = '?';  // R, S, D, Z (zombie), T, ...
  pid_t parent = 0;
  double cpu_s = 0;                  // utime + stime, every thread
  double reaped_children_cpu_s = 0;  // cutime + cstime: children it has waited for
};

// /proc/PID/stat; nullopt if the process is gone (or was never there).
std::optional<process_stat> read_process_stat(pid_t pid);

// Children of `pid` now (zombies too), from /proc/PID/task/*/children.
std::vector<pid_t> children_of(pid_t pid);

// CPU seconds spent so far by `root` and every descendant, alive or reaped: each live
// process's cpu_s plus what its reaped children spent (a walk that a child's reaping
// overtook is taken again, so none is missed or counted twice). nullopt if `root` is gone.
std::optional<double> process_tree_cpu_seconds(pid_t root);

}  // namespace netkit::inspect
