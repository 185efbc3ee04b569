// The chat protocol, both directions, as text: what a client may send (a message or a
// /command) and the lines the server sends back. Plain lines, so `nc` and `telnet` are
// clients. Pure functions: the room (room.hpp) and the terminal client (terminal.hpp)
// share them.
//
// Client → server, one line each:
//   TEXT               a message to everyone (after /nick)
//   /nick NAME         choose or change the nick      /who          list who is here
//   /me ACTION         "* NAME ACTION" to everyone    /msg NICK TEXT  to NICK only
//   /quit [REASON]     leave                          /help         list the commands
// Server → client, one line each; the first characters tell the kind:
//   "<NAME> TEXT"      a message                      "* NAME ACTION"  a /me
//   "*NAME* TEXT"      a private message to you       "-> *NAME* TEXT" yours, as sent
//   "*** TEXT"         a notice (motd, joins, leaves, who, server stopping)
//   "! TEXT"           an error in reply to your own line (nothing else happened)
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace netkit::chat {

// Nicks: 1..16 characters, a letter first, then letters, digits, '_' or '-'; compared
// as written (case-sensitive).
inline constexpr std::size_t max_nick = 16;
// Empty if `nick` is a valid nick, else the reason ("nick 'x y' ...: use ...").
std::string nick_problem(std::string_view nick);

// `text` cut to `max` bytes with control characters shown as '?': safe to echo back.
std::string printable(std::string_view text, std::size_t max = 32);

struct command {
  enum class kind { say, nick, who, me, msg, quit, help, empty, unknown } what = kind::empty;
  std::string_view word;  // /nick NAME, /msg NICK, or the unknown command's name
  std::string_view text;  // the message, /me action, /msg text, /quit reason
};
// Parses one line (terminator removed). A line starting with "//" is a message starting
// with "/". Leading/trailing blanks of arguments are trimmed.
command parse_command(std::string_view line);

// The server's lines (without '\n').
std::string said(std::string_view nick, std::string_view text);
std::string action(std::string_view nick, std::string_view text);
std::string private_to_recipient(std::string_view from, std::string_view text);
std::string private_to_sender(std::string_view to, std::string_view text);
std::string notice(std::string_view text);
std::string error_reply(std::string_view text);
std::string help_text();

// What a received line is, for colouring it on a terminal.
enum class line_kind { message, action, private_message, notice, error, other };
line_kind classify(std::string_view line);

}  // namespace netkit::chat
