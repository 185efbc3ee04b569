// What the event-loop models (one loop, or one per thread) share: the echo handler, the
// server options taken from the command line, and the closing summary line.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "netkit/net/stream_server.hpp"
#include "server_model.hpp"

namespace netkit::servers::support {

// The common options every loop server takes.
inline constexpr common_options loop_server_takes = {
    common_option::codec,      common_option::unix_mode,    common_option::reuse_port,
    common_option::max_conns,  common_option::idle_timeout, common_option::high_water,
    common_option::hard_limit, common_option::threads};

// Echoes every decoded message back on its connection.
stream_handler echo_handler();

// The loop server's options from the command line; low water is a quarter of high water,
// and the hard limit never below high water.
server_options loop_server_options(const model_settings& settings);

// --busy-poll MICROSECONDS: event_loop::set_busy_poll for every serving loop.
model_option busy_poll_option();
std::chrono::microseconds busy_poll_of(const server_model& model, const model_settings& settings);
// " busy-poll=Nus" for the banner, or "" when it is off.
std::string busy_poll_banner(std::chrono::microseconds window);

// "stopped by signal N: ... connections served, ..." at info level.
void log_stream_totals(int sig, const server_stats& stats);

}  // namespace netkit::servers::support
