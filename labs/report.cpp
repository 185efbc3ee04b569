// The two ways a report is printed: for a person, and one JSON object for scripts.
#include <fmt/format.h>

#include "lab.hpp"

namespace netkit::labs {

namespace {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

std::string json_strings(const std::vector<std::string>& lines) {
  std::string out = "[";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i) out += ',';
    out += json_string(lines[i]);
  }
  out += ']';
  return out;
}

std::string_view label(outcome o) {
  switch (o) {
    case outcome::pass:
      return "PASS        ";
    case outcome::fail:
      return "FAIL        ";
    case outcome::not_provoked:
      return "NOT PROVOKED";
  }
  return "?";
}

}  // namespace

std::string format_text(const lab_report& r) {
  std::string out = fmt::format("lab {}: {}\nlook for:\n", r.name, r.summary);
  for (const auto& line : r.look_for)
    out += fmt::format("  - {}\n", line);
  out += "what the kernel did:\n";
  for (const auto& line : r.observations)
    out += fmt::format("  {}\n", line);
  out += "checks:\n";
  std::size_t passed = 0;
  for (const auto& c : r.checks) {
    passed += c.result == outcome::pass;
    out += fmt::format("  {}  {}\n                expected: {}\n                observed: {}\n",
                       label(c.result), c.name, c.expected, c.observed);
  }
  out += fmt::format("result: {} ({} of {} checks passed)\n", r.passed() ? "PASS" : "FAIL", passed,
                     r.checks.size());
  return out;
}

std::string format_json(const lab_report& r) {
  std::string checks = "[";
  for (std::size_t i = 0; i < r.checks.size(); ++i) {
    const auto& c = r.checks[i];
    checks += fmt::format("{}{{\"check\":{},\"expected\":{},\"observed\":{},\"result\":{}}}",
                          i ? "," : "", json_string(c.name), json_string(c.expected),
                          json_string(c.observed), json_string(outcome_name(c.result)));
  }
  checks += "]";
  return fmt::format(
      "{{\"lab\":{},\"summary\":{},\"expected\":{},\"observed\":{},\"checks\":{},\"pass\":{}}}",
      json_string(r.name), json_string(r.summary), json_strings(r.look_for),
      json_strings(r.observations), checks, r.passed() ? "true" : "false");
}

std::string format_json(const lab& l) {
  return fmt::format("{{\"lab\":{},\"summary\":{}}}", json_string(l.name), json_string(l.summary));
}

}  // namespace netkit::labs
