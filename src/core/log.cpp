#include "netkit/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>

namespace netkit {

namespace {
std::atomic<log_level> g_level{log_level::info};

std::string_view tag(log_level level) {
  switch (level) {
    case log_level::error:
      return "error";
    case log_level::warning:
      return "warn";
    case log_level::info:
      return "info";
    case log_level::debug:
      return "debug";
  }
  return "?";
}
}  // namespace

void set_log_level(log_level level) noexcept {
  g_level.store(level);
}
log_level current_log_level() noexcept {
  return g_level.load();
}

void write_log_line(log_level level, std::string_view text) noexcept {
  try {
    auto now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch());
    auto line = fmt::format("[{:.6f}] {}: {}\n", now.count(), tag(level), text);
    // One write(2) per line so lines from several processes/threads never interleave.
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
  } catch (...) {
  }
}

}  // namespace netkit
