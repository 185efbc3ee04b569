// The registry of backends: names, descriptions, and a probe of what this kernel allows.
#include <fmt/format.h>

#include "backend_epoll.hpp"
#include "backends.hpp"
#include "netkit/error.hpp"
#include "uring_features.hpp"

namespace netkit {

namespace {

struct entry {
  std::string_view name;
  std::string_view description;
  std::unique_ptr<backend> (*make)();
};

const entry registry[] = {
    {"select", "select(2): portable, O(n) per call, descriptors below FD_SETSIZE (1024) only",
     detail::make_select_backend},
    {"poll", "poll(2): no descriptor limit, O(n) per call", detail::make_poll_backend},
    {"epoll", "epoll(7) level-triggered: O(ready) per call",
     []() -> std::unique_ptr<backend> {
       return std::make_unique<detail::epoll_backend>(detail::epoll_backend::trigger::level);
     }},
    {"epoll-et", "epoll(7) edge-triggered: each change reported once; readers drain to EAGAIN",
     []() -> std::unique_ptr<backend> {
       return std::make_unique<detail::epoll_backend>(detail::epoll_backend::trigger::edge);
     }},
    {"uring",
     "io_uring(7) completion-based: accept/recv/send submitted as operations (multishot, "
     "provided buffers), one io_uring_enter per turn",
     detail::make_uring_backend},
};

std::string known_names() {
  std::string names;
  for (const auto& e : registry)
    names += fmt::format("{}{}", names.empty() ? "" : ", ", e.name);
  return names;
}

}  // namespace

std::vector<backend_info> list_backends() {
  std::vector<backend_info> out;
  for (const auto& e : registry) {
    backend_info info{std::string(e.name), std::string(e.description), true, {}, {}};
    try {
      e.make();
    } catch (const std::exception& ex) {
      info.available = false;
      info.problem = ex.what();
    }
    if (info.available && e.name == "uring")
      info.kernel_features = detail::probe_uring_features().describe();
    out.push_back(std::move(info));
  }
  return out;
}

std::unique_ptr<backend> make_backend(std::string_view name) {
  for (const auto& e : registry)
    if (e.name == name) return e.make();
  throw usage_error(fmt::format("unknown I/O model '{}' (choose one of: {})", name, known_names()));
}

}  // namespace netkit
