#include "support/process_tree.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace netkit::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<pid_t> children_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  pid_t c;
  while (in >> c)
    out.push_back(c);
  return out;
}

char process_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return '?';
  return text[close + 2];
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
  std::error_code ec;
  std::size_t n = 0;
  for (fs::directory_iterator it("/proc/" + std::to_string(pid) + "/task", ec), end;
       !ec && it != end; it.increment(ec))
    ++n;
  return n;
}

std::size_t socket_count(pid_t pid) {
  std::error_code ec;
  std::size_t n = 0;
  for (fs::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code link_ec;
    auto target = fs::read_symlink(it->path(), link_ec);
    if (!link_ec && target.string().rfind("socket:", 0) == 0) ++n;
  }
  return n;
}

}  // namespace netkit::test
