#include <cstdio>
#include <exception>

#include <fmt/format.h>

#include "commands.hpp"
#include "netkit/error.hpp"
#include "netkit/process.hpp"

int main(int argc, char** argv) {
  // Named here, not from argv[0]: help says "Usage: netkit ...", however it was started.
  CLI::App app{"netkit: Linux network programming toolkit: every classic I/O model, done right",
               "netkit"};
  app.set_version_flag("--version", std::string("netkit ") + NETKIT_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  netkit::cli::add_resolve(app);
  netkit::cli::add_echo_server(app);
  netkit::cli::add_echo_client(app);
  netkit::cli::add_udp_relay(app);
  netkit::cli::add_fd_pass(app);
  netkit::cli::add_lab(app);
  netkit::cli::add_bench(app);
  netkit::cli::add_chat_server(app);
  netkit::cli::add_p2p_chat(app);
  netkit::cli::add_chat(app);
  try {
    // Writes to a vanished peer must come back as EPIPE, never kill us.
    netkit::ignore_sigpipe();
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "netkit: {}\n", e.what());
    return 1;
  }
  return 0;
}
