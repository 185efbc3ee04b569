// What the library's own dispatching acceptor (multi_reactor, accept_strategy::dispatch)
// needs from the stream server beyond its public interface.
#pragma once

#include <memory>
#include <optional>

#include "net/connection_table.hpp"
#include "netkit/net/stream_server.hpp"

namespace netkit::detail {

// A stream server without a listener: it serves only the connections handed to adopt().
// local() is options.listen (the dispatcher's address); stop_accepting() does nothing.
std::unique_ptr<stream_server> make_adopting_server(event_loop& loop, server_options options,
                                                    stream_handler handler);

// adopt() without its non-blocking fix-up: for sockets our own acceptor accepted
// (SOCK_NONBLOCK), so a dispatched connection costs no fcntl; `tuning` says whether they
// came from a listener tune_listener set up. `server` must come from make_stream_server or
// make_adopting_server; loop thread only.
std::optional<conn_id> adopt_accepted(stream_server& server, unique_fd fd, endpoint peer,
                                      socket_tuning tuning);

// Checks that `fd` is a listening socket (usage_error naming `listen` if not) and makes it
// non-blocking (an inherited one may not be); returns it.
unique_fd prepare_listener(unique_fd fd, const endpoint& listen);

}  // namespace netkit::detail
