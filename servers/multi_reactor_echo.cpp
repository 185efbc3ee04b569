// Model "multi-reactor": N event loops, one per thread, each with its own SO_REUSEPORT
// listener on the same port; the kernel spreads the connections (netkit/net/multi_reactor).
#include "multi_reactor_echo.hpp"

#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/net/multi_reactor.hpp"
#include "netkit/process.hpp"
#include "netkit/signals.hpp"
#include "netkit/unix_socket.hpp"
#include "support/stream_echo.hpp"

namespace netkit::servers {

namespace {

// --model multi-reactor runs on epoll: the backend every Linux kernel has.
constexpr std::string_view default_backend = "epoll";

int run(const server_model& model, const model_settings& settings) {
  std::size_t threads =
      settings.threads.value_or(std::max(1u, std::thread::hardware_concurrency()));
  return run_multi_reactor_echo(settings, default_backend, model.name, threads);
}

}  // namespace

int run_multi_reactor_echo(const model_settings& settings, std::string_view backend,
                           std::string_view shown_model, std::size_t threads) {
  if (settings.listen.kind() != transport::tcp)
    throw usage_error(fmt::format(
        "--threads {} (the multi-reactor) serves tcp:// only: its listeners share the port "
        "with SO_REUSEPORT, which Unix sockets do not have; not {}",
        threads, settings.listen.to_uri()));
  auto limit = raise_nofile_limit();
  // The stop signals are blocked in every thread (the reactor threads inherit the mask)
  // and taken here, inside wait(), so no reactor thread is interrupted by them.
  stop_signal_scope stop;
  stop.block();
  multi_reactor reactors(threads, std::string(backend), support::loop_server_options(settings),
                         support::echo_handler());
  unix_socket_file socket_file(reactors.local());  // removed on clean exit, if still ours
  fmt::print("listening on {} model={} codec={} threads={} nofile={}/{}\n",
             reactors.local().to_uri(), shown_model, settings.codec.to_string(), reactors.size(),
             limit.soft, limit.hard);
  std::fflush(stdout);
  int sig = stop.wait();
  reactors.stop();
  reactors.join();
  support::log_stream_totals(sig, reactors.totals());
  return 0;
}

server_model multi_reactor_model() {
  return {.name = "multi-reactor",
          .family = transport_family::stream,
          // Its listeners share one port through SO_REUSEPORT, which Unix sockets lack.
          .transports = {transport::tcp},
          .description =
              "--threads N epoll loops, one per thread, one SO_REUSEPORT listener each "
              "(--model M --threads N: the same on backend M)",
          .takes = support::loop_server_takes,
          .own_options = {},
          .probe = nullptr,
          .run = run};
}

}  // namespace netkit::servers
