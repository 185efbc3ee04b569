// The event-loop models select, poll, epoll, epoll-et and uring: one stream echo server
// (netkit/net/stream_server) on the event-loop backend of that name. They are one model
// on five backends, so one file declares all five; list_backends() names, describes and
// probes them. With --threads N (N > 1) they run as the multi-reactor on their backend;
// with --processes N as N supervised worker processes, each with its own loop.
#include <signal.h>

#include <cstdio>

#include <fmt/format.h>

#include "multi_reactor_echo.hpp"
#include "netkit/error.hpp"
#include "netkit/event/backend.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/net/stream_server.hpp"
#include "netkit/process.hpp"
#include "netkit/unix_socket.hpp"
#include "server_model.hpp"
#include "support/stream_echo.hpp"
#include "support/worker_processes.hpp"

namespace netkit::servers {

namespace {

// Probed once per process: probing io_uring sets up a ring.
const std::vector<backend_info>& backends() {
  static const auto probed = list_backends();
  return probed;
}

model_availability probe(const server_model& model) {
  for (const auto& b : backends())
    if (b.name == model.name) return {b.available, b.problem, b.kernel_features};
  return {false, "no such event-loop backend"};
}

// What limits one process of each backend, for --list-models.
std::string_view limit_of(std::string_view backend) {
  if (backend == "select")
    return "limit: FD_SETSIZE (1024) descriptors per process (--processes N: N times that)";
  return "limit: RLIMIT_NOFILE descriptors per process (--processes N: N times that)";
}

// One loop until SIGINT/SIGTERM, on `listener` (a worker process's) or else binding
// settings.listen and printing the banner.
int serve(const server_model& model, const model_settings& settings,
          std::optional<unique_fd> listener, const endpoint& listen) {
  auto limit = raise_nofile_limit();
  event_loop loop(model.name);
  loop.set_busy_poll(support::busy_poll_of(model, settings));
  auto options = support::loop_server_options(settings);
  options.listen = listen;
  auto server =
      listener ? make_stream_server(loop, options, support::echo_handler(), std::move(*listener))
               : make_stream_server(loop, options, support::echo_handler());
  // Installed before the banner (and, in a worker, before the stop signals are let in): a
  // SIGTERM right after it must stop us cleanly.
  loop.stop_on_signals({SIGINT, SIGTERM});
  unix_socket_file socket_file;  // removed on clean exit, if still ours
  if (listener) {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    ::pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  } else {
    socket_file = unix_socket_file(server->local());
    fmt::print("listening on {} model={} codec={}{} nofile={}/{}\n", server->local().to_uri(),
               loop.io_backend().name(), settings.codec.to_string(),
               support::busy_poll_banner(loop.busy_poll()), limit.soft, limit.hard);
    std::fflush(stdout);
  }
  int sig = run_until_signal(loop, *server);
  support::log_stream_totals(sig, server->stats());
  return 0;
}

int run(const server_model& model, const model_settings& settings) {
  bool accept_given = settings.own.contains("--accept");
  if (settings.threads.value_or(1) > 1) {
    reactor_plan plan{.backend = model.name,
                      .threads = *settings.threads,
                      .accept = accept_of(model, settings),
                      .busy_poll = support::busy_poll_of(model, settings)};
    return run_multi_reactor_echo(model, settings, plan, model.name);
  }
  if (accept_given)
    throw usage_error(fmt::format(
        "--accept chooses how the loops of --threads N share the connections; --model {} "
        "without --threads has one loop (or use --model multi-reactor)",
        model.name));
  auto processes = support::processes_of(model, settings);
  if (processes <= 1) return serve(model, settings, std::nullopt, settings.listen);
  support::worker_plan workers{.processes = processes,
                               .listeners_per_worker = 1,
                               .shown_model = model.name,
                               .banner_extra = {}};
  return support::run_worker_processes(
      settings, workers, [&](const endpoint& local, std::vector<unique_fd> listeners) {
        return serve(model, settings, std::move(listeners.front()), local);
      });
}

}  // namespace

std::vector<server_model> event_loop_models() {
  std::vector<server_model> models;
  for (const auto& b : backends())
    models.push_back(
        {.name = b.name,
         .family = transport_family::stream,
         .transports = {},
         .description = fmt::format("{}; {}", b.description, limit_of(b.name)),
         .takes = support::loop_server_takes,
         .own_options = {accept_option(), support::processes_option(), support::busy_poll_option()},
         .probe = probe,
         .run = run});
  return models;
}

}  // namespace netkit::servers
