#include "support/stream_echo.hpp"

#include <algorithm>
#include <string_view>

#include <fmt/format.h>

#include "netkit/log.hpp"
#include "netkit/net/connection.hpp"

namespace netkit::servers::support {

stream_handler echo_handler() {
  stream_handler echo;
  echo.on_message = [](connection& c, std::span<const std::byte> message) { c.send(message); };
  return echo;
}

server_options loop_server_options(const model_settings& settings) {
  server_options options;
  options.listen = settings.listen;
  options.listening.unix_mode = settings.unix_mode;
  options.listening.reuse_port = settings.reuse_port;
  options.codec = settings.codec;
  options.max_connections = settings.max_conns;
  options.idle_timeout = settings.idle_timeout;
  options.high_water = settings.high_water;
  options.low_water = settings.high_water / 4;
  options.hard_limit = std::max(settings.hard_limit, settings.high_water);
  return options;
}

namespace {
constexpr std::string_view busy_poll_flag = "--busy-poll";
}  // namespace

model_option busy_poll_option() {
  return {.flag = busy_poll_flag,
          .help =
              "Microseconds each loop polls without blocking before it sleeps (0: sleep at "
              "once). Lower latency when requests come less than that apart (no wake-up of a "
              "sleeping thread), at the price of a CPU kept busy that long after each event",
          .default_value = 0,
          .min = 0,
          .max = 100'000,
          .choices = {}};
}

std::chrono::microseconds busy_poll_of(const server_model& model, const model_settings& settings) {
  return std::chrono::microseconds(settings.own_option(model, busy_poll_flag));
}

std::string busy_poll_banner(std::chrono::microseconds window) {
  return window.count() > 0 ? fmt::format(" busy-poll={}us", window.count()) : std::string();
}

void log_stream_totals(int sig, const server_stats& st) {
  log(log_level::info,
      "stopped by signal {}: {} connections served, {} refused, {} shed, {} protocol errors, "
      "{} bytes in, {} bytes out",
      sig, st.accepted, st.refused, st.shed, st.protocol_errors, st.bytes_in, st.bytes_out);
}

}  // namespace netkit::servers::support
