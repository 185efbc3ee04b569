#include "netkit/inspect/process_stat.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <fmt/format.h>

namespace netkit::inspect {

namespace {

double ticks_to_seconds(unsigned long long ticks) {
  static const long hz = ::sysconf(_SC_CLK_TCK);
  return static_cast<double>(ticks) / static_cast<double>(hz > 0 ? hz : 100);
}

}  // namespace

std::optional<process_stat> read_process_stat(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Field 2 (comm) is parenthesised and may hold spaces or ')': split after the last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));
  process_stat st;
  fields >> st.state >> st.parent;
  std::string skip;
  for (int field = 5; field <= 13; ++field)  // pgrp .. cmajflt
    fields >> skip;
  unsigned long long utime = 0, stime = 0;
  long long cutime = 0, cstime = 0;
  fields >> utime >> stime >> cutime >> cstime;
  if (!fields) return std::nullopt;
  st.cpu_s = ticks_to_seconds(utime + stime);
  st.reaped_children_cpu_s =
      ticks_to_seconds(static_cast<unsigned long long>(cutime > 0 ? cutime : 0) +
                       static_cast<unsigned long long>(cstime > 0 ? cstime : 0));
  return st;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  auto path = fmt::format("/proc/{}/task", pid);
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return out;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(fmt::format("/proc/{}/task/{}/children", pid, e->d_name));
    pid_t c;
    while (in >> c)
      out.push_back(c);
  }
  ::closedir(dir);
  return out;
}

std::optional<double> process_tree_cpu_seconds(pid_t root) {
  auto st = read_process_stat(root);
  if (!st) return std::nullopt;
  double total = st->cpu_s + st->reaped_children_cpu_s;
  // Bounded by depth: a pid reused while we walk cannot send the walk round forever.
  std::vector<std::pair<pid_t, int>> todo;
  for (pid_t c : children_of(root))
    todo.emplace_back(c, 1);
  while (!todo.empty()) {
    auto [pid, depth] = todo.back();
    todo.pop_back();
    if (auto child = read_process_stat(pid)) total += child->cpu_s + child->reaped_children_cpu_s;
    if (depth < 16)
      for (pid_t c : children_of(pid))
        todo.emplace_back(c, depth + 1);
  }
  return total;
}

}  // namespace netkit::inspect
