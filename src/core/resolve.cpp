#include "netkit/resolve.hpp"

#include <netdb.h>
#include <unistd.h>

#include <climits>
#include <memory>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit {

namespace {
std::string_view gai_name(int rc) {
  switch (rc) {
    case EAI_AGAIN:
      return "EAI_AGAIN";
    case EAI_BADFLAGS:
      return "EAI_BADFLAGS";
    case EAI_FAIL:
      return "EAI_FAIL";
    case EAI_FAMILY:
      return "EAI_FAMILY";
    case EAI_MEMORY:
      return "EAI_MEMORY";
    case EAI_NONAME:
      return "EAI_NONAME";
    case EAI_SERVICE:
      return "EAI_SERVICE";
    case EAI_SOCKTYPE:
      return "EAI_SOCKTYPE";
    case EAI_NODATA:
      return "EAI_NODATA";
    case EAI_ADDRFAMILY:
      return "EAI_ADDRFAMILY";
    default:
      return "EAI_?";
  }
}
}  // namespace

std::vector<endpoint> resolve(std::string_view host, std::uint16_t port, transport t) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = t == transport::udp ? SOCK_DGRAM : SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  std::string host_text(host);
  std::string service = std::to_string(port);
  addrinfo* list = nullptr;
  int rc = getaddrinfo(host_text.c_str(), service.c_str(), &hints, &list);
  if (rc == EAI_SYSTEM) throw_sys_error("getaddrinfo", host_text);
  if (rc != 0)
    throw resolve_error(
        fmt::format("resolve {}: {} ({})", host_text, gai_strerror(rc), gai_name(rc)));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(list, freeaddrinfo);
  std::vector<endpoint> out;
  for (auto* ai = list; ai; ai = ai->ai_next) {
    auto ep = endpoint::from_sockaddr(t, ai->ai_addr, ai->ai_addrlen);
    bool seen = false;
    for (auto& e : out)
      seen = seen || e == ep;
    if (!seen) out.push_back(ep);
  }
  return out;
}

std::optional<std::string> reverse_name(const endpoint& ep) {
  char name[NI_MAXHOST];
  int rc = getnameinfo(ep.addr(), ep.length(), name, sizeof name, nullptr, 0, NI_NAMEREQD);
  if (rc != 0) return std::nullopt;
  return std::string(name);
}

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof name) != 0) throw_sys_error("gethostname");
  return name;
}

}  // namespace netkit
