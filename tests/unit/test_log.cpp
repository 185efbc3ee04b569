// Log lines: "[YYYY-MM-DD HH:MM:SS.UUUUUU] TAG: TEXT\n", the wall clock in local time (TZ),
// one line per event, nothing below the current level.
#include "netkit/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "netkit/fd.hpp"

namespace netkit {
namespace {

// Everything written to stderr (fd 2) while `fn` runs.
template <typename Fn>
std::string capture_stderr(Fn fn) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  unique_fd read_end(fds[0]);
  unique_fd saved(::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0));
  ::dup2(fds[1], STDERR_FILENO);
  ::close(fds[1]);
  fn();
  ::dup2(saved.get(), STDERR_FILENO);  // closes the last write end: the reads below end
  std::string out;
  char chunk[4096];
  // Bounded by what fn wrote: the pipe has no writer left.
  for (ssize_t n; (n = ::read(read_end.get(), chunk, sizeof chunk)) > 0;)
    out.append(chunk, static_cast<std::size_t>(n));
  return out;
}

// Sets TZ for one scope (and tzset), restoring it after.
class scoped_tz {
 public:
  explicit scoped_tz(const char* tz) {
    if (const char* old = std::getenv("TZ")) old_ = old;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~scoped_tz() {
    if (old_)
      ::setenv("TZ", old_->c_str(), 1);
    else
      ::unsetenv("TZ");
    ::tzset();
  }
  scoped_tz(const scoped_tz&) = delete;
  scoped_tz& operator=(const scoped_tz&) = delete;

 private:
  std::optional<std::string> old_;
};

// "[YYYY-MM-DD HH:MM:SS.uuuuuu] LEVEL: TEXT\n", taken apart (no std::regex: libstdc++ 12's
// trips -Wmaybe-uninitialized under the sanitizers).
struct log_line {
  std::string stamp;  // "YYYY-MM-DD HH:MM:SS"
  std::string level;
  std::string text;
};

std::optional<log_line> parse_line(const std::string& line) {
  const std::string digits_at = "0000-00-00 00:00:00.000000";
  if (line.size() < digits_at.size() + 5 || line.front() != '[' || line.back() != '\n')
    return std::nullopt;
  for (std::size_t i = 0; i < digits_at.size(); ++i) {
    char c = line[i + 1];
    if (digits_at[i] == '0' ? !std::isdigit(static_cast<unsigned char>(c)) : c != digits_at[i])
      return std::nullopt;
  }
  std::size_t close = digits_at.size() + 1;
  if (line.compare(close, 2, "] ") != 0) return std::nullopt;
  auto colon = line.find(": ", close + 2);
  if (colon == std::string::npos) return std::nullopt;
  log_line out{line.substr(1, 19), line.substr(close + 2, colon - close - 2),
               line.substr(colon + 2, line.size() - colon - 3)};
  if (out.level != "error" && out.level != "warn" && out.level != "info" && out.level != "debug")
    return std::nullopt;
  return out;
}

// The seconds since the epoch a log line's timestamp names, read as UTC plus `utc_offset`.
std::time_t stamp_of(const std::string& line, std::chrono::seconds utc_offset) {
  auto parsed = parse_line(line);
  if (!parsed) throw std::runtime_error("not a log line: " + line);
  std::tm fields{};
  if (!::strptime(parsed->stamp.c_str(), "%Y-%m-%d %H:%M:%S", &fields))
    throw std::runtime_error("bad timestamp: " + line);
  return ::timegm(&fields) - utc_offset.count();
}

std::time_t now_seconds() {
  return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
}

TEST(log, a_line_is_a_microsecond_timestamp_the_level_and_the_text) {
  auto out = capture_stderr([] { log(log_level::warning, "closing {}: {}", "tcp://x:1", 42); });
  auto parsed = parse_line(out);
  ASSERT_TRUE(parsed) << out;
  EXPECT_EQ(parsed->level, "warn");
  EXPECT_EQ(parsed->text, "closing tcp://x:1: 42");
}

TEST(log, the_timestamp_is_the_wall_clock_in_local_time) {
  using std::chrono::hours;
  using std::chrono::minutes;
  struct zone_case {
    const char* tz;
    std::chrono::seconds utc_offset;
  };
  for (auto [tz, offset] :
       {zone_case{"UTC0", hours(0)}, zone_case{"<+0530>-5:30", hours(5) + minutes(30)},
        zone_case{"<-07>7", -hours(7)}}) {
    scoped_tz zone(tz);
    auto before = now_seconds();
    auto out = capture_stderr([] { log(log_level::info, "now"); });
    auto after = now_seconds();
    auto stamp = stamp_of(out, offset);
    EXPECT_GE(stamp, before) << tz << ": " << out;
    EXPECT_LE(stamp, after) << tz << ": " << out;
  }
}

TEST(log, each_event_is_one_line_with_its_level_and_nothing_below_the_level_is_written) {
  auto previous = current_log_level();
  set_log_level(log_level::info);
  auto out = capture_stderr([] {
    log(log_level::error, "e");
    log(log_level::warning, "w");
    log(log_level::info, "multi\nline text stays one event");
    log(log_level::debug, "not shown at info");
  });
  set_log_level(previous);
  std::vector<std::string> tags;
  for (auto at = out.find("] "); at != std::string::npos; at = out.find("] ", at + 2))
    tags.push_back(out.substr(at + 2, out.find(':', at) - at - 2));
  EXPECT_EQ(tags, (std::vector<std::string>{"error", "warn", "info"})) << out;
  EXPECT_EQ(out.find("not shown"), std::string::npos) << out;
  EXPECT_NE(out.find("info: multi\nline text stays one event\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace netkit
