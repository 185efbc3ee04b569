// chat_server: a broadcast chat room on netkit's public API.
// (The full service, with nicks, commands and slow-consumer protection, is netkit chat-server:
// chat/ in this tree. This stays the smallest complete use of broadcast.)
//
//   build/release/examples/chat_server --listen tcp://127.0.0.1:9000
//   build/release/examples/chat_client tcp://127.0.0.1:9000        (in two or more terminals)
//
// Every line a client sends goes to every other client, prefixed with the sender's address;
// joins and leaves are announced the same way. The first line printed is "listening on URI",
// so the default --listen tcp://127.0.0.1:0 (any free port) is usable from a script.
// Ctrl-C or SIGTERM stops it after pending output is delivered.
#include <signal.h>

#include <cstdio>
#include <string_view>

#include <fmt/format.h>

#include "netkit/net/stream_server.hpp"

using namespace netkit;

// Framed once and queued on every connection but the sender's: no copy per recipient.
void tell_others(connection& from, std::string_view text) {
  from.owner().broadcast(fmt::format("{}{}", from.peer().to_uri(), text), from.id());
}

int main(int argc, char** argv) try {
  if (argc != 1 && !(argc == 3 && argv[1] == std::string_view("--listen"))) {
    fmt::print(stderr, "usage: chat_server [--listen URI]\n");
    return 2;
  }
  server_options options;
  options.listen = endpoint::parse(argc == 3 ? argv[2] : "tcp://127.0.0.1:0");
  options.codec = codec_spec::parse("line,max=4096");  // one message per line, bounded
  stream_handler chat;
  chat.on_connect = [](connection& c) { tell_others(c, " joined"); };
  chat.on_message = [](connection& c, std::span<const std::byte> line) {
    tell_others(c, fmt::format(": {}", as_text(line)));
  };
  chat.on_close = [](connection& c, close_reason) { tell_others(c, " left"); };

  event_loop loop("epoll");  // or select, poll, epoll-et, uring: the program is the same
  auto server = make_stream_server(loop, options, chat);
  loop.stop_on_signals({SIGINT, SIGTERM});  // before the banner: a SIGTERM right after it stops us
  fmt::print("listening on {}\n", server->local().to_uri());
  std::fflush(stdout);
  run_until_signal(loop, *server);
} catch (const std::exception& e) {
  fmt::print(stderr, "chat_server: {}\n", e.what());
  return 1;
}
