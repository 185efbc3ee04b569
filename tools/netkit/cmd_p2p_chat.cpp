// netkit p2p-chat: two people, one connection, two processes per side (chat/p2p_chat.hpp).
#include <string>

#include "commands.hpp"
#include "netkit/error.hpp"
#include "p2p_chat.hpp"

namespace netkit::cli {

void add_p2p_chat(CLI::App& app) {
  static std::string listen, connect;
  auto* cmd = app.add_subcommand(
      "p2p-chat",
      "Point-to-point chat: one side --listen URI, the other --connect URI (tcp:// or "
      "unix://). Each line you type is sent as one message; each message received is shown "
      "as 'peer: TEXT'. Works with stdin and stdout as pipes, so it can be scripted.\n"
      "Two processes per side, as in the course: the parent reads the keyboard and sends, a "
      "forked child receives and prints.\n"
      "Leaving: EOF (Ctrl-D), /quit, Ctrl-C or SIGTERM (to the process group or to either "
      "process) ends your side with status 0; the other side prints '*** peer left' and "
      "ends with status 0 too. A process that dies otherwise is reported and the status is "
      "1.\n"
      "How the two processes learn of each other's exit: a pipe in each direction, whose "
      "write end only the other process holds. Any death (even SIGKILL) closes it and "
      "poll() sees the hang-up at once; unlike SIGCHLD or PR_SET_PDEATHSIG it works both "
      "ways, cannot be lost, and never names a recycled pid. The parent always reaps the "
      "child before it exits (no orphan, no zombie); the terminal is never put in raw mode.");
  auto* l = cmd->add_option("--listen,-l", listen,
                            "Wait for one peer here (prints 'listening on URI' first; port 0 "
                            "picks a free port)");
  auto* c = cmd->add_option("--connect,-c", connect, "Connect to a peer listening here");
  l->excludes(c);
  c->excludes(l);
  cmd->callback([] {
    if (listen.empty() == connect.empty())
      throw usage_error("p2p-chat needs exactly one of --listen URI or --connect URI");
    chat::p2p_options o;
    o.side = listen.empty() ? chat::p2p_options::role::connect : chat::p2p_options::role::listen;
    o.address = endpoint::parse(listen.empty() ? connect : listen);
    if (int rc = chat::run_p2p_chat(o); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace netkit::cli
