// Minimal leveled logging to stderr, one line per event, each written with one write(2)
// so lines of several threads or processes never interleave:
//   [2026-12-01 07:53:04.123456] info: TEXT
// The timestamp is the wall clock in local time (TZ), to the microsecond.
// Servers log per-connection lines only at debug (--verbose), so floods of short
// connections never flood the log.
#pragma once

#include <fmt/format.h>

namespace netkit {

enum class log_level { error = 0, warning = 1, info = 2, debug = 3 };

void set_log_level(log_level level) noexcept;
log_level current_log_level() noexcept;
void write_log_line(log_level level, std::string_view text) noexcept;

// Whether a line at `level` would be written: for a caller whose arguments cost something
// to build (a peer's URI string) on a path taken per connection.
inline bool log_enabled(log_level level) noexcept {
  return level <= current_log_level();
}

template <typename... Args>
void log(log_level level, fmt::format_string<Args...> format, Args&&... args) {
  if (level > current_log_level()) return;
  write_log_line(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace netkit
