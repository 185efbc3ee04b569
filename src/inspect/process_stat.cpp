#include "netkit/inspect/process_stat.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace netkit::inspect {

namespace {

// The whole of a small /proc file, or nullopt. Plain read(2), not a stream: a process
// that exits while its file is read makes read fail (ESRCH), which libstdc++'s filebuf
// turns into an exception; here it is just "gone".
std::optional<std::string> read_proc_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[4096];
  for (;;) {  // bounded: /proc files here are a few hundred bytes
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

double ticks_to_seconds(unsigned long long ticks) {
  static const long hz = ::sysconf(_SC_CLK_TCK);
  return static_cast<double>(ticks) / static_cast<double>(hz > 0 ? hz : 100);
}

}  // namespace

std::optional<process_stat> read_process_stat(pid_t pid) {
  auto file = read_proc_file(fmt::format("/proc/{}/stat", pid));
  if (!file) return std::nullopt;
  const std::string& text = *file;
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

namespace {

// The thread ids of `pid` (the entries of /proc/PID/task); none once it is gone.
std::vector<std::string> tasks_of(pid_t pid) {
  std::vector<std::string> ids;
  auto path = fmt::format("/proc/{}/task", pid);
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return ids;
  while (dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') ids.emplace_back(e->d_name);
  ::closedir(dir);
  return ids;
}

}  // namespace

std::optional<double> exact_cpu_seconds(pid_t pid) {
  if (tasks_of(pid).size() != 1) return std::nullopt;
  auto file = read_proc_file(fmt::format("/proc/{}/schedstat", pid));
  if (!file) return std::nullopt;
  std::istringstream in(*file);
  unsigned long long ns = 0;
  if (!(in >> ns)) return std::nullopt;
  return static_cast<double>(ns) / 1e9;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  for (const auto& task : tasks_of(pid)) {
    auto file = read_proc_file(fmt::format("/proc/{}/task/{}/children", pid, task));
    if (!file) continue;
    std::istringstream in(*file);
    pid_t c;
    while (in >> c)
      out.push_back(c);
  }
  return out;
}

namespace {

// `pid`'s tree, `depth` levels down at most (a pid reused while we walk cannot send the
// walk round forever). A child reaped while its parent's children are being read would be
// counted nowhere (gone from the children, not yet in the parent's cutime), so a walk
// during which the parent's reaped-children time moved is taken again (bounded).
std::optional<double> tree_cpu(pid_t pid, int depth, bool root) {
  std::optional<double> total;
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto first = read_process_stat(pid);
    if (!first) return std::nullopt;  // ended: its time is in its own parent's cutime now
    double children = 0;
    if (depth > 0)
      for (pid_t c : children_of(pid))
        children += tree_cpu(c, depth - 1, false).value_or(0);
    auto second = read_process_stat(pid);
    if (!second) return std::nullopt;
    // The root by stat alone: a process that gains or loses threads between two readings
    // (a thread model) must be read the same way both times, or the difference could even
    // come out negative. Its descendants are the many small processes (fork, prefork).
    const double own = root ? second->cpu_s : exact_cpu_seconds(pid).value_or(second->cpu_s);
    total = own + second->reaped_children_cpu_s + children;
    if (second->reaped_children_cpu_s == first->reaped_children_cpu_s) break;
  }
  return total;
}

}  // namespace

std::optional<double> process_tree_cpu_seconds(pid_t root) {
  return tree_cpu(root, 16, true);
}

std::optional<switch_count> voluntary_switches(pid_t pid) {
  constexpr std::string_view name_key = "Name:\t";
  constexpr std::string_view count_key = "\nvoluntary_ctxt_switches:";
  std::optional<switch_count> out;
  for (const auto& task : tasks_of(pid)) {
    auto file = read_proc_file(fmt::format("/proc/{}/task/{}/status", pid, task));
    if (!file) continue;  // ended while we looked: as if it had ended before
    if (file->starts_with(name_key) && file->compare(name_key.size(), 4, "iou-") == 0)
      continue;  // io_uring's workers: created and ended by the kernel as it needs them
    auto at = file->find(count_key);
    if (at == std::string::npos) continue;
    if (!out) out.emplace();
    out->voluntary += std::strtoull(file->c_str() + at + count_key.size(), nullptr, 10);
    out->threads.push_back(static_cast<pid_t>(std::strtol(task.c_str(), nullptr, 10)));
  }
  if (out) std::sort(out->threads.begin(), out->threads.end());
  return out;
}

}  // namespace netkit::inspect
