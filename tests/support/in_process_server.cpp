#include "support/in_process_server.hpp"

namespace netkit::test {

in_process_server::in_process_server(std::string backend, std::string codec, std::string listen,
                                     std::function<void()> thread_init) {
  std::promise<endpoint> ready;
  auto started = ready.get_future();
  thread_ =
      std::thread([this, backend, codec, listen, thread_init, p = std::move(ready)]() mutable {
        if (thread_init) thread_init();
        run(backend, codec, listen, std::move(p));
      });
  try {
    local_ = started.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

in_process_server::~in_process_server() {
  {
    std::lock_guard lock(loop_mutex_);
    stop_.store(true);
    if (loop_) loop_->stop();  // stop() is safe from any thread
  }
  thread_.join();
}

void in_process_server::run(std::string backend, std::string codec, std::string listen,
                            std::promise<endpoint> ready) {
  std::unique_ptr<event_loop> loop;
  std::unique_ptr<stream_server> server;
  try {
    loop = std::make_unique<event_loop>(backend);
    server_options options;
    options.listen = endpoint::parse(listen);
    options.codec = codec_spec::parse(codec);
    stream_handler echo;
    echo.on_message = [](connection& c, std::span<const std::byte> m) { c.send(m); };
    server = make_stream_server(*loop, options, std::move(echo));
    {
      std::lock_guard lock(loop_mutex_);
      loop_ = loop.get();
    }
    ready.set_value(server->local());
  } catch (...) {
    ready.set_exception(std::current_exception());
    return;
  }
  // Bound: until the destructor sets stop_ (the 100 ms turn cap re-checks it even if a
  // wake-up were lost).
  while (!stop_.load()) {
    loop->run_once(std::chrono::milliseconds(100));
    turns_.store(loop->turns());
    accepted_.store(server->stats().accepted);
    open_.store(server->stats().open);
  }
  server->begin_shutdown();
  auto until = event_loop::clock::now() + std::chrono::seconds(10);
  while (server->stats().open > 0 && event_loop::clock::now() < until)
    loop->run_once(std::chrono::milliseconds(20));
  server.reset();
  std::lock_guard lock(loop_mutex_);
  loop_ = nullptr;
}

}  // namespace netkit::test
