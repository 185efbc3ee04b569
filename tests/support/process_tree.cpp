#include "support/process_tree.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "netkit/inspect/process_stat.hpp"
#include "support/server_process.hpp"

namespace netkit::test {

using namespace std::chrono_literals;

namespace {

// Names in /proc/PID/SUB other than "." and "..", or none if it cannot be read.
std::vector<std::string> proc_entries(pid_t pid, const char* sub) {
  std::vector<std::string> names;
  auto path = fmt::format("/proc/{}/{}", pid, sub);
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return names;
  while (dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  ::closedir(dir);
  return names;
}

}  // namespace

std::vector<pid_t> children_of(pid_t pid) {
  return inspect::children_of(pid);
}

char process_state(pid_t pid) {
  auto st = inspect::read_process_stat(pid);
  return st ? st->state : '?';
}

int zombie_children(pid_t pid) {
  int n = 0;
  for (pid_t c : children_of(pid))
    n += process_state(c) == 'Z';
  return n;
}

bool wait_for_workers(pid_t pid, std::size_t n, const std::vector<pid_t>& gone, deadline until) {
  for (;;) {
    auto now = children_of(pid);
    bool ok = now.size() == n && zombie_children(pid) == 0;
    for (pid_t g : gone)
      ok = ok && std::find(now.begin(), now.end(), g) == now.end();
    if (ok) return true;
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(10ms);
  }
}

std::size_t thread_count(pid_t pid) {
  return proc_entries(pid, "task").size();
}

std::vector<pid_t> thread_ids(pid_t pid) {
  std::vector<pid_t> ids;
  for (const auto& task : proc_entries(pid, "task"))
    ids.push_back(std::stoi(task));
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<pid_t> threads_started_since(pid_t pid, const std::vector<pid_t>& before) {
  std::vector<pid_t> started;
  for (pid_t id : thread_ids(pid))
    if (!std::binary_search(before.begin(), before.end(), id)) started.push_back(id);
  return started;
}

std::size_t thread_count(pid_t pid, std::string_view name) {
  std::size_t n = 0;
  for (const auto& task : proc_entries(pid, "task")) {
    std::ifstream in(fmt::format("/proc/{}/task/{}/comm", pid, task));
    std::string comm;
    n += std::getline(in, comm) && comm == name;
  }
  return n;
}

std::size_t socket_count(pid_t pid) {
  std::size_t n = 0;
  for (const auto& fd : proc_entries(pid, "fd")) {
    char target[256];
    auto link = fmt::format("/proc/{}/fd/{}", pid, fd);
    ssize_t len = ::readlink(link.c_str(), target, sizeof target - 1);
    if (len > 0 && std::string_view(target, static_cast<std::size_t>(len)).starts_with("socket:"))
      ++n;
  }
  return n;
}

long max_tree_rss_kib(pid_t pid) {
  auto rss = [](pid_t p) {
    try {
      return process_rss_kib(p);
    } catch (const std::exception&) {
      return 0L;  // ended meanwhile
    }
  };
  long most = rss(pid);
  for (pid_t c : children_of(pid))
    most = std::max(most, rss(c));
  return most;
}

}  // namespace netkit::test
