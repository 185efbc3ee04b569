#include "netkit/datagram.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>

#include "netkit/error.hpp"

namespace netkit {

received_message recv_datagram(int sock, std::span<std::byte> buffer, transport kind,
                               recv_flags flags) {
  iovec iov{buffer.data(), buffer.size()};
  return recv_message(sock, {&iov, 1}, 0, kind, flags);
}

io_result send_datagram(int sock, std::span<const std::byte> data, const endpoint* to) {
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  return send_message(sock, {&iov, 1}, {}, to);
}

unique_fd open_dgram_client(const endpoint& server, io_mode mode) {
  auto fd = open_socket(server, mode);
  if (server.kind() == transport::unix_dgram) {
    // Autobind (unix(7)): binding with only the family picks a unique abstract name.
    sockaddr_un self{};
    self.sun_family = AF_UNIX;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&self), sizeof(sa_family_t)) != 0)
      throw_sys_error("bind (autobind)", server.to_uri());
  }
  int rc;
  do {
    rc = ::connect(fd.get(), server.addr(), server.length());
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) throw_sys_error("connect", server.to_uri());
  return fd;
}

}  // namespace netkit
