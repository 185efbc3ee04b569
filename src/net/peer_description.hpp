#pragma once

#include <string>

#include <fmt/format.h>

#include "netkit/net/connection.hpp"
#include "netkit/unix_socket.hpp"

namespace netkit::detail {

// For connect log lines: the peer's URI, and for Unix peers (usually unnamed) who they
// are, from SO_PEERCRED.
inline std::string describe_peer(const connection& c) {
  if (!is_unix(c.peer().kind())) return c.peer().to_uri();
  try {
    auto cred = peer_credentials_of(c.fd());
    return fmt::format("{} (pid {} uid {} gid {})", c.peer().to_uri(), cred.pid, cred.uid,
                       cred.gid);
  } catch (const std::exception&) {
    return c.peer().to_uri();
  }
}

}  // namespace netkit::detail
