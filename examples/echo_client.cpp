// echo_client: sends COUNT lines to an echo server, one at a time, and checks every echo.
//
//   build/release/examples/echo_client tcp://127.0.0.1:PORT [COUNT]      (COUNT: 100)
//
// Prints "COUNT messages echoed by URI" and exits 0 when every echo matched; exits 1 on a
// wrong echo, a lost connection, a server silent for 10 s, or a failed connect.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "netkit/net/stream_client.hpp"

using namespace netkit;

std::string message(long i) {
  return fmt::format("message {}", i);
}

int main(int argc, char** argv) try {
  const long count = argc == 3 ? std::atol(argv[2]) : 100;  // 0 when not a number
  if ((argc != 2 && argc != 3) || count < 1) {
    fmt::print(stderr, "usage: echo_client URI [COUNT]   (e.g. tcp://127.0.0.1:9000 1000)\n");
    return 2;
  }
  event_loop loop("epoll");
  long echoed = 0;
  stream_handler check;
  // One message in flight at a time: each echo is checked, then the next message is sent.
  check.on_connect = [](connection& c) { c.send(message(0)); };
  check.on_message = [&](connection& c, std::span<const std::byte> reply) {
    std::string_view text = as_text(reply);
    if (text != message(echoed)) {
      fmt::print(stderr, "echo_client: sent '{}', got '{}'\n", message(echoed), text);
      c.close();
    } else if (++echoed < count) {
      c.send(message(echoed));
    } else {
      c.close();
    }
  };
  check.on_close = [](connection&, close_reason why) {
    if (why != close_reason::local)
      fmt::print(stderr, "echo_client: closed ({})\n", to_string(why));
  };
  check.on_connect_failed = [&](stream_client&, const endpoint&, const sys_error& e) {
    fmt::print(stderr, "echo_client: {}\n", e.what());
  };
  client_options options;
  options.codec = codec_spec::parse("line");
  options.idle_timeout = std::chrono::seconds(10);  // a server that stops answering
  auto client = make_stream_client(loop, options, check);
  client->connect(endpoint::parse(argv[1]));
  run_until_done(loop, *client);  // until closed, or the connect failed
  if (echoed < count) return 1;
  fmt::print("{} messages echoed by {}\n", count, argv[1]);
} catch (const std::exception& e) {
  fmt::print(stderr, "echo_client: {}\n", e.what());
  return 1;
}
