// The stream-server implementations behind make_stream_server(), one per I/O model family.
#pragma once

#include <memory>

#include "netkit/net/stream_server.hpp"

namespace netkit::detail {

// Completion-based server for a loop whose backend is io_uring (loop.io_backend().completion_based()).
// Binds and listens (throws sys_error naming the endpoint), then serves on `loop`.
std::unique_ptr<stream_server> make_uring_server(event_loop& loop, server_options options,
                                                 stream_handler handler);

}  // namespace netkit::detail
