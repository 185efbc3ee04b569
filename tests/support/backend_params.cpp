#include "support/backend_params.hpp"

#include <cctype>

#include "netkit/event/backend.hpp"

namespace netkit::test {

namespace {
const std::vector<backend_info>& cached() {
  static const std::vector<backend_info> all = list_backends();
  return all;
}
}  // namespace

std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const auto& b : cached())
    names.push_back(b.name);
  return names;
}

std::optional<std::string> backend_problem(const std::string& name) {
  for (const auto& b : cached())
    if (b.name == name) return b.available ? std::nullopt : std::optional(b.problem);
  return "not listed by netkit::list_backends()";
}

bool is_completion_backend(const std::string& name) {
  if (backend_problem(name)) return false;
  return make_backend(name)->completion_based();
}

std::vector<std::string> codec_names() {
  return {"raw", "line", "crlf", "fixed:24", "length", "length16"};
}

std::string sanitize_name(std::string text) {
  for (auto& ch : text)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return text;
}

}  // namespace netkit::test
