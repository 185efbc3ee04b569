// An echo stream server running on its own event loop in a thread of the test process,
// for cases that need to control the server's process state (signal handlers, syscall
// interposition) or look inside it. Same code path as `netkit echo-server`.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "netkit/net/stream_server.hpp"

namespace netkit::test {

class in_process_server {
 public:
  // Starts the thread, builds loop + server there, and waits until it listens.
  // Throws what the loop or server constructor threw.
  // `thread_init`, if set, runs first on the server thread (e.g. to mark it for a
  // syscall interposer).
  in_process_server(std::string backend, std::string codec,
                    std::string listen = "tcp://127.0.0.1:0",
                    std::function<void()> thread_init = {});
  // Stops gracefully (begin_shutdown, then the loop) and joins.
  ~in_process_server();
  in_process_server(const in_process_server&) = delete;
  in_process_server& operator=(const in_process_server&) = delete;

  const endpoint& local() const noexcept { return local_; }
  std::thread::id thread_id() const noexcept { return thread_.get_id(); }
  pthread_t native_handle() { return thread_.native_handle(); }
  // Counters published by the loop thread after each turn.
  std::uint64_t turns() const noexcept { return turns_.load(); }
  std::uint64_t accepted() const noexcept { return accepted_.load(); }
  std::size_t open() const noexcept { return open_.load(); }

 private:
  void run(std::string backend, std::string codec, std::string listen,
           std::promise<endpoint> ready);

  std::mutex loop_mutex_;  // guards loop_: stop() from the destructor vs. the loop's end
  event_loop* loop_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> turns_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::size_t> open_{0};
  endpoint local_;
  std::thread thread_;
};

}  // namespace netkit::test
