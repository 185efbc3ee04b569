// `netkit --help` and every subcommand's help name the command "netkit", never the path
// it was started by (CLI11 would take argv[0]): from the build tree, and through a link
// of another name.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/child_process.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct help_text {
  std::string usage;                     // the "Usage: ..." line
  std::vector<std::string> subcommands;  // the names listed under "Subcommands:"
};

// Runs `program args... --help` (bounded) and reads its usage line and subcommand list;
// fails the test if the program does not exit 0.
help_text help_of(const std::string& program, const std::vector<std::string>& args) {
  std::vector<std::string> argv{program};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--help");
  child_process child(child_options{argv, std::nullopt, {}});
  auto until = deadline_after(30s);
  help_text help;
  bool in_subcommands = false;
  while (auto line = child.read_line(until)) {
    if (help.usage.empty() && line->starts_with("Usage: ")) help.usage = *line;
    if (*line == "Subcommands:") in_subcommands = true;
    // "  NAME    description"; a description's continuation lines are indented further.
    else if (in_subcommands && line->size() > 2 && line->starts_with("  ") && (*line)[2] != ' ')
      help.subcommands.push_back(line->substr(2, line->find(' ', 2) - 2));
  }
  auto st = child.wait(until);
  EXPECT_TRUE(st && st->exited_normally()) << program << ": " << child.stderr_text();
  return help;
}

// The help of `program` and of every subcommand, nested ones too, names "netkit"; returns
// how many help texts were checked.
int expect_named_netkit(const std::string& program, const std::vector<std::string>& path = {}) {
  auto help = help_of(program, path);
  std::string expected = "Usage: netkit";
  for (const auto& word : path)
    expected += " " + word;
  expected += " [OPTIONS]";
  EXPECT_TRUE(help.usage.starts_with(expected)) << "want " << expected << "..., got " << help.usage;
  EXPECT_EQ(help.usage.find('/'), std::string::npos) << help.usage;
  int checked = 1;
  for (const auto& sub : help.subcommands) {
    auto deeper = path;
    deeper.push_back(sub);
    checked += expect_named_netkit(program, deeper);
  }
  return checked;
}

TEST(cli_help, usage_names_netkit_not_the_path_of_the_binary) {
  fd_leak_guard leaks;
  ASSERT_TRUE(fs::path(netkit_cli()).is_absolute()) << netkit_cli();
  EXPECT_EQ(help_of(netkit_cli(), {}).usage, "Usage: netkit [OPTIONS] SUBCOMMAND");
  // netkit itself, its eight subcommands and fd-pass's two.
  EXPECT_GE(expect_named_netkit(netkit_cli()), 11);
}

TEST(cli_help, usage_names_netkit_when_started_through_a_link_of_another_name) {
  fd_leak_guard leaks;
  std::string dir = (fs::temp_directory_path() / "netkit-help-XXXXXX").string();
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  struct remove_dir {
    fs::path path;
    ~remove_dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{dir};
  fs::create_symlink(netkit_cli(), cleanup.path / "nk");
  EXPECT_GE(expect_named_netkit((cleanup.path / "nk").string()), 8);
}

}  // namespace
}  // namespace netkit::test
