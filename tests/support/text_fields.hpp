// Numbers out of a program's output, by the text just before them: `netkit bench --json`
// figures by key, "bytes=N" of netkit-pingpong, "ReceivedMessages=N" of sockperf. (No
// std::regex: GCC 12 warns inside it under the sanitizer presets' -Werror.)
#pragma once

#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace netkit::test {

// The number right after the first `prefix` in `text` (spaces skipped), if any.
inline std::optional<double> number_after(const std::string& text, std::string_view prefix) {
  const auto at = text.find(prefix);
  if (at == std::string::npos) return std::nullopt;
  const char* start = text.c_str() + at + prefix.size();
  char* end = nullptr;
  const double value = std::strtod(start, &end);
  if (end == start) return std::nullopt;
  return value;
}

// A figure of `netkit bench --json` by its key (keys are unique in its output); throws
// std::runtime_error when it is missing.
inline double json_number(const std::string& json, const std::string& key) {
  if (auto v = number_after(json, "\"" + key + "\":")) return *v;
  throw std::runtime_error("no \"" + key + "\" in " + json);
}

inline bool json_true(const std::string& json, const std::string& key) {
  return json.find("\"" + key + "\":true") != std::string::npos;
}

}  // namespace netkit::test
