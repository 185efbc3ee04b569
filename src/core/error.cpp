#include "netkit/error.hpp"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace netkit {

std::string errno_name(int err) {
  if (const char* name = strerrorname_np(err)) return name;
  return fmt::format("E{}", err);
}

std::string errno_text(int err) {
  return fmt::format("{} ({})", strerrordesc_np(err) ? strerrordesc_np(err) : "Unknown error",
                     errno_name(err));
}

namespace {
std::string describe(int err, std::string_view operation, std::string_view subject) {
  if (subject.empty()) return fmt::format("{}: {}", operation, errno_text(err));
  return fmt::format("{} {}: {}", operation, subject, errno_text(err));
}
}  // namespace

sys_error::sys_error(int err, std::string_view operation, std::string_view subject)
    : std::system_error(err, std::generic_category()),
      message_(describe(err, operation, subject)),
      operation_(operation),
      subject_(subject) {}

void throw_sys_error(std::string_view operation, std::string_view subject) {
  throw sys_error(errno, operation, subject);
}

void throw_sys_error(int err, std::string_view operation, std::string_view subject) {
  throw sys_error(err, operation, subject);
}

}  // namespace netkit
