// netkit bench MODE: the load generator (loadgen/, netkit_loadgen). This file only maps the
// command line onto a bench_config and prints the result.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include <fmt/format.h>

#include "commands.hpp"
#include "netkit/error.hpp"
#include "runner.hpp"

namespace netkit::cli {

namespace {

struct bench_args {
  std::string mode;
  std::string connect;
  std::string model = "epoll";
  std::string codec = "raw";
  std::string protocol = "echo";
  std::size_t connections = 1;
  std::size_t window = 1;
  std::size_t idle = 0;
  std::size_t size = 64;
  double duration = 5;
  double warmup = 1;
  double rate = 0;
  std::string spacing = "poisson";
  std::size_t threads = 1;
  std::size_t processes = 1;
  std::string source;
  double timeout = 5;
  bool reconnect = false;
  std::uint64_t seed = 0;
  bool json = false;
  bool mark_window = false;
  bool no_progress = false;
  int server_pid = 0;
};

std::chrono::nanoseconds seconds(double s) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
}

loadgen::bench_config to_config(const bench_args& a) {
  using namespace loadgen;
  bench_config c;
  c.mode = a.mode == "pingpong" ? bench_mode::pingpong
           : a.mode == "rr"     ? bench_mode::rr
           : a.mode == "rate"   ? bench_mode::rate
                                : bench_mode::churn;
  c.target = endpoint::parse(a.connect);
  c.model = a.model;
  c.codec = codec_spec::parse(a.codec);
  c.protocol = a.protocol == "sockperf" ? wire_protocol::sockperf : wire_protocol::echo;
  c.connections = a.connections;
  c.window = a.window;
  c.idle = a.idle;
  c.size = a.size;
  c.duration = seconds(a.duration);
  c.warmup = seconds(a.warmup);
  c.rate = a.rate;
  c.spacing_kind = a.spacing == "uniform" ? spacing::uniform : spacing::poisson;
  c.threads = a.threads;
  c.processes = a.processes;
  if (!a.source.empty()) c.sources = parse_sources(a.source);
  c.timeout = std::chrono::milliseconds(static_cast<long>(a.timeout * 1000));
  c.reconnect = a.reconnect;
  c.seed = a.seed != 0 ? a.seed : std::random_device{}();
  c.json = a.json;
  c.server_pid = a.server_pid;
  c.mark_window = a.mark_window;
  c.progress = !a.json && !a.no_progress && ::isatty(STDOUT_FILENO) == 1;
  return c;
}

}  // namespace

void add_bench(CLI::App& app) {
  static bench_args args;
  auto* cmd = app.add_subcommand(
      "bench",
      "Load generator: drive a server with many connections and report throughput, latency "
      "percentiles and errors.\n"
      "Modes: pingpong (each connection keeps one block, or --window blocks, bouncing: "
      "throughput), rr (closed loop: request, whole reply, next request), rate (open loop at "
      "--rate messages/s in "
      "total; latency from each request's intended send time, so a stalled server shows in "
      "the tail; between sends less than 200 us apart each worker spins instead of sleeping, "
      "so its CPU figure is its whole CPU), churn (connect, one exchange, close: "
      "connections/s).\n"
      "tcp:// and unix:// run on the library's stream client (every --model backend); "
      "udp:// and unix-dgram:// on connected sockets (rr, pingpong, rate).\n"
      "Exit status 1 when any error occurred, the target went away or SIGINT/SIGTERM cut the "
      "run short; the results so far are printed all the same.\n"
      "A live progress line (rate, p99 so far, errors) is drawn only when stdout is a "
      "terminal.");
  cmd->add_option("mode", args.mode, "pingpong, rr, rate or churn")
      ->required()
      ->check(CLI::IsMember({"pingpong", "rr", "rate", "churn"}));
  cmd->add_option("--connect,-c", args.connect,
                  "Target (tcp://HOST:PORT, unix://PATH, udp://HOST:PORT, unix-dgram://PATH)")
      ->required();
  cmd->add_option("--model,-m", args.model,
                  "Client event-loop backend: select, poll, epoll, epoll-et, uring")
      ->capture_default_str();
  cmd->add_option("--codec", args.codec,
                  "Framing of each request, as the server's: raw, line, crlf, fixed:N, length, "
                  "length16")
      ->capture_default_str();
  cmd->add_option("--protocol", args.protocol,
                  "echo (framed payloads, echoed) or sockperf (sockperf messages asking for a "
                  "pong: drives `sockperf server` or `netkit echo-server --codec sockperf`)")
      ->check(CLI::IsMember({"echo", "sockperf"}))
      ->capture_default_str();
  cmd->add_option("--connections,-n", args.connections, "Active connections (datagram sockets)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}))
      ->capture_default_str();
  cmd->add_option("--window", args.window,
                  "pingpong: messages each connection keeps in flight, 1 to 1024 (1: one "
                  "block bouncing). Each reply is answered at once by a new request, and each "
                  "message's latency runs from its own send. Datagram targets: the replies "
                  "come in and the new requests go out in batches (recvmmsg/sendmmsg per "
                  "socket), so the client's cost per datagram falls about N-fold and one "
                  "client CPU can keep a server busy; a reply lost for --timeout counts as "
                  "\"timeout\" and a fresh request refills the window. Stream targets: N "
                  "blocks in flight per connection, replies recognised in order. Not for rr, "
                  "rate or churn")
      ->check(CLI::Range(std::size_t{1}, loadgen::max_window))
      ->capture_default_str();
  cmd->add_option("--idle", args.idle,
                  "Idle connections held open beside the active ones (they send nothing)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1'000'000}))
      ->capture_default_str();
  cmd->add_option("--size,-s", args.size,
                  "Payload bytes per message (sockperf: the whole message, at least 14)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64} << 20))
      ->capture_default_str();
  cmd->add_option("--duration,-d", args.duration, "Measured seconds")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  cmd->add_option("--warmup,-w", args.warmup, "Seconds of traffic before measuring")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  cmd->add_option("--rate,-r", args.rate, "rate mode: messages per second, all connections")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--spacing", args.spacing, "rate mode: poisson or uniform send times")
      ->check(CLI::IsMember({"poisson", "uniform"}))
      ->capture_default_str();
  cmd->add_option("--threads,-t", args.threads, "Client threads (one event loop each)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{256}))
      ->capture_default_str();
  cmd->add_option("--processes,-p", args.processes,
                  "Client processes (each with --threads): needed above RLIMIT_NOFILE's "
                  "descriptors per process")
      ->check(CLI::Range(std::size_t{1}, std::size_t{256}))
      ->capture_default_str();
  cmd->add_option("--source", args.source,
                  "Source addresses, spread over the connections (tcp): a range "
                  "127.0.0.1-127.0.0.8, one address, or a comma list; more addresses, more "
                  "ephemeral ports");
  cmd->add_option("--timeout", args.timeout,
                  "Seconds: per connect attempt, per datagram reply, and the silence after "
                  "which a closed-loop stream connection counts as stalled (churn too: nothing "
                  "moved since the connect or the last byte); each a \"timeout\" error")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  cmd->add_flag("--reconnect", args.reconnect,
                "Make a lost connection again (default: count it and carry on without it; the "
                "run ends when every active connection is gone)");
  cmd->add_option("--seed", args.seed, "Seed of the send-time draws (0: random)");
  cmd->add_flag("--json", args.json,
                "Print one JSON object: every figure (msgs_per_s, mib_per_s, latency_us with "
                "its percentiles, errors by kind) and the full configuration");
  cmd->add_option(
         "--server-pid", args.server_pid,
         "Also measure this server process's CPU time over the measured window, its "
         "threads and every descendant process included (fork, prefork): reported as "
         "server CPU per message (server_cpu_us_per_msg in --json), and in churn mode per "
         "connection (server_cpu_us_per_conn); also how often that process itself (not "
         "its children) slept, its threads' voluntary context switches (server_sleeps; "
         "churn: server_sleeps_per_conn; null if a thread ended in the window): on loopback "
         "nearly each is a wake-up the client's CPU pays for")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--mark-window", args.mark_window,
                "Write `measuring` to stderr when the measured window opens and `measured` when "
                "it closes, so a script can read the server's CPU time over exactly that window");
  cmd->add_flag("--no-progress", args.no_progress,
                "No live progress line (there is none anyway unless stdout is a terminal)");
  cmd->callback([] {
    auto config = to_config(args);
    auto result = loadgen::run_bench(config);
    const auto out =
        config.json ? loadgen::format_json(config, result) : loadgen::format_text(config, result);
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
    if (int rc = loadgen::exit_status(result); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace netkit::cli
