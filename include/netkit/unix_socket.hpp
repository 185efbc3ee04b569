// Unix-domain specifics: the socket file's life cycle (stale detection, mode, removal),
// peer credentials and socketpair. listen_on() in socket.hpp uses bind_unix for every
// unix:// and unix-dgram:// filesystem endpoint, so every server gets the same rules.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include <sys/stat.h>
#include <sys/types.h>

#include "netkit/endpoint.hpp"
#include "netkit/fd.hpp"
#include "netkit/socket.hpp"

namespace netkit {

// Makes the path of a filesystem Unix endpoint free for bind:
//  - nothing there: nothing to do;
//  - a socket nobody serves (a probe connect is refused: the server died without
//    unlinking it): the stale file is removed;
//  - a socket a live server answers (or whose backlog is full): throws sys_error
//    EADDRINUSE "address in use: PATH (a live server is listening)";
//  - anything that is not a socket (regular file, directory...): never removed; throws
//    EADDRINUSE naming the path and what is there.
// Abstract endpoints have no file; nothing is done for them.
void reclaim_unix_path(const endpoint& ep);

// bind(2) for a Unix endpoint: reclaim_unix_path, then bind so that the socket file is
// never more permissive than `mode` from the moment it exists (Linux applies the socket
// inode's mode, masked by the umask, to the new file: fchmod before bind, then chmod to
// exactly `mode` after). Without `mode` the file gets the usual 0777 & ~umask.
// Throws sys_error naming the endpoint; EADDRINUSE on an abstract name means a live
// owner holds it (it is never "removed").
void bind_unix(int fd, const endpoint& ep, std::optional<mode_t> mode);

// Removes a socket file when the server that created it exits cleanly. Records the file's
// device and inode when created, and unlinks the path only if it still names that very
// file, so a successor's socket at the same path is never removed. Move-only.
class unix_socket_file {
 public:
  unix_socket_file() noexcept = default;
  // Claims the file now at ep's path (call right after a successful bind); does nothing
  // for abstract or non-Unix endpoints.
  explicit unix_socket_file(const endpoint& ep);
  unix_socket_file(unix_socket_file&& other) noexcept;
  unix_socket_file& operator=(unix_socket_file&& other) noexcept;
  unix_socket_file(const unix_socket_file&) = delete;
  unix_socket_file& operator=(const unix_socket_file&) = delete;
  ~unix_socket_file() { remove(); }

  const std::string& path() const noexcept { return path_; }
  bool owns_file() const noexcept { return !path_.empty(); }
  // Unlinks now (if still ours); afterwards the guard is empty.
  void remove() noexcept;
  // Keeps the file on destruction.
  void release() noexcept { path_.clear(); }

 private:
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// listen_on() plus the guard that removes the socket file on clean exit.
struct unix_listener {
  unique_fd fd;
  unix_socket_file file;
};
unix_listener listen_unix(const endpoint& ep, io_mode mode, const listen_options& opts = {});

// SO_PEERCRED: the identity of the process at the other end of a connected Unix socket
// (taken when it connected, or when the socketpair was made).
struct peer_credentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};
peer_credentials peer_credentials_of(int fd);  // throws sys_error

// socketpair(AF_UNIX): two connected, close-on-exec descriptors. `t` is unix_stream or
// unix_dgram.
std::pair<unique_fd, unique_fd> make_socket_pair(transport t = transport::unix_stream,
                                                 io_mode mode = io_mode::blocking);

}  // namespace netkit
