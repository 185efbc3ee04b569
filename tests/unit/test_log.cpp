// Log lines: "[YYYY-MM-DD HH:MM:SS.UUUUUU] TAG: TEXT\n", the wall clock in local time (TZ),
// one line per event, nothing below the current level.
#include "netkit/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <regex>
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

const std::regex line_format(
    R"(\[(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.(\d{6})\] (error|warn|info|debug): (.*)\n)");

// The seconds since the epoch a log line's timestamp names, read as UTC plus `utc_offset`.
std::time_t stamp_of(const std::string& line, std::chrono::seconds utc_offset) {
  std::smatch m;
  if (!std::regex_match(line, m, line_format)) throw std::runtime_error("not a log line: " + line);
  std::tm fields{};
  if (!::strptime(m[1].str().c_str(), "%Y-%m-%d %H:%M:%S", &fields))
    throw std::runtime_error("bad timestamp: " + line);
  return ::timegm(&fields) - utc_offset.count();
}

std::time_t now_seconds() {
  return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
}

TEST(log, a_line_is_a_microsecond_timestamp_the_level_and_the_text) {
  auto out = capture_stderr([] { log(log_level::warning, "closing {}: {}", "tcp://x:1", 42); });
  std::smatch m;
  ASSERT_TRUE(std::regex_match(out, m, line_format)) << out;
  EXPECT_EQ(m[3], "warn");
  EXPECT_EQ(m[4], "closing tcp://x:1: 42");
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
  const std::regex tag(R"(\] (\w+): )");
  for (std::sregex_iterator it(out.begin(), out.end(), tag), end; it != end; ++it)
    tags.push_back((*it)[1]);
  EXPECT_EQ(tags, (std::vector<std::string>{"error", "warn", "info"})) << out;
  EXPECT_EQ(out.find("not shown"), std::string::npos) << out;
  EXPECT_NE(out.find("info: multi\nline text stays one event\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace netkit
