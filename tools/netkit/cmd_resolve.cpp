#include <sys/socket.h>

#include <fmt/format.h>

#include "commands.hpp"
#include "netkit/resolve.hpp"

namespace netkit::cli {

void add_resolve(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "resolve", "Print every address of HOST (getaddrinfo) with its family and reverse name");
  static std::string host;
  static std::uint16_t port = 0;
  cmd->add_option("host", host, "Host name or numeric address")->required();
  cmd->add_option("--port", port, "Port to resolve with (shown in the URIs)")
      ->capture_default_str();
  cmd->callback([] {
    auto addresses = resolve(host, port, transport::tcp);
    fmt::print("{} has {} address{}:\n", host, addresses.size(), addresses.size() == 1 ? "" : "es");
    for (auto& ep : addresses) {
      auto name = reverse_name(ep);
      fmt::print("  {:<5} {:<40} reverse: {}\n", ep.family() == AF_INET6 ? "IPv6" : "IPv4",
                 ep.host(), name ? *name : "(no name)");
    }
    fmt::print("this host is {}\n", host_name());
  });
}

}  // namespace netkit::cli
