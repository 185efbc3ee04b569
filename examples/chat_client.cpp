// chat_client: the other end of chat_server (or of any server that speaks lines).
//
//   build/release/examples/chat_client tcp://127.0.0.1:PORT
//   printf 'hello\n' | build/release/examples/chat_client tcp://127.0.0.1:PORT
//
// Sends each line of stdin and prints each line received. Exits when stdin ends, once
// everything read from it has been delivered, or when the server goes away.
#include <unistd.h>

#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "netkit/net/stream_client.hpp"

using namespace netkit;

// Stdin, watched by the loop like a socket: each complete line is sent to the server.
struct stdin_lines final : io_handler {
  connection_group* group = nullptr;
  conn_id server;
  watch_id watch;
  std::string partial;  // stdin bytes after the last '\n'

  void on_io(std::uint32_t) override {
    char chunk[4096];
    ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);  // readable: does not block
    connection* c = group->find(server);
    if (c && n > 0) {
      partial.append(chunk, static_cast<std::size_t>(n));
      for (auto nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n')) {
        c->send(std::string_view(partial).substr(0, nl));
        partial.erase(0, nl + 1);
      }
    } else if (c) {  // end of stdin; a last line may lack its '\n'
      if (!partial.empty()) c->send(partial);
      group->loop().unwatch(watch);
      c->close();  // delivers what is queued, then closes: run_until_done returns
    }
  }
};

int main(int argc, char** argv) try {
  if (argc != 2) {
    fmt::print(stderr, "usage: chat_client URI   (e.g. tcp://127.0.0.1:9000)\n");
    return 2;
  }
  // poll, not epoll: epoll refuses a regular file, and stdin may be redirected from one.
  event_loop loop("poll");
  stdin_lines input;
  int status = 0;
  stream_handler chat;
  chat.on_connect = [&](connection& c) {  // read no line before it can be sent
    input.group = &c.owner();
    input.server = c.id();
    input.watch = loop.watch(STDIN_FILENO, io_read, input);
  };
  chat.on_message = [](connection&, std::span<const std::byte> line) {
    fmt::print("{}\n", as_text(line));
    std::fflush(stdout);  // line by line, into a pipe too
  };
  chat.on_connect_failed = [&](stream_client&, const endpoint&, const sys_error& e) {
    fmt::print(stderr, "chat_client: {}\n", e.what());
    status = 1;
  };
  client_options options;
  options.codec = codec_spec::parse("line");
  auto client = make_stream_client(loop, options, chat);
  client->connect(endpoint::parse(argv[1]));
  run_until_done(loop, *client);  // until the connection is closed or the connect failed
  return status;
} catch (const std::exception& e) {
  fmt::print(stderr, "chat_client: {}\n", e.what());
  return 1;
}
