#include "support/fd_leak_guard.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "netkit/process.hpp"

namespace netkit::test {

int live_child_count() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return -1;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/children");
    long pid;
    while (in >> pid)
      ++count;
  }
  ::closedir(dir);
  return count;
}

fd_leak_guard::fd_leak_guard() : fds_(open_fd_count()), children_(live_child_count()) {}

fd_leak_guard::~fd_leak_guard() {
  // A descriptor closed by a peer thread just before the test body returned may take
  // a moment to disappear from /proc (deferred fput): allow a short settle, bounded.
  int now = open_fd_count();
  for (int i = 0; i < 50 && now != fds_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    now = open_fd_count();
  }
  EXPECT_EQ(now, fds_) << "descriptors leaked by this test";
  EXPECT_EQ(live_child_count(), children_) << "child processes left running by this test";
}

}  // namespace netkit::test
