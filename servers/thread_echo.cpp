// Model "thread": the main thread blocks in accept(2) and starts one thread per
// connection, which serves it to EOF with blocking I/O (support/blocking_echo) and ends.
// Threads are never detached: an ended thread puts its id on a list the main thread
// joins from before each accept, and on stop the main thread joins every one, so no
// thread outlives the server. Stop signals are blocked in the connection threads (so
// they always interrupt the main thread's accept); those threads see the stop flag
// within stop_check_interval (SO_RCVTIMEO/SO_SNDTIMEO). --max-conns caps the threads
// alive at once. tcp:// and unix://.
#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "netkit/log.hpp"
#include "netkit/signals.hpp"
#include "server_model.hpp"
#include "support/blocking_echo.hpp"
#include "support/blocking_listener.hpp"

namespace netkit::servers {

namespace {

// The name (comm) of every connection thread.
constexpr const char* connection_thread_name = "netkit-conn";

class thread_server {
 public:
  explicit thread_server(const model_settings& settings)
      : settings_(settings), listener_(settings), admission_(settings.max_conns) {}
  ~thread_server() { join_all(); }
  thread_server(const thread_server&) = delete;
  thread_server& operator=(const thread_server&) = delete;

  const endpoint& local() const noexcept { return listener_.local(); }

  void run(const stop_signal_scope& stop) {
    while (!stop.received()) {
      join_ended();
      auto conn = listener_.accept();
      if (!conn) continue;  // interrupted, timed out or transient: look at the flag again
      join_ended();
      if (!admission_.admit(threads_.size(), conn.get(), local().kind())) continue;
      start(std::move(conn));
    }
    listener_.close();
  }

  // Waits for every connection thread (each sees the stop flag within
  // stop_check_interval, or its peer's EOF).
  void join_all() {
    for (auto& [id, t] : threads_)
      t.join();
    threads_.clear();
    std::lock_guard lock(mutex_);
    ended_.clear();
  }

  std::uint64_t started() const noexcept { return next_id_; }

 private:
  void start(unique_fd conn);
  void serve(std::uint64_t id, unique_fd conn);
  void join_ended();

  const model_settings& settings_;
  support::blocking_listener listener_;
  support::admission admission_;
  // Owned by the main thread: every connection thread not yet joined, by id.
  std::map<std::uint64_t, std::thread> threads_;
  std::uint64_t next_id_ = 0;
  std::mutex mutex_;
  std::vector<std::uint64_t> ended_;  // guarded by mutex_: threads that finished serving
};

void thread_server::start(unique_fd conn) {
  auto id = next_id_++;
  // Threads created with the stop signals blocked inherit that mask: the signal then
  // always goes to the main thread, whose accept it interrupts.
  sigset_t stop_signals, old;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
  // Named now: if the thread cannot start, the connection is already closed when we log.
  auto peer = support::peer_name(conn.get(), local().kind());
  try {
    threads_.emplace(
        id, std::thread([this, id, c = std::move(conn)]() mutable { serve(id, std::move(c)); }));
  } catch (const std::system_error& e) {
    // EAGAIN: a thread or memory limit. That client is refused; the others served on.
    log(log_level::error, "starting a thread for {}: {}; closed it", peer, e.what());
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void thread_server::serve(std::uint64_t id, unique_fd conn) {
  // Named, so that `top -H` (and the tests) can tell connection threads apart.
  ::pthread_setname_np(::pthread_self(), connection_thread_name);
  try {
    auto dec = make_decoder(settings_.codec);
    auto enc = make_encoder(settings_.codec);
    support::serve_accepted_echo(conn.get(), local().kind(), *dec, *enc,
                                 fmt::format("thread {}", id));
  } catch (const std::exception& e) {  // that connection's problem (e.g. out of memory)
    log(log_level::error, "thread {}: {}", id, e.what());
  }
  conn.reset();  // closed before the main thread may count this thread as ended
  std::lock_guard lock(mutex_);
  ended_.push_back(id);
}

void thread_server::join_ended() {
  std::vector<std::uint64_t> ended;
  {
    std::lock_guard lock(mutex_);
    ended.swap(ended_);
  }
  for (auto id : ended) {
    auto it = threads_.find(id);
    it->second.join();  // it has finished serving: only its return is left
    threads_.erase(it);
  }
}

int run(const server_model& model, const model_settings& settings) {
  (void)make_decoder(settings.codec);  // usage_error now, not in the first thread
  // Installed before the banner: a SIGTERM right after it must stop us cleanly.
  stop_signal_scope stop;
  thread_server server(settings);
  support::print_banner(server.local(), model.name, settings.codec,
                        fmt::format(" max-conns={}", settings.max_conns));
  server.run(stop);
  server.join_all();
  log(log_level::info, "stopped by signal {}: {} connections served, each on its own thread",
      stop.received(), server.started());
  return 0;
}

}  // namespace

server_model thread_model() {
  return {.name = "thread",
          .family = transport_family::stream,
          .transports = {},
          .description =
              "blocking accept, one thread per connection, joined when it ends: one "
              "thread (and stack) per client; --max-conns caps them",
          .takes = {common_option::codec, common_option::unix_mode, common_option::reuse_port,
                    common_option::max_conns},
          .own_options = {},
          .probe = nullptr,
          .run = run};
}

}  // namespace netkit::servers
