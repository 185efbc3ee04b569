// Each subcommand lives in its own cmd_*.cpp and registers itself on the app.
// A subcommand's callback throws on failure; main() prints the message and exits 1.
#pragma once

#include <CLI/CLI.hpp>

namespace netkit::cli {

void add_resolve(CLI::App& app);
void add_echo_server(CLI::App& app);
void add_echo_client(CLI::App& app);
void add_udp_relay(CLI::App& app);
void add_fd_pass(CLI::App& app);
void add_lab(CLI::App& app);
void add_bench(CLI::App& app);
void add_chat_server(CLI::App& app);
void add_p2p_chat(CLI::App& app);
void add_chat(CLI::App& app);

}  // namespace netkit::cli
