// oob: TCP urgent data (MSG_OOB) and select's exception set.
#include <sys/select.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <string>

#include "lab_support.hpp"
#include "netkit/error.hpp"

namespace netkit::labs {

void run_oob(lab_context& ctx) {
  auto pair = connect_pair();
  if (::send(pair.client.get(), "ab", 2, MSG_NOSIGNAL) != 2 ||
      ::send(pair.client.get(), "cd", 2, MSG_OOB | MSG_NOSIGNAL) != 2)
    throw_sys_error("send", "client");
  ctx.note("client: send(\"ab\"), then send(\"cd\", MSG_OOB)");

  int fd = pair.server.get();
  fd_set readable, exceptional;
  FD_ZERO(&readable);
  FD_ZERO(&exceptional);
  FD_SET(fd, &readable);
  FD_SET(fd, &exceptional);
  timeval timeout{1, 0};
  int ready = ::select(fd + 1, &readable, nullptr, &exceptional, &timeout);
  bool in_except = ready > 0 && FD_ISSET(fd, &exceptional);
  ctx.note("server select(): readable {}, exception set {}", ready > 0 && FD_ISSET(fd, &readable),
           in_except);
  int mark_before = ::sockatmark(fd);

  char urgent = 0;
  ssize_t n = ::recv(fd, &urgent, 1, MSG_OOB);
  std::string oob =
      n == 1 ? std::string(1, urgent) : fmt::format("recv failed with {}", errno_name(errno));
  ctx.note("server recv(MSG_OOB): \"{}\"", oob);

  std::string inline_data;
  std::array<char, 16> buffer{};
  // At most 3 bytes are expected; a few reads at most (each stops at the mark or at the end).
  for (int i = 0; i < 4 && inline_data.size() < 3; ++i) {
    if (!wait_readable(fd, 200ms)) break;
    ssize_t got = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (got <= 0) break;
    inline_data.append(buffer.data(), static_cast<std::size_t>(got));
  }
  ctx.note("server normal reads: \"{}\" (at the mark before: {}, after: {})", inline_data,
           mark_before, ::sockatmark(fd));

  ctx.expect("urgent data wakes select's exception set", "the socket in the exception set",
             in_except ? "in the exception set" : "not in the exception set", in_except);
  ctx.expect("only the last byte of a MSG_OOB send is urgent", "recv(MSG_OOB) returns \"d\"",
             fmt::format("\"{}\"", oob), oob == "d");
  ctx.expect("the rest stays in the normal stream, without the urgent byte", "\"abc\"",
             fmt::format("\"{}\"", inline_data), inline_data == "abc");
}

}  // namespace netkit::labs
