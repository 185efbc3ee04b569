// netkit chat: the terminal client of `netkit chat-server` (chat/terminal_client.hpp).
#include <string>

#include "commands.hpp"
#include "netkit/endpoint.hpp"
#include "terminal_client.hpp"

namespace netkit::cli {

void add_chat(CLI::App& app) {
  static std::string connect = "tcp://127.0.0.1:9000";
  static chat::terminal_options options;
  auto* cmd = app.add_subcommand(
      "chat",
      "Terminal client of netkit chat-server: type a line to send it (/help lists the "
      "server's commands, /quit leaves).\n"
      "On a terminal: a line editor (libedit), so incoming messages appear above the line "
      "you are typing and never clobber it, with timestamps and colours. With stdin or "
      "stdout not a terminal: plain lines, one per message, so it scripts well; EOF on stdin "
      "sends /quit and prints every reply up to the server's goodbye.\n"
      "Exit status: 0 when you quit (/quit, EOF, Ctrl-C); 1 when the connection cannot be "
      "made or is lost (without --reconnect).");
  cmd->add_option("--connect,-c", connect, "The chat server: tcp://HOST:PORT or unix:///PATH")
      ->capture_default_str();
  cmd->add_option("--nick,-n", options.nick,
                  "Your nick, sent as /nick NAME on every (re)connect (default: choose one "
                  "with /nick)");
  cmd->add_flag("--reconnect,-r", options.reconnect,
                "When the connection is lost (e.g. the server restarts), connect again with "
                "exponential back-off (100 ms doubling to 5 s, with jitter)");
  cmd->callback([] {
    options.server = endpoint::parse(connect);
    if (int rc = chat::run_terminal_client(options); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace netkit::cli
