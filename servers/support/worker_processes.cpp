#include "support/worker_processes.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/process.hpp"
#include "netkit/socket.hpp"
#include "netkit/unix_socket.hpp"
#include "support/children.hpp"

namespace netkit::servers::support {

namespace {

using steady = std::chrono::steady_clock;
constexpr std::string_view processes_flag = "--processes";
constexpr std::size_t max_processes = 256;
// Shutdown: each worker drains its connections (the server's drain timeout, 5 s), so it
// gets that and some slack before SIGKILL.
constexpr std::chrono::milliseconds stop_grace{10'000};

// The parent's listeners: worker w serves sets[w] (TCP), or every worker the one shared
// socket (Unix).
struct listener_sets {
  endpoint local;
  std::vector<std::vector<unique_fd>> sets;  // TCP: one set per worker
  unique_fd shared;                          // Unix
  unix_socket_file file;                     // removed when the parent ends

  std::vector<unique_fd> take_for(std::size_t worker) {
    if (shared) {
      std::vector<unique_fd> one;
      one.push_back(std::move(shared));
      return one;
    }
    return std::move(sets[worker]);
  }
};

listener_sets make_listeners(const model_settings& settings, const worker_plan& plan) {
  listener_sets out;
  listen_options opts;
  opts.unix_mode = settings.unix_mode;
  if (settings.listen.kind() != transport::tcp) {
    // SO_REUSEPORT does not balance Unix sockets: one accept queue for everyone.
    if (plan.listeners_per_worker != 1)
      throw usage_error(fmt::format(
          "--processes with one SO_REUSEPORT listener per thread serves tcp:// only; a Unix "
          "socket has one listener, so use --accept dispatch for {}",
          settings.listen.to_uri()));
    auto l = listen_unix(settings.listen, io_mode::nonblocking, opts);
    out.shared = std::move(l.fd);
    out.file = std::move(l.file);
    out.local = local_endpoint(out.shared.get(), settings.listen.kind());
    return out;
  }
  opts.reuse_port = true;
  endpoint where = settings.listen;
  for (std::size_t w = 0; w < plan.processes; ++w) {
    out.sets.emplace_back();
    for (std::size_t i = 0; i < plan.listeners_per_worker; ++i) {
      auto fd = listen_on(where, io_mode::nonblocking, opts);
      if (w == 0 && i == 0) where = out.local = local_endpoint(fd.get(), transport::tcp);
      out.sets.back().push_back(std::move(fd));
    }
  }
  return out;
}

}  // namespace

model_option processes_option() {
  return {.flag = processes_flag,
          .help =
              "Worker processes, each with its own event loop(s) and listener "
              "(SO_REUSEPORT on tcp://, one shared listener on unix://), supervised: a "
              "worker that dies is replaced (1: no workers, this process serves)",
          .default_value = 1,
          .min = 1,
          .max = max_processes,
          .choices = {}};
}

std::size_t processes_of(const server_model& model, const model_settings& settings) {
  return settings.own_option(model, processes_flag);
}

int run_worker_processes(const model_settings& settings, const worker_plan& plan,
                         const worker_main& serve) {
  // Inherited by every worker: each may use up to the hard limit.
  auto limit = raise_nofile_limit();
  // Installed before the banner: a SIGTERM right after it must stop us cleanly.
  supervisor_signals signals;
  auto listeners = make_listeners(settings, plan);
  worker_pool pool(plan.processes, [&](std::size_t slot) {
    return fork_worker(signals, [&] {
      int code = 1;
      try {
        auto mine = listeners.take_for(slot);
        listeners.sets.clear();    // the other workers' listeners
        listeners.file.release();  // the parent removes the socket file
        code = serve(listeners.local, std::move(mine));
      } catch (const std::exception& e) {
        log(log_level::error, "worker {}: {}", ::getpid(), e.what());
      }
      std::fflush(stderr);
      ::_exit(code);
    });
  });
  pool.start();
  fmt::print("listening on {} model={} codec={} processes={}{}{} nofile={}/{}\n",
             listeners.local.to_uri(), plan.shown_model, settings.codec.to_string(), plan.processes,
             plan.banner_extra.empty() ? "" : " ", plan.banner_extra, limit.soft, limit.hard);
  std::fflush(stdout);
  while (!stop_signal_received()) {
    if (signals.children.take()) pool.reap(true);
    pool.respawn_due();
    timespec ts{};
    auto respawn = pool.respawn_at();
    if (respawn) {
      auto left = std::max(steady::duration::zero(), *respawn - steady::now());
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    }
    if (::ppoll(nullptr, 0, respawn ? &ts : nullptr, signals.waiting_mask()) < 0 && errno != EINTR)
      throw_sys_error("ppoll");
  }
  int sig = stop_signal_received();
  pool.stop(stop_grace, signals);
  log(log_level::info, "stopped by signal {}: {} workers stopped, {} replaced while serving", sig,
      plan.processes, pool.replaced());
  return 0;
}

}  // namespace netkit::servers::support
