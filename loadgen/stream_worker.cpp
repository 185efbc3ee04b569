// rr, pingpong and rate over stream connections (tcp://, unix://): the library's
// stream_client does the connecting (connector: timeout, source address) and the I/O on
// every backend; this file only decides what to send and times the replies. The client's
// codec is raw: requests are framed once, up front, and a reply is recognised by its
// length (an echo returns the frame it was sent), so the hot path is a byte count, a
// clock read and one send per message.
#include <algorithm>
#include <limits>
#include <memory>

#include "netkit/log.hpp"
#include "netkit/net/stream_client.hpp"
#include "worker_common.hpp"

namespace netkit::loadgen::detail {
namespace {

// Connects in progress at once per worker: fills a 10k run quickly without overflowing the
// target's accept queue (somaxconn).
constexpr std::size_t max_connects_in_flight = 256;
// Rate mode: unanswered requests one connection may have before the generator stops sending
// on it (counted as "backlog"): about 8 MiB of requests.
constexpr std::size_t backlog_bytes = 8 << 20;

// Rate mode: intended send times of the unanswered requests of one connection, oldest
// first. A ring that keeps its capacity (no allocation per request, none at all in the
// closed-loop modes).
class time_ring {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  clock::time_point front() const noexcept { return slots_[head_]; }
  void pop_front() noexcept {
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
  }
  void push_back(clock::time_point t) {
    if (size_ == slots_.size()) grow();
    slots_[(head_ + size_) & (slots_.size() - 1)] = t;
    ++size_;
  }

 private:
  void grow() {
    std::vector<clock::time_point> bigger(std::max<std::size_t>(16, slots_.size() * 2));
    for (std::size_t i = 0; i < size_; ++i)
      bigger[i] = slots_[(head_ + i) & (slots_.size() - 1)];
    slots_ = std::move(bigger);
    head_ = 0;
  }
  std::vector<clock::time_point> slots_;  // a power of two in size
  std::size_t head_ = 0, size_ = 0;
};

struct lane {
  bool open = false;
  std::size_t received = 0;     // bytes of the reply in progress
  clock::time_point sent_at{};  // rr: when the outstanding block left
  // pingpong: when each of the --window blocks in flight left, oldest first (a stream
  // returns them in order).
  time_ring sent;
  time_ring intended;  // rate mode
};

class stream_worker final : public worker_base {
 public:
  stream_worker(const bench_config& config, const worker_plan& plan, phase_sync& sync,
                worker_progress& progress)
      : worker_base(config, plan, sync, progress),
        frame_(request().size()),
        max_backlog_(std::max<std::size_t>(1, backlog_bytes / frame_)) {
    const std::size_t groups = std::max<std::size_t>(1, config.sources.size());
    for (std::size_t g = 0; g < groups; ++g) {
      client_options active;
      active.codec = codec_spec{codec_kind::raw};
      active.connecting.timeout = config.timeout;
      active.reconnect = config.reconnect;
      if (config.reconnect) {
        // Keep trying for as long as the run lasts, at most a second apart.
        active.connecting.retries = std::numeric_limits<int>::max();
        active.connecting.backoff_initial = std::chrono::milliseconds(20);
        active.connecting.backoff_max = std::chrono::seconds(1);
      }
      if (!config.sources.empty()) active.connecting.source = config.sources[g];
      // A closed-loop connection always waits for something: silence is a stall.
      if (config.mode != bench_mode::rate) active.idle_timeout = config.timeout;
      client_options idle = active;
      idle.idle_timeout = std::chrono::milliseconds(0);
      idle.reconnect = false;
      clients_.push_back(make_stream_client(loop(), active, active_handler(g)));
      idle_clients_.push_back(make_stream_client(loop(), idle, idle_handler()));
      lanes_.emplace_back();
    }
  }

  ~stream_worker() override {
    closing_ = true;
    clients_.clear();
    idle_clients_.clear();
  }

  bench_result run() {
    to_connect_idle_ = plan_.idle;
    to_connect_ = plan_.connections;
    const auto began = clock::now();
    connect_more();
    // Bounded: each connect ends within its timeout (and retries), or the run is stopped.
    while (pending_connects() > 0 && !stopped_from_outside())
      loop().run_once(std::chrono::milliseconds(100));
    result().established = open_;
    result().idle_established = idle_open_;
    result().connect_s = std::chrono::duration<double>(clock::now() - began).count();
    return run_window([this] { begin_traffic(); });
  }

 private:
  std::size_t pending_connects() const noexcept {
    return to_connect_ + to_connect_idle_ + in_flight_;
  }

  void connect_more() {
    while (in_flight_ < max_connects_in_flight && to_connect_idle_ > 0) {
      --to_connect_idle_;
      ++in_flight_;
      idle_clients_[next_group_++ % idle_clients_.size()]->connect(config().target);
    }
    while (in_flight_ < max_connects_in_flight && to_connect_ > 0) {
      --to_connect_;
      ++in_flight_;
      clients_[next_group_++ % clients_.size()]->connect(config().target);
    }
  }

  void connect_done() {
    if (in_flight_ > 0) --in_flight_;
    connect_more();
  }

  void note_failed(const sys_error& error) {
    result().count_error(error_kind(error.errno_value()));
    if (first_error_.empty()) {
      first_error_ = error.what();
      log(log_level::warning, "{}", first_error_);
    }
  }

  stream_handler idle_handler() {
    stream_handler h;
    h.on_connect = [this](connection&) {
      ++idle_open_;
      connect_done();
    };
    h.on_close = [this](connection&, close_reason why) {
      --idle_open_;
      if (!closing_ && !finished()) count_close(why);
    };
    h.on_connect_failed = [this](stream_client&, const endpoint&, const sys_error& e) {
      note_failed(e);
      connect_done();
    };
    return h;
  }

  stream_handler active_handler(std::size_t group) {
    stream_handler h;
    h.on_connect = [this, group](connection& c) {
      auto& l = lane_of(group, c);
      l = lane{};
      l.open = true;
      ++open_;
      ++result().connects;
      if (!started()) {
        connect_done();
      } else {
        active_.push_back({group, c.id()});
        if (config().mode != bench_mode::rate) send_block(c, l, clock::now());
      }
    };
    h.on_message = [this, group](connection& c, std::span<const std::byte> bytes) {
      on_bytes(c, lane_of(group, c), bytes);
    };
    h.on_close = [this, group](connection& c, close_reason why) {
      auto& l = lane_of(group, c);
      l.open = false;
      --open_;
      std::erase(active_, std::pair{group, c.id()});
      if (closing_ || finished()) return;
      // Rate mode: the requests this connection still owed an answer are lost, not
      // forgotten.
      for (; !l.intended.empty(); l.intended.pop_front())
        result().count_error("lost");
      count_close(why);
      if (started() && open_ == 0 && !config().reconnect) {
        result().target_lost = true;
        finish();
      }
    };
    h.on_connect_failed = [this](stream_client&, const endpoint&, const sys_error& e) {
      note_failed(e);
      if (!started()) connect_done();
    };
    return h;
  }

  void count_close(close_reason why) {
    switch (why) {
      case close_reason::peer_closed:
        result().count_error("closed");
        break;
      case close_reason::reset:
        result().count_error("reset");
        break;
      case close_reason::idle_timeout:
        result().count_error("timeout");
        break;
      case close_reason::protocol_error:
        result().count_error("protocol");
        break;
      case close_reason::output_overflow:
        result().count_error("overflow");
        break;
      case close_reason::server_stopping:
      case close_reason::local:
        break;
    }
  }

  lane& lane_of(std::size_t group, const connection& c) {
    auto& table = lanes_[group];
    if (c.id().slot >= table.size()) table.resize(c.id().slot + 1);
    return table[c.id().slot];
  }

  void begin_traffic() {
    if (open_ == 0) {  // nothing to measure: the target is not there
      result().target_lost = true;
      return finish();
    }
    const auto now = clock::now();
    for (std::size_t g = 0; g < clients_.size(); ++g)
      clients_[g]->for_each([&](connection& c) {
        active_.push_back({g, c.id()});
        if (config().mode != bench_mode::rate) send_block(c, lane_of(g, c), now);
      });
    if (config().mode == bench_mode::rate && plan_.rate > 0) {
      schedule_ = std::make_unique<arrivals>(config().spacing_kind, plan_.rate, plan_.seed, now);
      timer_ = std::make_unique<precise_timer>(loop(), [this] { send_due(); });
      timer_->arm(schedule_->next());
    }
  }

  // The first request of rr, or the --window blocks pingpong keeps in flight.
  void send_block(connection& c, lane& l, clock::time_point now) {
    if (config().mode != bench_mode::pingpong) {
      l.sent_at = now;
      c.send(request());
      result().bytes_sent += frame_;
      return;
    }
    for (std::size_t i = 0; i < config().window; ++i) {
      l.sent.push_back(now);
      c.send(request());
      result().bytes_sent += frame_;
    }
  }

  // Rate mode: every request whose intended time has come, each on the next connection in
  // turn; a connection lost meanwhile is skipped (its requests go to the others).
  void send_due() {
    const auto now = clock::now();
    // Bounded: the requests due by now, at most one timer period's worth per connection.
    // With no connection open (a reconnect under way) the due requests wait, keeping their
    // intended times: sent once one is back, the outage shows in their latency.
    while (schedule_->next() <= now && !active_.empty()) {
      const auto intended = schedule_->next();
      auto [group, id] = active_[next_active_++ % active_.size()];
      auto* c = clients_[group]->find(id);
      if (c == nullptr) {  // closing right now: on_close takes it off the list
        std::erase(active_, std::pair{group, id});
        continue;
      }
      schedule_->advance();
      auto& l = lane_of(group, *c);
      if (l.intended.size() >= max_backlog_) {
        result().count_error("backlog");
        continue;
      }
      l.intended.push_back(intended);
      c->send(request());
      result().bytes_sent += frame_;
    }
    if (!finished()) timer_->arm(schedule_->next());
  }

  void on_bytes(connection& c, lane& l, std::span<const std::byte> bytes) {
    const auto now = clock::now();
    result().bytes_received += bytes.size();
    l.received += bytes.size();
    switch (config().mode) {
      case bench_mode::pingpong:
        // The muduo ping-pong: whatever came back goes out again at once.
        c.send(bytes);
        result().bytes_sent += bytes.size();
        // A block whole again left just now, its last bytes with these: it is the newest
        // in flight.
        while (l.received >= frame_ && !l.sent.empty()) {
          l.received -= frame_;
          record(now - l.sent.front());
          l.sent.pop_front();
          l.sent.push_back(now);
        }
        break;
      case bench_mode::rr:
        if (l.received > frame_) {
          result().count_error("protocol");
          c.close();
          return;
        }
        if (l.received == frame_) {
          l.received = 0;
          record(now - l.sent_at);
          if (running()) send_block(c, l, now);
        }
        break;
      case bench_mode::rate:
        while (l.received >= frame_) {
          l.received -= frame_;
          if (l.intended.empty()) {
            result().count_error("protocol");
            c.close();
            return;
          }
          record(now - l.intended.front());
          l.intended.pop_front();
        }
        break;
      case bench_mode::churn:
        break;
    }
  }

  void on_finish() override {
    timer_.reset();
    // Rate mode: a request still unanswered at the end, long after it was due, is an
    // error, not a missing sample (a server that stops answering must not look fast).
    // One due just now is merely in flight. "Long": --timeout, at most a second.
    const auto now = clock::now();
    const auto overdue = std::min<clock::duration>(config().timeout, std::chrono::seconds(1));
    for (auto& table : lanes_)
      for (auto& l : table)
        for (; !l.intended.empty(); l.intended.pop_front())
          if (now - l.intended.front() >= overdue) result().count_error("unanswered");
  }

  std::size_t frame_;
  std::size_t max_backlog_;
  std::vector<std::unique_ptr<stream_client>> clients_, idle_clients_;
  std::vector<std::vector<lane>> lanes_;  // [group][slot]
  std::vector<std::pair<std::size_t, conn_id>> active_;
  std::size_t next_active_ = 0;
  std::size_t next_group_ = 0;
  std::size_t to_connect_ = 0, to_connect_idle_ = 0, in_flight_ = 0;
  std::size_t open_ = 0, idle_open_ = 0;
  bool closing_ = false;  // the destructor closes the connections: not errors
  std::unique_ptr<arrivals> schedule_;
  std::unique_ptr<precise_timer> timer_;
  std::string first_error_;
};

}  // namespace

const worker_fn run_stream_worker = run_as<stream_worker>;

}  // namespace netkit::loadgen::detail
