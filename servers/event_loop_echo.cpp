// The event-loop models select, poll, epoll, epoll-et and uring: one stream echo server
// (netkit/net/stream_server) on the event-loop backend of that name. They are one model
// on five backends, so one file declares all five; list_backends() names, describes and
// probes them. With --threads N (N > 1) they run as the multi-reactor on their backend.
#include <signal.h>

#include <cstdio>

#include <fmt/format.h>

#include "multi_reactor_echo.hpp"
#include "netkit/event/backend.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/net/stream_server.hpp"
#include "netkit/process.hpp"
#include "netkit/unix_socket.hpp"
#include "server_model.hpp"
#include "support/stream_echo.hpp"

namespace netkit::servers {

namespace {

// Probed once per process: probing io_uring sets up a ring.
const std::vector<backend_info>& backends() {
  static const auto probed = list_backends();
  return probed;
}

model_availability probe(const server_model& model) {
  for (const auto& b : backends())
    if (b.name == model.name) return {b.available, b.problem};
  return {false, "no such event-loop backend"};
}

int run(const server_model& model, const model_settings& settings) {
  if (settings.threads.value_or(1) > 1)
    return run_multi_reactor_echo(settings, model.name, model.name, *settings.threads);
  auto limit = raise_nofile_limit();
  event_loop loop(model.name);
  auto server =
      make_stream_server(loop, support::loop_server_options(settings), support::echo_handler());
  unix_socket_file socket_file(server->local());  // removed on clean exit, if still ours
  // Installed before the banner: a SIGTERM right after it must stop us cleanly.
  loop.stop_on_signals({SIGINT, SIGTERM});
  fmt::print("listening on {} model={} codec={} nofile={}/{}\n", server->local().to_uri(),
             loop.io_backend().name(), settings.codec.to_string(), limit.soft, limit.hard);
  std::fflush(stdout);
  int sig = run_until_signal(loop, *server);
  support::log_stream_totals(sig, server->stats());
  return 0;
}

}  // namespace

std::vector<server_model> event_loop_models() {
  std::vector<server_model> models;
  for (const auto& b : backends())
    models.push_back({.name = b.name,
                      .family = transport_family::stream,
                      .transports = {},
                      .description = b.description,
                      .takes = support::loop_server_takes,
                      .own_options = {},
                      .probe = probe,
                      .run = run});
  return models;
}

}  // namespace netkit::servers
