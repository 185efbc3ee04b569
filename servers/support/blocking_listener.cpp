#include "support/blocking_listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/process.hpp"
#include "netkit/socket.hpp"
#include "support/blocking_echo.hpp"

namespace netkit::servers::support {

namespace {

// Out of descriptors or memory: accepting again at once would spin on the same error;
// the backlog holds the connections meanwhile.
constexpr std::chrono::milliseconds resource_pause{100};

listen_options listening_of(const model_settings& settings) {
  listen_options o;
  o.unix_mode = settings.unix_mode;
  o.reuse_port = settings.reuse_port;
  return o;
}

}  // namespace

blocking_listener::blocking_listener(const model_settings& settings)
    : listener_(listen_unix(settings.listen, io_mode::blocking, listening_of(settings))),
      local_(local_endpoint(listener_.fd.get(), settings.listen.kind())) {
  set_stop_check_timeouts(listener_.fd.get());
}

unique_fd blocking_listener::accept() {
  int fd = ::accept4(listener_.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) {
    if (local_.kind() == transport::tcp) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return unique_fd(fd);
  }
  int err = errno;
  if (err == EINTR) {
    ++interrupted_;
    return {};
  }
  if (err == EAGAIN || err == EWOULDBLOCK || is_transient_accept_error(err)) return {};
  if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
    if (resource_errors_++ % 1000 == 0)
      log(log_level::warning, "accept {}: {}; pausing accepts for {} ms", local_.to_uri(),
          errno_text(err), resource_pause.count());
    std::this_thread::sleep_for(resource_pause);
    return {};
  }
  throw_sys_error(err, "accept", local_.to_uri());
}

void blocking_listener::close() noexcept {
  listener_.fd.reset();
  listener_.file.remove();
}

void blocking_listener::close_in_child() noexcept {
  listener_.file.release();
  listener_.fd.reset();
}

bool admission::admit(std::size_t open, int fd, transport kind) {
  if (max_conns_ == 0 || open < max_conns_) return true;
  ++refused_;
  auto level = refused_ == 1 || refused_ % 1000 == 0 ? log_level::warning : log_level::debug;
  log(level, "refused {} (--max-conns {} reached; {} refused so far)", peer_name(fd, kind),
      max_conns_, refused_);
  return false;
}

void print_banner(const endpoint& local, std::string_view model, const codec_spec& codec,
                  std::string_view extra) {
  auto limit = current_nofile_limit();
  fmt::print("listening on {} model={} codec={}{} nofile={}/{}\n", local.to_uri(), model,
             codec.to_string(), extra, limit.soft, limit.hard);
  std::fflush(stdout);
}

}  // namespace netkit::servers::support
