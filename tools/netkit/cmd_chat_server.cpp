// netkit chat-server: a multi-user chat room over plain text lines (nc or telnet is a
// client; so is `netkit chat`). The room itself is chat/room.hpp; this file maps the
// command line onto chat_server_options.
#include <string>
#include <vector>

#include <fmt/format.h>

#include "chat_server.hpp"
#include "commands.hpp"
#include "netkit/event/backend.hpp"
#include "netkit/log.hpp"

namespace netkit::cli {

namespace {

struct chat_server_args {
  std::string listen = "tcp://127.0.0.1:9000";
  std::string model = "epoll";
  std::size_t threads = 1;
  std::size_t max_conns = 0;
  std::string motd = chat::room_options{}.motd;
  double login_timeout = 30;
  double idle_timeout = 0;
  std::size_t max_line = chat::room_options{}.max_line;
  std::size_t max_output = chat::room_options{}.max_output;
  std::size_t send_buffer = chat::chat_server_options{}.send_buffer;
  bool verbose = false;
};

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long>(seconds * 1000));
}

std::vector<std::string> loop_backends() {
  std::vector<std::string> names;
  for (const auto& b : list_backends())
    names.push_back(b.name);
  return names;
}

}  // namespace

void add_chat_server(CLI::App& app) {
  static chat_server_args args;
  auto* cmd = app.add_subcommand(
      "chat-server",
      "A multi-user chat room over text lines ('\\n', '\\r\\n' accepted): nc, telnet or "
      "`netkit chat` are clients.\n"
      "Commands: /nick NAME, /who, /me ACTION, /msg NICK TEXT, /quit [REASON], /help; any "
      "other line goes to everyone.\n"
      "Server lines: '<NICK> TEXT' a message, '* NICK ACTION', '*NICK* TEXT' private to you, "
      "'*** TEXT' a notice, '! TEXT' an error about your last line (you stay connected).\n"
      "Each message is framed once and the same bytes are queued to every member; a member "
      "whose unsent output exceeds --max-output (it stopped reading) is disconnected and the "
      "others told.\n"
      "Prints 'listening on URI model=M threads=N' first (so port 0 is usable); on "
      "SIGINT/SIGTERM tells every client the server is stopping, delivers what is queued and "
      "exits 0.");
  cmd->add_option("--listen,-l", args.listen,
                  "Address to serve: tcp://HOST:PORT, tcp://[::1]:PORT, unix:///PATH, "
                  "unix://@NAME (port 0 picks a free port)")
      ->capture_default_str();
  cmd->add_option("--model,-m", args.model, "Event-loop backend (see echo-server --list-models)")
      ->capture_default_str()
      ->check(CLI::IsMember(loop_backends()));
  cmd->add_option("--threads,-t", args.threads,
                  "Event loops, one per thread: on tcp:// each with its own SO_REUSEPORT "
                  "listener, on unix:// fed by one acceptor; each sender's lines keep their "
                  "order for every recipient")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--max-conns", args.max_conns,
                  "Close connections beyond this many at once (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--motd", args.motd, "Message of the day, sent to each client as it connects")
      ->capture_default_str();
  cmd->add_option("--login-timeout", args.login_timeout,
                  "Seconds a new connection has to choose a nick before it is told and closed")
      ->capture_default_str()
      ->check(CLI::Range(0.02, 86400.0));
  cmd->add_option("--idle-timeout", args.idle_timeout,
                  "Close a member that sends no valid line for this many seconds, with a notice "
                  "(0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  cmd->add_option("--max-line", args.max_line,
                  "Longest input line in bytes; a longer one is answered with an error and "
                  "discarded")
      ->capture_default_str()
      ->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--max-output", args.max_output,
                  "Output cap per client in bytes: above half of it the server stops reading "
                  "from it, above it the client is disconnected (slow consumer)")
      ->capture_default_str()
      ->check(CLI::Range(1024, 1 << 30));
  cmd->add_option("--send-buffer", args.send_buffer,
                  "SO_SNDBUF per client in bytes (the kernel doubles it; 0: autotuned, which lets "
                  "the kernel hold MiBs for a client that stopped reading)")
      ->capture_default_str();
  cmd->add_flag("--verbose,-v", args.verbose, "Log joins, leaves and drops");
  cmd->callback([] {
    if (args.verbose) set_log_level(log_level::debug);
    chat::chat_server_options o;
    o.listen = endpoint::parse(args.listen);
    o.model = args.model;
    o.threads = args.threads;
    o.max_connections = args.max_conns;
    o.room.motd = args.motd;
    o.room.login_timeout = to_ms(args.login_timeout);
    o.room.idle_timeout = to_ms(args.idle_timeout);
    o.room.max_line = args.max_line;
    o.room.max_output = args.max_output;
    o.send_buffer = args.send_buffer;
    if (int rc = chat::run_chat_server(o); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace netkit::cli
