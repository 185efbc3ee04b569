// Client-side socket helpers for tests: every wait has a deadline, every failure says
// what happened (data, EOF, reset, timeout) instead of hanging.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "netkit/endpoint.hpp"
#include "netkit/fd.hpp"
#include "support/test_env.hpp"

namespace netkit::test {

// Blocking connect with TCP_NODELAY (so the writes a test splits stay split). Throws.
unique_fd connect_client(const endpoint& ep);
// Non-blocking connect in progress (for bursts); TCP_NODELAY set.
unique_fd start_client(const endpoint& ep);

// Makes close() send RST (SO_LINGER {1, 0}).
void set_reset_on_close(int fd);

// Writes everything (blocking socket), retrying EINTR and short writes. Throws.
void send_all(int fd, std::span<const std::byte> bytes);
void send_all(int fd, std::string_view text);

enum class read_end { data, eof, reset, timeout };
std::string_view to_string(read_end e) noexcept;

struct read_outcome {
  read_end end = read_end::timeout;
  std::vector<std::byte> bytes;
  int err = 0;  // for reset: the errno
  std::string text() const { return {reinterpret_cast<const char*>(bytes.data()), bytes.size()}; }
};

// Reads until `n` bytes arrived, EOF, an error, or the deadline.
read_outcome read_exactly(int fd, std::size_t n, deadline until);
// Reads through the first '\n' (included), EOF, error or deadline.
read_outcome read_line(int fd, deadline until);
// Waits for the peer to end the connection: eof/reset, data (unexpected), or timeout.
read_outcome wait_for_close(int fd, deadline until);

// Sends `line + "\n"` and expects exactly the same line back before the deadline.
// Returns an empty string on success, else a description of what went wrong.
std::string line_round_trip(int fd, std::string_view line, deadline until);

// Bytes as text for messages (printable; non-printables escaped), truncated to `max`.
std::string printable(std::span<const std::byte> bytes, std::size_t max = 64);

}  // namespace netkit::test
