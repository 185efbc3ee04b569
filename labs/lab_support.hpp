// What several labs share: loopback TCP pairs with small buffers, filling and draining a
// connection, and reading one end's state from the kernel (its table entry, else TCP_INFO).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "lab.hpp"
#include "netkit/endpoint.hpp"
#include "netkit/fd.hpp"
#include "netkit/inspect/socket_table.hpp"
#include "netkit/inspect/tcp_info.hpp"

namespace netkit::labs {

using namespace std::chrono_literals;

// tcp://127.0.0.1:PORT (port 0: the kernel picks).
endpoint loopback_tcp(std::uint16_t port = 0);
// The remote address of a listener in the kernel's table: 0.0.0.0:0 or [::]:0.
endpoint unspecified_tcp(int family);

// A connected loopback TCP pair, both ends blocking. The listener is closed once the server
// end is accepted.
struct tcp_pair {
  unique_fd client;
  unique_fd server;
  endpoint client_end;  // the client's local address (the server's remote)
  endpoint server_end;  // the server's local address (the client's remote)
};

// 0: the kernel's default buffers. Otherwise SO_SNDBUF and SO_RCVBUF of both ends are set to
// `buffer_bytes` before the handshake, so a few KiB fill the connection.
tcp_pair connect_pair(int buffer_bytes = 0);

// A blocking TCP socket with small buffers (as above), connected to `to`.
unique_fd connect_small(const endpoint& to, int buffer_bytes);

// Writes without blocking until the socket takes no more (the peer's window and our send
// buffer are full); returns the bytes written. Bounded: at most 64 MiB.
std::size_t fill(int fd);

// Reads until EOF or `timeout`; returns the bytes read (EOF seen: *eof = true).
std::size_t drain(int fd, std::chrono::milliseconds timeout, bool* eof = nullptr);

// Waits for `fd` to be readable (true) or for `timeout` to pass.
bool wait_readable(int fd, std::chrono::milliseconds timeout);

// One end of a connection as the kernel reports it.
struct end_state {
  std::optional<inspect::tcp_state> state;  // nullopt: the kernel has no such socket
  std::string source;                       // "sock_diag", "/proc/net/tcp", "TCP_INFO"
  std::optional<inspect::socket_entry> entry;
  std::string describe() const;  // "FIN_WAIT_1 (sock_diag)", "no socket in the kernel's table"
};

// The table entry for (local, remote); when there is none and `fd` is open, TCP_INFO on it
// (a socket in CLOSED is in no table). `fd` -1: the table only.
end_state observe_end(lab_context& ctx, int fd, const endpoint& local, const endpoint& remote);

// Observes until the end is in `want` or `timeout` passes; returns the last observation.
// Bounded: one table read every millisecond or so.
end_state wait_for_state(lab_context& ctx, int fd, const endpoint& local, const endpoint& remote,
                         inspect::tcp_state want, std::chrono::milliseconds timeout = 2000ms);

// "127.0.0.1:40000".
std::string host_port(const endpoint& ep);

// How a child process of run_child ended, and what it wrote to its pipe.
struct child_result {
  int status = 0;          // waitpid status
  bool timed_out = false;  // it was killed at the deadline
  std::string output;
  std::string describe() const;  // "exited with status 0", "was killed by signal 13 (SIGPIPE)"
};

// Forks; the child runs body(out_fd) and _exits with its result (an exception: 70). The
// parent reads out_fd's text until EOF and reaps the child; at `timeout` it kills (by pid)
// and reaps it. Descendants of the child must close out_fd, or the read waits for them.
child_result run_child(const std::function<int(int out_fd)>& body,
                       std::chrono::milliseconds timeout = 3000ms);

// Writes all of `text` to `fd` (a child's report); false on error.
bool write_all(int fd, std::string_view text);

// The process state letter of `pid` from /proc/PID/stat ('R', 'S', 'Z', ...); 0 if gone.
char process_state(pid_t pid);

// The first line of a /proc/sys file ("" if unreadable).
std::string read_sys_value(const char* path);

// setsockopt of an int option that throws sys_error naming `what`. that throws sys_error naming
// `what`.
void set_int_option(int fd, int level, int name, int value, const char* what);

}  // namespace netkit::labs
