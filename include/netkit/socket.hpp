// Socket creation and options. Every descriptor is created close-on-exec.
#pragma once

#include <chrono>
#include <optional>

#include <sys/stat.h>

#include "netkit/endpoint.hpp"
#include "netkit/fd.hpp"

namespace netkit {

enum class io_mode { blocking, nonblocking };

unique_fd open_socket(const endpoint& ep, io_mode mode);

struct listen_options {
  int backlog = SOMAXCONN;
  bool reuse_port = false;          // SO_REUSEPORT: several listeners share the port
  std::optional<mode_t> unix_mode;  // chmod of a Unix socket file; default from umask
};

// socket + SO_REUSEADDR (TCP) + bind + listen (stream) for a server.
// Datagram endpoints are bound only. Throws sys_error naming the endpoint.
// Unix filesystem endpoints follow bind_unix (unix_socket.hpp): a stale socket file is
// replaced, a live server's or a non-socket file is never touched ("address in use: PATH"),
// unix_mode holds from the moment the file exists. listen_unix also returns the guard that
// removes the file on clean exit.
unique_fd listen_on(const endpoint& ep, io_mode mode, const listen_options& opts = {});

// Blocking connect; the returned socket is then put in `mode`. Throws sys_error.
unique_fd connect_to(const endpoint& ep, io_mode mode = io_mode::blocking);

// Non-blocking connect: returns the socket with the connect in progress (EINPROGRESS).
unique_fd start_connect(const endpoint& ep);

endpoint local_endpoint(int fd, transport t);  // getsockname
endpoint peer_endpoint(int fd, transport t);   // getpeername

void set_nonblocking(int fd, bool on);
void set_reuse_addr(int fd, bool on);
void set_reuse_port(int fd, bool on);
void set_tcp_nodelay(int fd, bool on);
void set_send_buffer(int fd, int bytes);
void set_recv_buffer(int fd, int bytes);
int send_buffer_size(int fd);
int recv_buffer_size(int fd);
// SO_LINGER: nullopt disables lingering; zero seconds makes close() send RST.
void set_linger(int fd, std::optional<std::chrono::seconds> timeout);
// SO_ERROR: the pending error (e.g. of a non-blocking connect), cleared by reading it.
int pending_error(int fd);

// Accept errors that concern one pending connection, not the listener (accept(2): Linux
// passes already-pending network errors on the new socket): skip it and accept the next.
bool is_transient_accept_error(int err) noexcept;

}  // namespace netkit
