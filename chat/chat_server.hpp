// The multi-user chat server (`netkit chat-server`): a chat room (room.hpp) served by one
// event loop, or by a multi_reactor's loops with --threads N.
#pragma once

#include <cstddef>
#include <string>

#include "netkit/endpoint.hpp"
#include "room.hpp"

namespace netkit::chat {

struct chat_server_options {
  endpoint listen;
  std::string model = "epoll";  // an event-loop backend: select, poll, epoll, epoll-et, uring
  std::size_t threads = 1;      // > 1: a multi_reactor (tcp only)
  std::size_t max_connections = 0;
  // SO_SNDBUF of each connection: the kernel's share of what a member that stopped reading
  // may hold, beside room.max_output in the server (0: the kernel's autotuning, MiBs).
  std::size_t send_buffer = 64 << 10;
  room_options room;
};

// Prints "listening on URI model=M threads=N" first (port 0 resolved), serves until SIGINT
// or SIGTERM, then tells every client the server is stopping, delivers what is queued
// (within the drain timeout) and returns 0. Throws sys_error/usage_error on setup errors.
int run_chat_server(const chat_server_options& options);

}  // namespace netkit::chat
