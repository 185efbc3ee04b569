// Factories for the backends (one file each), used by the registry in backends.cpp.
#pragma once

#include <memory>

#include "netkit/event/backend.hpp"

namespace netkit::detail {

std::unique_ptr<backend> make_select_backend();
std::unique_ptr<backend> make_poll_backend();
// Throws sys_error naming the fallback when the kernel refuses io_uring.
std::unique_ptr<backend> make_uring_backend();

}  // namespace netkit::detail
