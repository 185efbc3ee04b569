#include <fmt/format.h>

#include "commands.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/net/stream_server.hpp"
#include "netkit/process.hpp"

namespace netkit::cli {

namespace {

struct echo_server_args {
  std::string listen = "tcp://127.0.0.1:9000";
  std::string model = "epoll";
  std::string codec = "line";
  std::size_t max_conns = 0;
  double idle_timeout = 0;
  std::size_t high_water = 1 << 20;
  std::size_t hard_limit = 16 << 20;
  bool reuse_port = false;
  bool list_models = false;
  bool verbose = false;
};

void list_models() {
  fmt::print("stream models (tcp://, unix://):\n");
  for (const auto& b : list_backends())
    fmt::print("  {:<10} {:<13} {}{}\n", b.name, b.available ? "available" : "UNAVAILABLE",
               b.description, b.available ? "" : fmt::format(" [{}]", b.problem));
}

int run(const echo_server_args& args) {
  if (args.list_models) {
    list_models();
    return 0;
  }
  if (args.verbose) set_log_level(log_level::debug);
  auto limit = raise_nofile_limit();
  server_options options;
  options.listen = endpoint::parse(args.listen);
  options.codec = codec_spec::parse(args.codec);
  options.max_connections = args.max_conns;
  options.idle_timeout = std::chrono::milliseconds(static_cast<long>(args.idle_timeout * 1000));
  options.high_water = args.high_water;
  options.low_water = args.high_water / 4;
  options.hard_limit = std::max(args.hard_limit, args.high_water);
  options.listening.reuse_port = args.reuse_port;

  event_loop loop(args.model);
  server_handler echo;
  echo.on_message = [](connection& c, std::span<const std::byte> message) { c.send(message); };
  auto server = make_stream_server(loop, options, std::move(echo));
  fmt::print("listening on {} model={} codec={} nofile={}/{}\n", server->local().to_uri(),
             loop.io_backend().name(), options.codec.to_string(), limit.soft, limit.hard);
  std::fflush(stdout);
  int sig = run_until_signal(loop, *server);
  const auto& st = server->stats();
  log(log_level::info,
      "stopped by signal {}: {} connections served, {} refused, {} shed, {} protocol errors, "
      "{} bytes in, {} bytes out",
      sig, st.accepted, st.refused, st.shed, st.protocol_errors, st.bytes_in, st.bytes_out);
  return 0;
}

}  // namespace

void add_echo_server(CLI::App& app) {
  static echo_server_args args;
  auto* cmd = app.add_subcommand(
      "echo-server",
      "Echo every framed message back, on the I/O model of your choice.\n"
      "Prints 'listening on URI model=M ...' first (so port 0 is usable); stops cleanly on "
      "SIGINT/SIGTERM after flushing pending output.");
  cmd->add_option("--listen,-l", args.listen,
                  "Address to serve: tcp://HOST:PORT, tcp://[::1]:PORT, unix:///PATH, "
                  "unix://@NAME (port 0 picks a free port)")
      ->capture_default_str();
  cmd->add_option("--model,-m", args.model, "I/O model (see --list-models)")->capture_default_str();
  cmd->add_option("--codec,-c", args.codec,
                  "Framing: raw, line, crlf, fixed:N, length, length16; optional ,max=BYTES")
      ->capture_default_str();
  cmd->add_option("--max-conns", args.max_conns,
                  "Close connections beyond this many at once, with a log line (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", args.idle_timeout,
                  "Close connections silent for this many seconds (0: never)")
      ->capture_default_str();
  cmd->add_option("--high-water", args.high_water,
                  "Stop reading from a client whose unsent output exceeds this many bytes, "
                  "until it drains to a quarter of it")
      ->capture_default_str();
  cmd->add_option("--hard-limit", args.hard_limit,
                  "Close a client whose unsent output exceeds this many bytes")
      ->capture_default_str();
  cmd->add_flag("--reuse-port", args.reuse_port, "Set SO_REUSEPORT (several servers, one port)");
  cmd->add_flag("--list-models", args.list_models,
                "List the I/O models and whether this kernel supports each");
  cmd->add_flag("--verbose,-v", args.verbose, "Log one line per connection");
  cmd->callback([] {
    if (int rc = run(args); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace netkit::cli
