// --processes N for the event-loop models: nginx-style worker processes, each with its own
// event loop(s) and its own listener(s), supervised by the parent (a worker that dies is
// logged and replaced; SIGTERM to the parent stops them all). How one server holds more
// connections than one process may have descriptors.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "netkit/fd.hpp"
#include "server_model.hpp"

namespace netkit::servers::support {

// The --processes option, declared by every model that takes it (they must agree).
model_option processes_option();

// The worker count asked for (1: no workers, this process serves).
std::size_t processes_of(const server_model& model, const model_settings& settings);

struct worker_plan {
  std::size_t processes = 2;
  // Listening sockets each worker gets: 1, or one per reactor thread (reuseport inside
  // the worker). A Unix socket takes 1: its single listener is shared by every worker.
  std::size_t listeners_per_worker = 1;
  std::string_view shown_model;  // the banner's model=
  std::string banner_extra;      // e.g. "threads=2 accept=dispatch", shown before nofile=
};

// Serves in one worker until SIGINT/SIGTERM and returns its exit code. It starts with
// SIGINT, SIGTERM and SIGCHLD blocked (a stop signal that arrives early stays pending),
// owns `listeners` (already listening on `local`) and must not print to stdout.
using worker_main = std::function<int(const endpoint& local, std::vector<unique_fd> listeners)>;

// The parent: creates every listener before the first fork (so bind errors are reported
// here, once, and a port 0 is resolved before the banner; TCP: SO_REUSEPORT listeners,
// one set per worker; Unix: one listener all workers share), forks the workers, prints
// "listening on URI model=M codec=C processes=N ... nofile=S/H", supervises until
// SIGINT/SIGTERM, then stops every worker. Returns the exit code.
int run_worker_processes(const model_settings& settings, const worker_plan& plan,
                         const worker_main& serve);

}  // namespace netkit::servers::support
