// netkit lab NAME...: run the TCP/UDP labs (labs/), for a person or as JSON for scripts.
#include <stdexcept>

#include <fmt/format.h>

#include "commands.hpp"
#include "lab.hpp"
#include "netkit/error.hpp"

namespace netkit::cli {

namespace {

struct lab_args {
  std::vector<std::string> names;
  bool list = false;
  bool all = false;
  bool json = false;
  std::string table = "auto";
};

inspect::table_source source_of(const std::string& name) {
  if (name == "netlink") return inspect::table_source::netlink;
  if (name == "proc") return inspect::table_source::proc;
  return inspect::table_source::automatic;
}

void list_labs(bool json) {
  for (const auto& l : labs::all_labs()) {
    if (json)
      fmt::print("{}\n", labs::format_json(l));
    else
      fmt::print("  {:<12} {}\n", l.name, l.summary);
  }
}

void run(const lab_args& args) {
  if (args.list) return list_labs(args.json);
  std::vector<const labs::lab*> chosen;
  if (args.all) {
    for (const auto& l : labs::all_labs())
      chosen.push_back(&l);
  }
  for (const auto& name : args.names) {
    const auto* l = labs::find_lab(name);
    if (!l) throw usage_error(fmt::format("no lab named '{}' (netkit lab --list)", name));
    chosen.push_back(l);
  }
  if (chosen.empty()) throw usage_error("name a lab, or give --all or --list");
  std::vector<std::string> failed;
  for (const auto* l : chosen) {
    auto report = labs::run_lab(*l, {.table = source_of(args.table)});
    if (args.json)
      fmt::print("{}\n", labs::format_json(report));
    else
      fmt::print("{}{}", labs::format_text(report), l == chosen.back() ? "" : "\n");
    std::fflush(stdout);
    if (!report.passed()) failed.push_back(report.name);
  }
  if (!failed.empty())
    throw std::runtime_error(fmt::format("lab failed: {}", fmt::join(failed, ", ")));
}

}  // namespace

void add_lab(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "lab",
      "Run a short TCP/UDP experiment on loopback and show what the kernel actually did\n"
      "(socket states from sock_diag, errors, signals). Exits 1 when a lab's outcome is not\n"
      "what it expected.");
  static lab_args args;
  cmd->add_option("name", args.names, "Labs to run (see --list)");
  cmd->add_flag("--list", args.list, "List the labs");
  cmd->add_flag("--all", args.all, "Run every lab");
  cmd->add_flag("--json", args.json, "One JSON object per lab: expected, observed, checks, pass");
  cmd->add_option("--table-source", args.table,
                  "Where socket states come from: auto (sock_diag, /proc if refused), netlink, "
                  "proc (/proc/net/tcp{,6})")
      ->check(CLI::IsMember({"auto", "netlink", "proc"}))
      ->capture_default_str();
  cmd->callback([] { run(args); });
}

}  // namespace netkit::cli
