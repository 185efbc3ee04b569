// The multi-reactor stream echo, also reached from the event-loop models with --threads N;
// and the options the event-loop models and the multi-reactor share (--accept).
#pragma once

#include <chrono>
#include <cstddef>
#include <string_view>
#include <vector>

#include "netkit/net/multi_reactor.hpp"
#include "server_model.hpp"

namespace netkit::servers {

// The --accept option (reuseport | dispatch), declared by every model that takes it.
model_option accept_option();

// The strategy asked for with --accept; when none is given, the default, or dispatch on a
// Unix socket (reuseport cannot serve one).
accept_strategy accept_of(const server_model& model, const model_settings& settings);

struct reactor_plan {
  std::string_view backend;
  std::size_t threads = 1;
  accept_strategy accept = default_accept_strategy;
  std::chrono::microseconds busy_poll{0};  // --busy-poll
};

// `plan.threads` event loops on `plan.backend`, one per thread, sharing the connections by
// `plan.accept` (each with its own SO_REUSEPORT listener, or fed by one acceptor); with
// --processes N, in each of N supervised worker processes. The banner says
// model=`shown_model`.
int run_multi_reactor_echo(const server_model& model, const model_settings& settings,
                           const reactor_plan& plan, std::string_view shown_model);

}  // namespace netkit::servers
