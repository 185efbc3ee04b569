// Model "multi-reactor": N event loops, one per thread (netkit/net/multi_reactor). --accept
// reuseport gives each loop its own SO_REUSEPORT listener on the same port (the kernel
// spreads the connections; tcp:// only); --accept dispatch has one acceptor thread hand
// the connections round robin to the loops (tcp:// and unix://).
#include "multi_reactor_echo.hpp"

#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/process.hpp"
#include "netkit/signals.hpp"
#include "netkit/unix_socket.hpp"
#include "support/stream_echo.hpp"
#include "support/worker_processes.hpp"

namespace netkit::servers {

namespace {

// --model multi-reactor runs on epoll: the backend every Linux kernel has.
constexpr std::string_view default_backend = "epoll";
constexpr std::string_view accept_flag = "--accept";

// Serves until SIGINT/SIGTERM on `listeners` (empty: binds settings.listen). Prints the
// banner unless `banner` is false (a worker process: its parent printed one).
int serve(const model_settings& settings, const reactor_plan& plan, std::string_view shown_model,
          std::vector<unique_fd> listeners, const endpoint& listen, bool banner) {
  auto limit = raise_nofile_limit();
  // The stop signals are blocked in every thread (the reactor threads inherit the mask)
  // and taken here, inside wait(), so no reactor thread is interrupted by them.
  stop_signal_scope stop;
  stop.block();
  auto options = support::loop_server_options(settings);
  options.listen = listen;
  multi_reactor reactors({.threads = plan.threads,
                          .backend = std::string(plan.backend),
                          .accept = plan.accept,
                          .busy_poll = plan.busy_poll,
                          .listeners = std::move(listeners)},
                         options, support::echo_handler());
  unix_socket_file socket_file;  // removed on clean exit, if still ours
  if (banner) {
    socket_file = unix_socket_file(reactors.local());
    fmt::print("listening on {} model={} codec={} threads={} accept={}{} nofile={}/{}\n",
               reactors.local().to_uri(), shown_model, settings.codec.to_string(), reactors.size(),
               to_string(reactors.strategy()), support::busy_poll_banner(plan.busy_poll),
               limit.soft, limit.hard);
    std::fflush(stdout);
  }
  int sig = stop.wait();
  reactors.stop();
  reactors.join();
  support::log_stream_totals(sig, reactors.totals());
  return 0;
}

int run(const server_model& model, const model_settings& settings) {
  reactor_plan plan{
      .backend = default_backend,
      .threads = settings.threads.value_or(std::max(1u, std::thread::hardware_concurrency())),
      .accept = accept_of(model, settings),
      .busy_poll = support::busy_poll_of(model, settings)};
  return run_multi_reactor_echo(model, settings, plan, model.name);
}

}  // namespace

accept_strategy accept_of(const server_model& model, const model_settings& settings) {
  // Not given, on a Unix socket: the one strategy that serves it.
  if (!settings.own.contains(accept_flag) && settings.listen.kind() != transport::tcp)
    return accept_strategy::dispatch;
  return settings.own_choice(model, accept_flag) == "dispatch" ? accept_strategy::dispatch
                                                               : accept_strategy::reuseport;
}

model_option accept_option() {
  static_assert(static_cast<int>(accept_strategy::reuseport) == 0 &&
                    static_cast<int>(accept_strategy::dispatch) == 1,
                "choices are listed in the order of accept_strategy");
  return {.flag = accept_flag,
          .help =
              "How the --threads N loops share the connections: reuseport (each loop its "
              "own SO_REUSEPORT listener, the kernel balances; tcp:// only) or dispatch "
              "(one acceptor thread hands them round robin to the loops; the default on unix://)",
          .default_value = static_cast<std::size_t>(default_accept_strategy),
          .min = 0,
          .max = 0,
          .choices = {"reuseport", "dispatch"}};
}

int run_multi_reactor_echo(const server_model& model, const model_settings& settings,
                           const reactor_plan& plan, std::string_view shown_model) {
  if (plan.accept == accept_strategy::reuseport && settings.listen.kind() != transport::tcp)
    throw usage_error(fmt::format(
        "--accept reuseport (the multi-reactor's --threads {}) serves tcp:// only: its "
        "listeners share the port with SO_REUSEPORT, which Unix sockets do not have; use "
        "--accept dispatch for {}",
        plan.threads, settings.listen.to_uri()));
  auto processes = support::processes_of(model, settings);
  if (processes <= 1) return serve(settings, plan, shown_model, {}, settings.listen, true);
  support::worker_plan workers{
      .processes = processes,
      .listeners_per_worker = plan.accept == accept_strategy::reuseport ? plan.threads : 1,
      .shown_model = shown_model,
      .banner_extra = fmt::format("threads={} accept={}", std::max<std::size_t>(plan.threads, 1),
                                  to_string(plan.accept))};
  return support::run_worker_processes(
      settings, workers, [&](const endpoint& local, std::vector<unique_fd> listeners) {
        return serve(settings, plan, shown_model, std::move(listeners), local, false);
      });
}

server_model multi_reactor_model() {
  return {
      .name = "multi-reactor",
      .family = transport_family::stream,
      .transports = {},
      .description =
          "--threads N epoll loops, one per thread; --accept reuseport (a "
          "SO_REUSEPORT listener per loop, tcp:// only) or dispatch (one "
          "acceptor feeds the loops round robin); --processes M: M of those",
      .takes = support::loop_server_takes,
      .own_options = {accept_option(), support::processes_option(), support::busy_poll_option()},
      .probe = nullptr,
      .run = run};
}

}  // namespace netkit::servers
