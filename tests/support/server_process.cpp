#include "support/server_process.hpp"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit::test {

namespace {

std::string read_proc_file(pid_t pid, const char* name) {
  std::ifstream in(fmt::format("/proc/{}/{}", pid, name));
  if (!in) throw sys_error(ESRCH, "read", fmt::format("/proc/{}/{}", pid, name));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

child_options make_options(const server_config& c) {
  child_options o;
  o.argv = c.wrapper;
  for (const auto& a : {netkit_cli(), c.command, std::string("--listen"), c.listen,
                        std::string("--model"), c.model})
    o.argv.push_back(a);
  // Datagram models echo a datagram as it is (a datagram is its own frame): of the codecs
  // they take only sockperf, which answers as sockperf's server does.
  const bool datagram = c.listen.starts_with("udp://") || c.listen.starts_with("unix-dgram://");
  if (c.command == "echo-server" && (!datagram || c.codec == "sockperf")) {
    o.argv.push_back("--codec");
    o.argv.push_back(c.codec);
  }
  o.argv.insert(o.argv.end(), c.extra_args.begin(), c.extra_args.end());
  o.nofile_limit = c.nofile_limit;
  o.env = c.env;
  return o;
}

// The first child of `pid` (the wrapped server), polled until it appears.
pid_t first_child(pid_t pid, deadline until) {
  for (;;) {
    std::ifstream in(fmt::format("/proc/{}/task/{}/children", pid, pid));
    pid_t child = -1;
    if (in >> child && child > 0) return child;
    if (clock::now() >= until) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

namespace {
std::string& cli_path() {
  static std::string path;
  return path;
}
}  // namespace

void set_netkit_cli(std::string path) {
  cli_path() = std::move(path);
}

std::string netkit_cli() {
  if (const char* env = std::getenv("NETKIT_CLI"); env && *env) return env;
  if (cli_path().empty()) throw std::logic_error("netkit_cli(): NETKIT_CLI was not registered");
  return cli_path();
}

std::chrono::nanoseconds process_cpu_time(pid_t pid) {
  auto stat = read_proc_file(pid, "stat");
  // Fields after the command name, which is in parentheses and may contain spaces.
  auto close = stat.rfind(')');
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  static const long ticks = ::sysconf(_SC_CLK_TCK);
  return std::chrono::nanoseconds((utime + stime) * 1'000'000'000ull / ticks);
}

long process_rss_kib(pid_t pid) {
  std::istringstream in(read_proc_file(pid, "status"));
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  return 0;
}

int process_fd_count(pid_t pid) {
  auto path = fmt::format("/proc/{}/fd", pid);
  DIR* dir = ::opendir(path.c_str());
  if (!dir) throw_sys_error("opendir", path);
  int count = 0;
  while (dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') ++count;
  ::closedir(dir);
  return count;
}

proc_sample sample_process(pid_t pid) {
  return {process_cpu_time(pid), process_rss_kib(pid), process_fd_count(pid)};
}

std::string sanitizer_options(const char* variable, const std::string& extra) {
  const char* inherited = std::getenv(variable);
  return fmt::format("{}={}{}{}", variable, inherited ? inherited : "",
                     inherited && *inherited ? ":" : "", extra);
}

child_options echo_server_command(const std::vector<std::string>& args) {
  child_options o;
  o.argv = {netkit_cli(), "echo-server"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  return o;
}

server_process::server_process(server_config config, std::chrono::milliseconds startup)
    : config_(std::move(config)), child_(make_options(config_)) {
  auto until = clock::now() + stretch(startup);
  auto line = child_.read_line(until);
  if (!line || !line->starts_with("listening on ")) {
    auto status = child_.wait(clock::now() + std::chrono::milliseconds(200));
    throw std::runtime_error(fmt::format(
        "{} (model={} codec={}) did not start: first line {}; {}; stderr:\n{}", config_.command,
        config_.model, config_.codec, line ? fmt::format("'{}'", *line) : "missing",
        status ? status->describe() : "still running", child_.stderr_text()));
  }
  banner_ = *line;
  auto rest = banner_.substr(std::string_view("listening on ").size());
  uri_ = rest.substr(0, rest.find(' '));
  local_ = endpoint::parse(uri_);
  server_pid_ = config_.wrapper.empty() ? child_.pid() : first_child(child_.pid(), until);
  if (server_pid_ <= 0) throw std::runtime_error("wrapped echo-server has no child process");
}

bool server_process::alive() {
  if (!child_.running()) return false;
  return ::kill(server_pid_, 0) == 0;
}

std::optional<exit_status> server_process::terminate(std::chrono::milliseconds within) {
  ::kill(server_pid_, SIGTERM);
  auto status = child_.wait(clock::now() + stretch(within));
  if (!status) child_.kill_and_reap();
  return status;
}

}  // namespace netkit::test
