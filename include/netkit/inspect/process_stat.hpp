// A process as /proc shows it: its state, its CPU time, its children, and the CPU time of
// a whole process tree (a forking server and its workers, threads included), which is
// what "server CPU per message" has to count for a process-per-connection model.
#pragma once

#include <sys/types.h>

#include <cstdint>
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

// Time on CPU of a single-threaded `pid`, from /proc/PID/schedstat: nanoseconds, where
// /proc/PID/stat counts clock ticks (10 ms). A tree of hundreds of processes that each run
// briefly needs it: rounded to a tick apiece, their sum could be off by seconds. nullopt
// for a process with several threads (a thread that has exited is in the process's stat
// total but in no thread's schedstat, so stat is the right figure there), a process that
// is gone, or a kernel without schedstat.
std::optional<double> exact_cpu_seconds(pid_t pid);

// Children of `pid` now (zombies too), from /proc/PID/task/*/children.
std::vector<pid_t> children_of(pid_t pid);

// CPU seconds spent so far by `root` and every descendant, alive or reaped: each live
// descendant's exact_cpu_seconds (cpu_s for the root and where there is none) plus what its reaped
// children spent (a walk that a child's reaping overtook is taken again, so none is missed or
// counted twice). nullopt if `root` is gone.
std::optional<double> process_tree_cpu_seconds(pid_t root);

// How many times `pid`'s own threads, alive now, went to sleep waiting for something: the
// sum of their voluntary_ctxt_switches (/proc/PID/task/TID/status), and which threads
// those were. Not its children's, and not io_uring's kernel workers (iou-*), which sleep
// on the kernel's behalf. A thread that ends takes its count with it, so two readings
// compare only if every thread of the first is in the second. Nearly each sleep ended in a
// wake-up somebody paid for; on loopback, the client whose send woke the server.
struct switch_count {
  std::uint64_t voluntary = 0;
  std::vector<pid_t> threads;  // ascending
};
// nullopt if `pid` is gone.
std::optional<switch_count> voluntary_switches(pid_t pid);

}  // namespace netkit::inspect
