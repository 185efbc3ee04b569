// The multi-reactor stream echo, also reached from the event-loop models with --threads N.
#pragma once

#include <cstddef>
#include <string_view>

#include "server_model.hpp"

namespace netkit::servers {

// `threads` event loops on backend `backend`, one per thread, each with its own
// SO_REUSEPORT listener on the same port; the banner says model=`shown_model`.
int run_multi_reactor_echo(const model_settings& settings, std::string_view backend,
                           std::string_view shown_model, std::size_t threads);

}  // namespace netkit::servers
