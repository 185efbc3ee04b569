// fd-limit: open sockets until EMFILE, at a RLIMIT_NOFILE lowered in a child process only.
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <tuple>
#include <vector>

#include "lab_support.hpp"
#include "netkit/error.hpp"
#include "netkit/fd.hpp"
#include "netkit/process.hpp"

namespace netkit::labs {

namespace {

constexpr rlim_t lowered = 64;

// Open descriptors numbered below `limit` and at or above it (RLIMIT_NOFILE bounds the
// numbers: a new descriptor must be below the limit, whatever is open above it).
std::pair<int, int> open_below_and_above(int limit) {
  std::pair<int, int> counts{0, 0};
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) throw_sys_error("opendir", "/proc/self/fd");
  // Bounded by the directory's entries.
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int fd = std::atoi(entry->d_name);
    if (fd == ::dirfd(dir)) continue;
    (fd < limit ? counts.first : counts.second) += 1;
  }
  ::closedir(dir);
  return counts;
}

struct child_findings {
  int before = -1;   // descriptors already open below the limit
  int above = -1;    // and above it
  int opened = -1;   // sockets opened until the failure
  int highest = -1;  // highest descriptor number handed out
  int err = 0;       // errno of the failing socket()
};

}  // namespace

void run_fd_limit(lab_context& ctx) {
  auto child = run_child([](int out) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 2;
    rl.rlim_cur = lowered;  // soft limit only, and in this child only
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return 3;
    child_findings f;
    std::tie(f.before, f.above) = open_below_and_above(static_cast<int>(lowered));
    std::vector<unique_fd> sockets;
    // Bounded: the limit stops it long before the loop's own bound.
    for (rlim_t i = 0; i < lowered + 16; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        f.err = errno;
        break;
      }
      f.highest = fd;
      sockets.emplace_back(fd);
    }
    f.opened = static_cast<int>(sockets.size());
    write_all(out, fmt::format("{} {} {} {} {}\n", f.before, f.above, f.opened, f.highest, f.err));
    return 0;
  });
  child_findings f;
  if (std::sscanf(child.output.c_str(), "%d %d %d %d %d", &f.before, &f.above, &f.opened,
                  &f.highest, &f.err) != 5)
    throw_sys_error(EPROTO, "fd-limit child report", child.output + " " + child.describe());
  auto file_max = read_sys_value("/proc/sys/fs/file-max");
  auto file_nr = read_sys_value("/proc/sys/fs/file-nr");
  std::replace(file_nr.begin(), file_nr.end(), '\t', ' ');
  ctx.note("child lowered its soft RLIMIT_NOFILE to {} (this process keeps {})", lowered,
           current_nofile_limit().soft);
  ctx.note(
      "child had {} descriptors open below {} ({} above), opened {} sockets (highest fd "
      "{}), then socket() failed with {}",
      f.before, lowered, f.above, f.opened, f.highest, f.err ? errno_name(f.err) : "nothing");
  ctx.note("/proc/sys/fs/file-max {} (system-wide); file-nr {} (allocated, free, max)", file_max,
           file_nr);
  ctx.note("the child exited: its sockets closed with it");

  ctx.expect("past the per-process limit", "socket() fails with EMFILE",
             f.err ? errno_name(f.err) : "no failure", f.err == EMFILE);
  ctx.expect("the limit bounds descriptor numbers (any kind of file), not sockets",
             fmt::format("open below it + opened = {}, highest fd {}", lowered, lowered - 1),
             fmt::format("{} + {} = {}, highest fd {}", f.before, f.opened, f.before + f.opened,
                         f.highest),
             static_cast<rlim_t>(f.before + f.opened) == lowered &&
                 static_cast<rlim_t>(f.highest) == lowered - 1);
  unsigned long long max = 0;
  bool parsed = std::sscanf(file_max.c_str(), "%llu", &max) == 1;
  ctx.expect("EMFILE is the process's limit, ENFILE the system's (file-max)",
             fmt::format("file-max well above {}", lowered),
             parsed ? fmt::format("file-max {}", max) : "file-max unreadable",
             parsed && max > lowered);
}

}  // namespace netkit::labs
