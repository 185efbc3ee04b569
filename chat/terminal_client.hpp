// The terminal chat client (`netkit chat`): a line editor (libedit) on the keyboard, so an
// incoming message never clobbers the line being typed (the line is cleared, the message
// printed, the prompt and the line redrawn), timestamps and colours when stdout is a
// terminal, plain lines otherwise (so it scripts well), and reconnection with back-off.
#pragma once

#include <string>

#include "netkit/endpoint.hpp"

namespace netkit::chat {

struct terminal_options {
  endpoint server;
  std::string nick;        // sent as /nick on every (re)connect; empty: choose by hand
  bool reconnect = false;  // connect again with back-off when the connection is lost
  std::string model = "poll";
};

// Runs until the user quits (/quit, EOF, Ctrl-C: status 0) or, without reconnect, until
// the connection is lost or cannot be made (status 1, reported on stderr).
int run_terminal_client(const terminal_options& options);

}  // namespace netkit::chat
