// The reserve-descriptor trick for running out of descriptors (EMFILE/ENFILE): keep one
// descriptor open for nothing; when accept fails for lack of descriptors, close it,
// accept the oldest pending connection and close that at once (the client sees EOF —
// "shed load"), then reopen the reserve. Used by both acceptors (reactor and io_uring).
#pragma once

#include <cstdint>

#include "netkit/endpoint.hpp"
#include "netkit/fd.hpp"

namespace netkit::detail {

class spare_descriptor {
 public:
  spare_descriptor();

  enum class result {
    shed,           // one pending connection was closed; more may wait
    backlog_empty,  // nothing pending: stop for this wakeup (no reopen/accept ping-pong)
    stuck,          // not even the reserve could be used: pause accepting
  };
  // `listen_fd` must be non-blocking. Logs the first shed and every 1000th.
  result shed_one(int listen_fd, const endpoint& local);
  std::uint64_t shed() const noexcept { return shed_; }

 private:
  unique_fd fd_;
  std::uint64_t shed_ = 0;
};

}  // namespace netkit::detail
