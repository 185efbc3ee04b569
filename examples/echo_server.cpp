// echo_server: the smallest netkit server. Every line received is sent straight back.
//
//   build/release/examples/echo_server --listen tcp://127.0.0.1:9000
//   build/release/examples/echo_client tcp://127.0.0.1:9000 1000
//
// The first line printed is "listening on URI", so the default --listen tcp://127.0.0.1:0
// (any free port) is usable from a script. Ctrl-C or SIGTERM stops it after pending
// output is delivered.
#include <signal.h>

#include <cstdio>
#include <string_view>

#include <fmt/format.h>

#include "netkit/net/stream_server.hpp"

using namespace netkit;

int main(int argc, char** argv) try {
  if (argc != 1 && !(argc == 3 && argv[1] == std::string_view("--listen"))) {
    fmt::print(stderr, "usage: echo_server [--listen URI]\n");
    return 2;
  }
  server_options options;
  options.listen = endpoint::parse(argc == 3 ? argv[2] : "tcp://127.0.0.1:0");
  options.codec = codec_spec::parse("line");  // or length, fixed:N, raw... (codec/codec.hpp)
  stream_handler echo;
  // The message is one decoded line; send() frames it again with the same codec.
  echo.on_message = [](connection& c, std::span<const std::byte> message) { c.send(message); };

  event_loop loop("epoll");
  auto server = make_stream_server(loop, options, echo);
  loop.stop_on_signals({SIGINT, SIGTERM});  // before the banner: a SIGTERM right after it stops us
  fmt::print("listening on {}\n", server->local().to_uri());
  std::fflush(stdout);
  run_until_signal(loop, *server);
} catch (const std::exception& e) {
  fmt::print(stderr, "echo_server: {}\n", e.what());
  return 1;
}
