#include "netkit/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>

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
    using namespace std::chrono;
    auto now = system_clock::now();
    auto whole = floor<seconds>(now);
    auto micros = duration_cast<microseconds>(now - whole).count();
    std::time_t since_epoch = system_clock::to_time_t(whole);
    std::tm local{};
    ::localtime_r(&since_epoch, &local);
    auto line = fmt::format("[{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}] {}: {}\n",
                            local.tm_year + 1900, local.tm_mon + 1, local.tm_mday, local.tm_hour,
                            local.tm_min, local.tm_sec, micros, tag(level), text);
    // One write(2) per line so lines from several processes/threads never interleave.
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
  } catch (...) {
  }
}

}  // namespace netkit
