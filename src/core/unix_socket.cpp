#include "netkit/unix_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit {

namespace {

std::string_view file_kind(mode_t m) {
  if (S_ISREG(m)) return "a regular file";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISFIFO(m)) return "a FIFO";
  return "not a socket";
}

// Connect errors meaning "something is there and alive": the connect worked, the
// backlog is full (a live but busy server), or a socket of the other type answers.
bool probe_says_live(int err) {
  return err == 0 || err == EAGAIN || err == EPROTOTYPE;
}

}  // namespace

void reclaim_unix_path(const endpoint& ep) {
  if (!is_unix(ep.kind()) || ep.is_abstract()) return;
  auto path = ep.path();
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw_sys_error("stat", path);
  }
  if (!S_ISSOCK(st.st_mode))
    throw sys_error(
        EADDRINUSE, "address in use",
        fmt::format("{} ({} is there; it is never removed)", path, file_kind(st.st_mode)));
  unique_fd probe(::socket(AF_UNIX, ep.socket_type() | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) throw_sys_error("socket", ep.to_uri());
  int err = 0;
  if (::connect(probe.get(), ep.addr(), ep.length()) != 0) err = errno;
  if (probe_says_live(err))
    throw sys_error(EADDRINUSE, "address in use",
                    fmt::format("{} (a live server is listening)", path));
  if (err == ENOENT) return;  // gone meanwhile
  if (err != ECONNREFUSED) throw sys_error(err, "probe connect", ep.to_uri());
  // Refused: nobody holds the socket; the server that made it died without unlinking.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_sys_error("unlink stale socket", path);
}

void bind_unix(int fd, const endpoint& ep, std::optional<mode_t> mode) {
  reclaim_unix_path(ep);
  bool file = !ep.is_abstract();
  // unix_bind() creates the file with the socket inode's mode & ~umask, so restricting the
  // socket inode first means the file is never more open than `mode`, with no umask(2)
  // (process-wide, racy with other threads) involved.
  if (file && mode && ::fchmod(fd, *mode) != 0) throw_sys_error("fchmod", ep.to_uri());
  if (::bind(fd, ep.addr(), ep.length()) != 0) {
    int err = errno;
    if (err == EADDRINUSE && ep.is_abstract())
      throw sys_error(err, "address in use",
                      fmt::format("{} (a live owner holds this abstract name)", ep.to_uri()));
    if (err == EADDRINUSE)
      throw sys_error(err, "address in use",
                      fmt::format("{} (created by another server meanwhile)", ep.path()));
    throw sys_error(err, "bind", ep.to_uri());
  }
  if (!file || !mode) return;
  unix_socket_file guard(ep);  // undo the bind if the mode cannot be set
  auto path = ep.path();
  if (::chmod(path.c_str(), *mode) != 0) throw_sys_error("chmod", ep.to_uri());
  guard.release();
}

unix_socket_file::unix_socket_file(const endpoint& ep) {
  if (!is_unix(ep.kind()) || ep.is_abstract()) return;
  auto path = ep.path();
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  path_ = std::move(path);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
}

unix_socket_file::unix_socket_file(unix_socket_file&& other) noexcept
    : path_(std::move(other.path_)), dev_(other.dev_), ino_(other.ino_) {
  other.path_.clear();
}

unix_socket_file& unix_socket_file::operator=(unix_socket_file&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::move(other.path_);
    other.path_.clear();
    dev_ = other.dev_;
    ino_ = other.ino_;
  }
  return *this;
}

void unix_socket_file::remove() noexcept {
  if (path_.empty()) return;
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
    ::unlink(path_.c_str());
  path_.clear();
}

unix_listener listen_unix(const endpoint& ep, io_mode mode, const listen_options& opts) {
  unix_listener l;
  l.fd = listen_on(ep, mode, opts);
  l.file = unix_socket_file(ep);
  return l;
}

peer_credentials peer_credentials_of(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    throw_sys_error("getsockopt SO_PEERCRED", fmt::format("fd {}", fd));
  return {cred.pid, cred.uid, cred.gid};
}

std::pair<unique_fd, unique_fd> make_socket_pair(transport t, io_mode mode) {
  int type = (t == transport::unix_dgram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC;
  if (mode == io_mode::nonblocking) type |= SOCK_NONBLOCK;
  int sv[2];
  if (::socketpair(AF_UNIX, type, 0, sv) != 0) throw_sys_error("socketpair");
  return {unique_fd(sv[0]), unique_fd(sv[1])};
}

}  // namespace netkit
