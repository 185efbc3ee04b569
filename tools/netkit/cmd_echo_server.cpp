#include <signal.h>

#include <fmt/format.h>

#include "commands.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/net/multi_reactor.hpp"
#include "netkit/net/stream_server.hpp"
#include "netkit/process.hpp"
#include "netkit/unix_socket.hpp"
#include "prefork_echo.hpp"
#include "udp_echo.hpp"

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
  std::size_t threads = 1;
  std::size_t workers = 4;  // --model prefork only
  bool workers_given = false;
  std::string mode;  // octal, for Unix socket files
  std::size_t max_datagram = 65536;
  bool model_given = false;
  bool list_models = false;
  bool verbose = false;
};

std::optional<mode_t> parse_mode(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::size_t end = 0;
  unsigned long value = 0;
  try {
    value = std::stoul(text, &end, 8);
  } catch (const std::exception&) {
    end = 0;
  }
  if (end != text.size() || value > 07777)
    throw usage_error(fmt::format("--mode '{}' is not an octal file mode such as 0660", text));
  return static_cast<mode_t>(value);
}

void list_models() {
  fmt::print("stream models (tcp://, unix://):\n");
  for (const auto& b : list_backends())
    fmt::print("  {:<10} {:<13} {}{}\n", b.name, b.available ? "available" : "UNAVAILABLE",
               b.description, b.available ? "" : fmt::format(" [{}]", b.problem));
  fmt::print("  {:<10} {:<13} {}\n", "prefork", "available",
             "accepting parent hands each connection to an idle forked worker (SCM_RIGHTS)");
  fmt::print("datagram models (udp://, unix-dgram://):\n");
  for (auto m : servers::dgram_models())
    fmt::print("  {:<10} available\n", m);
}

void log_totals(int sig, const server_stats& st) {
  log(log_level::info,
      "stopped by signal {}: {} connections served, {} refused, {} shed, {} protocol errors, "
      "{} bytes in, {} bytes out",
      sig, st.accepted, st.refused, st.shed, st.protocol_errors, st.bytes_in, st.bytes_out);
}

// --threads N: N reactors on one SO_REUSEPORT port. The stop signals are blocked in every
// thread and taken synchronously here, so no reactor thread is interrupted by them.
int run_multi(const echo_server_args& args, const server_options& options,
              const stream_handler& echo, const nofile_limit& limit) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  multi_reactor reactors(args.threads, args.model, options, echo);
  unix_socket_file socket_file;
  if (reactors.local().kind() == transport::unix_stream && !reactors.local().is_abstract())
    socket_file = unix_socket_file(reactors.local());
  fmt::print("listening on {} model={} codec={} threads={} nofile={}/{}\n",
             reactors.local().to_uri(), args.model, options.codec.to_string(), reactors.size(),
             limit.soft, limit.hard);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  reactors.stop();
  reactors.join();
  log_totals(sig, reactors.totals());
  return 0;
}

int run(const echo_server_args& args) {
  if (args.list_models) {
    list_models();
    return 0;
  }
  if (args.verbose) set_log_level(log_level::debug);
  auto listen = endpoint::parse(args.listen);
  auto unix_mode = parse_mode(args.mode);
  if (!is_stream(listen.kind())) {
    servers::dgram_server_options dgram;
    dgram.listen = listen;
    // The stream default would be wrong here: datagram servers are blocking by default.
    dgram.model = args.model_given ? args.model : "blocking";
    dgram.max_datagram = args.max_datagram;
    dgram.verbose = args.verbose;
    dgram.unix_mode = unix_mode;
    return servers::run_dgram_echo_server(dgram);
  }
  if (args.workers_given && args.model != "prefork")
    throw usage_error("--workers applies only to --model prefork");
  auto limit = raise_nofile_limit();
  if (args.model == "prefork") {
    if (args.threads > 1) throw usage_error("--threads does not apply to --model prefork");
    // Each worker serves one connection at a time with blocking I/O: these loop-server
    // limits have no meaning there, and silently ignoring them would surprise.
    if (args.max_conns != 0 || args.idle_timeout != 0 ||
        args.high_water != echo_server_args{}.high_water ||
        args.hard_limit != echo_server_args{}.hard_limit)
      throw usage_error(
          "--max-conns, --idle-timeout, --high-water and --hard-limit do not apply to --model "
          "prefork (its --workers bound the connections served at once)");
    servers::prefork_options prefork;
    prefork.listen = listen;
    prefork.listening.unix_mode = unix_mode;
    prefork.listening.reuse_port = args.reuse_port;
    prefork.codec = codec_spec::parse(args.codec);
    prefork.workers = args.workers;
    return servers::run_prefork_echo_server(prefork);
  }
  server_options options;
  options.listen = listen;
  options.listening.unix_mode = unix_mode;
  options.codec = codec_spec::parse(args.codec);
  options.max_connections = args.max_conns;
  options.idle_timeout = std::chrono::milliseconds(static_cast<long>(args.idle_timeout * 1000));
  options.high_water = args.high_water;
  options.low_water = args.high_water / 4;
  options.hard_limit = std::max(args.hard_limit, args.high_water);
  options.listening.reuse_port = args.reuse_port;

  stream_handler echo;
  echo.on_message = [](connection& c, std::span<const std::byte> message) { c.send(message); };
  if (args.threads > 1) return run_multi(args, options, echo, limit);

  event_loop loop(args.model);
  auto server = make_stream_server(loop, options, std::move(echo));
  // Removes the socket file on clean exit (only if it is still ours).
  unix_socket_file socket_file;
  if (server->local().kind() == transport::unix_stream && !server->local().is_abstract())
    socket_file = unix_socket_file(server->local());
  // Installed before the banner: a SIGTERM right after it must stop us cleanly.
  loop.stop_on_signals({SIGINT, SIGTERM});
  fmt::print("listening on {} model={} codec={} nofile={}/{}\n", server->local().to_uri(),
             loop.io_backend().name(), options.codec.to_string(), limit.soft, limit.hard);
  std::fflush(stdout);
  int sig = run_until_signal(loop, *server);
  log_totals(sig, server->stats());
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
  cmd->add_option("--model,-m", args.model,
                  "I/O model (see --list-models); datagram URIs default to 'blocking'")
      ->capture_default_str()
      ->each([](const std::string&) { args.model_given = true; });
  cmd->add_option("--mode", args.mode,
                  "Octal mode of a Unix socket file, e.g. 0660 (default: from the umask); "
                  "never more permissive than this from the moment the file exists");
  cmd->add_option("--max-datagram", args.max_datagram,
                  "Datagram receive buffer; a longer datagram is reported (MSG_TRUNC) and not "
                  "echoed")
      ->capture_default_str();
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
  cmd->add_option("--threads,-t", args.threads,
                  "Multi-reactor: this many event loops, one per thread, each with its own "
                  "SO_REUSEPORT listener on the same port")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--workers", args.workers,
                  "--model prefork: worker processes, each serving one connection at a time")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, servers::max_prefork_workers))
      ->each([](const std::string&) { args.workers_given = true; });
  cmd->add_flag("--reuse-port", args.reuse_port, "Set SO_REUSEPORT (several servers, one port)");
  cmd->add_flag("--list-models", args.list_models,
                "List the I/O models and whether this kernel supports each");
  cmd->add_flag("--verbose,-v", args.verbose, "Log one line per connection");
  cmd->callback([] {
    if (int rc = run(args); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace netkit::cli
