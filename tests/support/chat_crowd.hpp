// Many scripted chat clients driven from one thread: one stream_client on one event loop
// holds every connection (a thousand clients cost a thousand sockets, not a thousand
// threads or processes). Client i is the i-th to connect; it joins as `prefix + i` and
// records every line the server sends it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "netkit/endpoint.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/net/stream_client.hpp"
#include "support/test_env.hpp"

namespace netkit::test {

class chat_crowd {
 public:
  struct member {
    std::string nick;
    conn_id id;
    bool open = false;
    bool joined = false;                // saw its own "*** NICK joined"
    std::vector<std::string> messages;  // "<NICK> TEXT" lines, in arrival order
    std::vector<std::string> notices;   // every other line
    // Called on every line after it is recorded (the client may reply from it).
    std::function<void(member&, const std::string&)> on_line;
  };

  explicit chat_crowd(endpoint server, std::string prefix = "u");
  ~chat_crowd();

  // Starts `n` more clients; each sends "/nick PREFIXi" as soon as it is connected.
  void connect(std::size_t n);
  // Runs the loop until done() or the deadline; false on the deadline.
  bool run_until(const std::function<bool()>& done, clock::duration limit);
  // Connects `n` clients and waits until each has seen its own join notice.
  bool join(std::size_t n, clock::duration limit);

  std::size_t size() const noexcept { return members_.size(); }
  member& at(std::size_t i) { return *members_.at(i); }
  // Queues `line` on client i (no-op once it has closed).
  void say(std::size_t i, std::string_view line);
  // Closes client i (delivers what is queued first).
  void close(std::size_t i);
  std::size_t open_count() const;
  event_loop& loop() noexcept { return loop_; }

 private:
  endpoint server_;
  std::string prefix_;
  event_loop loop_;
  std::vector<std::unique_ptr<member>> members_;
  std::size_t connected_ = 0;
  std::unique_ptr<stream_client> client_;
};

}  // namespace netkit::test
