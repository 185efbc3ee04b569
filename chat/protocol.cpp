#include "protocol.hpp"

#include <fmt/format.h>

namespace netkit::chat {

namespace {

bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_nick_char(char c) {
  return is_letter(c) || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Splits "WORD REST" at the first blank.
std::pair<std::string_view, std::string_view> first_word(std::string_view s) {
  s = trim(s);
  auto blank = s.find_first_of(" \t");
  if (blank == std::string_view::npos) return {s, {}};
  return {s.substr(0, blank), trim(s.substr(blank))};
}

}  // namespace

std::string printable(std::string_view text, std::size_t max) {
  std::string out(text.substr(0, max));
  for (auto& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  if (text.size() > max) out += "...";
  return out;
}

std::string nick_problem(std::string_view nick) {
  if (nick.empty()) return "a nick is needed: /nick NAME";
  std::string shown = printable(nick, max_nick + 8);
  if (nick.size() > max_nick)
    return fmt::format("nick '{}' is too long: at most {} characters", shown, max_nick);
  if (!is_letter(nick.front())) return fmt::format("nick '{}' must start with a letter", shown);
  for (char c : nick)
    if (!is_nick_char(c))
      return fmt::format("nick '{}' may hold only letters, digits, '_' and '-'", shown);
  return {};
}

command parse_command(std::string_view line) {
  if (trim(line).empty()) return {};
  if (!line.starts_with('/')) return {command::kind::say, {}, line};
  if (line.starts_with("//")) return {command::kind::say, {}, line.substr(1)};
  auto [name, rest] = first_word(line.substr(1));
  if (name == "nick") return {command::kind::nick, first_word(rest).first, first_word(rest).second};
  if (name == "who") return {command::kind::who, {}, rest};
  if (name == "me") return {command::kind::me, {}, rest};
  if (name == "msg") {
    auto [to, text] = first_word(rest);
    return {command::kind::msg, to, text};
  }
  if (name == "quit") return {command::kind::quit, {}, rest};
  if (name == "help") return {command::kind::help, {}, rest};
  return {command::kind::unknown, name, rest};
}

std::string said(std::string_view nick, std::string_view text) {
  return fmt::format("<{}> {}", nick, text);
}
std::string action(std::string_view nick, std::string_view text) {
  return fmt::format("* {} {}", nick, text);
}
std::string private_to_recipient(std::string_view from, std::string_view text) {
  return fmt::format("*{}* {}", from, text);
}
std::string private_to_sender(std::string_view to, std::string_view text) {
  return fmt::format("-> *{}* {}", to, text);
}
std::string notice(std::string_view text) {
  return fmt::format("*** {}", text);
}
std::string error_reply(std::string_view text) {
  return fmt::format("! {}", text);
}

std::string help_text() {
  return notice(
      "commands: /nick NAME, /who, /me ACTION, /msg NICK TEXT, /quit [REASON], /help; "
      "any other line is a message to everyone (start it with // to begin with /)");
}

line_kind classify(std::string_view line) {
  if (line.starts_with("*** ")) return line_kind::notice;
  if (line.starts_with("! ")) return line_kind::error;
  if (line.starts_with("* ")) return line_kind::action;
  if (line.starts_with("<")) return line_kind::message;
  if (line.starts_with("*") || line.starts_with("-> *")) return line_kind::private_message;
  return line_kind::other;
}

}  // namespace netkit::chat
