// rr, pingpong and rate over stream connections (tcp://, unix://): the library's
// stream_client does the connecting (connector: timeout, source address) and the I/O on
// every backend; this file only decides what to send and times the replies. The client's
// codec is raw: requests are framed once, up front, and a reply is recognised by its
// length (an echo returns the frame it was sent), so the hot path is a byte count, a
// clock read and one send per message.
#include <algorithm>
#include <deque>
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

struct lane {
  bool open = false;
  std::size_t received = 0;     // bytes of the reply in progress
  clock::time_point sent_at{};  // rr/pingpong: when the outstanding block left
  std::deque<clock::time_point> intended;  // rate: intended times of unanswered requests
};

class stream_worker {
 public:
  stream_worker(const bench_config& config, const worker_plan& plan, phase_sync& sync,
                worker_progress& progress)
      : config_(config),
        plan_(plan),
        sync_(sync),
        progress_(progress),
        loop_(config.model),
        request_(request_bytes(config)),
        frame_(request_.size()),
        max_backlog_(std::max<std::size_t>(1, backlog_bytes / frame_)) {
    const std::size_t groups = std::max<std::size_t>(1, config.sources.size());
    for (std::size_t g = 0; g < groups; ++g) {
      client_options active;
      active.codec = codec_spec{codec_kind::raw};
      active.connecting.timeout = config.timeout;
      active.reconnect = config.reconnect;
      if (!config.sources.empty()) active.connecting.source = config.sources[g];
      // A closed-loop connection always waits for something: silence is a stall.
      if (config.mode != bench_mode::rate) active.idle_timeout = config.timeout;
      client_options idle = active;
      idle.idle_timeout = std::chrono::milliseconds(0);
      idle.reconnect = false;
      clients_.push_back(make_stream_client(loop_, active, active_handler(g)));
      idle_clients_.push_back(make_stream_client(loop_, idle, idle_handler()));
      lanes_.emplace_back();
    }
  }

  ~stream_worker() {
    finished_ = true;
    clients_.clear();
    idle_clients_.clear();
  }

  bench_result run() {
    to_connect_idle_ = plan_.idle;
    to_connect_ = plan_.connections;
    connect_more();
    // Bounded: each connect ends within its timeout (and retries), or the run is stopped.
    while (pending_connects() > 0 && !sync_.stopped())
      loop_.run_once(std::chrono::milliseconds(100));
    result_.established = open_;
    result_.idle_established = idle_open_;
    auto start = sync_.ready_and_wait(loop_);
    if (!start) {
      result_.interrupted = true;
      return result_;
    }
    measure_from_ = *start + config_.warmup;
    end_ = measure_from_ + config_.duration;
    if (open_ == 0) {
      result_.target_lost = true;
      return result_;
    }
    loop_.run_after(*start - clock::now(), [this] { begin_traffic(); });
    loop_.run_after(measure_from_ - clock::now(), [this] {
      result_.messages = result_.bytes_sent = result_.bytes_received = 0;
      result_.latency.clear();
      measuring_ = true;
    });
    loop_.run_after(end_ - clock::now(), [this] { finish(); });
    loop_.run_every(std::chrono::milliseconds(200), [this] { publish(progress_, result_); });
    loop_.run();
    if (!finished_) {  // stopped from outside
      result_.interrupted = sync_.stopped();
      stop_clock();
    }
    publish(progress_, result_);
    return result_;
  }

 private:
  std::size_t pending_connects() const noexcept {
    return to_connect_ + to_connect_idle_ + in_flight_;
  }

  void connect_more() {
    while (in_flight_ < max_connects_in_flight && to_connect_idle_ > 0) {
      --to_connect_idle_;
      ++in_flight_;
      idle_clients_[next_group_++ % idle_clients_.size()]->connect(config_.target);
    }
    while (in_flight_ < max_connects_in_flight && to_connect_ > 0) {
      --to_connect_;
      ++in_flight_;
      clients_[next_group_++ % clients_.size()]->connect(config_.target);
    }
  }

  void connect_done() {
    if (in_flight_ > 0) --in_flight_;
    connect_more();
  }

  void note_failed(const sys_error& error) {
    result_.count_error(error_kind(error.errno_value()));
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
      if (!finished_) count_close(why);
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
      ++result_.connects;
      if (!traffic_) {
        connect_done();
      } else {
        active_.push_back({group, c.id()});
        if (config_.mode != bench_mode::rate) send_block(c, l, clock::now());
      }
    };
    h.on_message = [this, group](connection& c, std::span<const std::byte> bytes) {
      on_bytes(c, lane_of(group, c), bytes);
    };
    h.on_close = [this, group](connection& c, close_reason why) {
      lane_of(group, c).open = false;
      --open_;
      if (finished_) return;
      count_close(why);
      if (traffic_ && open_ == 0 && !config_.reconnect) {
        result_.target_lost = true;
        finish();
      }
    };
    h.on_connect_failed = [this](stream_client&, const endpoint&, const sys_error& e) {
      note_failed(e);
      if (!traffic_) connect_done();
    };
    return h;
  }

  void count_close(close_reason why) {
    switch (why) {
      case close_reason::peer_closed:
        result_.count_error("closed");
        break;
      case close_reason::reset:
        result_.count_error("reset");
        break;
      case close_reason::idle_timeout:
        result_.count_error("timeout");
        break;
      case close_reason::protocol_error:
        result_.count_error("protocol");
        break;
      case close_reason::output_overflow:
        result_.count_error("overflow");
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
    traffic_ = true;
    const auto now = clock::now();
    for (std::size_t g = 0; g < clients_.size(); ++g)
      clients_[g]->for_each([&](connection& c) {
        active_.push_back({g, c.id()});
        if (config_.mode != bench_mode::rate) send_block(c, lane_of(g, c), now);
      });
    if (config_.mode == bench_mode::rate && plan_.rate > 0) {
      schedule_ = std::make_unique<arrivals>(config_.spacing_kind, plan_.rate, plan_.seed, now);
      timer_ = std::make_unique<precise_timer>(loop_, [this] { send_due(); });
      timer_->arm(schedule_->next());
    }
  }

  void send_block(connection& c, lane& l, clock::time_point now) {
    l.sent_at = now;
    c.send(std::span<const std::byte>(request_));
    result_.bytes_sent += frame_;
  }

  // Rate mode: every request whose intended time has come, each on the next connection in
  // turn; a connection lost meanwhile is skipped (its requests go to the others).
  void send_due() {
    const auto now = clock::now();
    // Bounded: the requests due by now, at most one timer period's worth per connection.
    while (schedule_->next() <= now && !active_.empty()) {
      const auto intended = schedule_->next();
      schedule_->advance();
      bool sent = false;
      for (std::size_t tries = 0; tries < active_.size() && !sent; ++tries) {
        auto [group, id] = active_[next_active_++ % active_.size()];
        auto* c = clients_[group]->find(id);
        if (c == nullptr) continue;
        auto& l = lane_of(group, *c);
        if (l.intended.size() >= max_backlog_) {
          result_.count_error("backlog");
          sent = true;
          continue;
        }
        l.intended.push_back(intended);
        c->send(std::span<const std::byte>(request_));
        result_.bytes_sent += frame_;
        sent = true;
      }
      if (!sent) break;
    }
    if (!finished_) timer_->arm(schedule_->next());
  }

  void on_bytes(connection& c, lane& l, std::span<const std::byte> bytes) {
    const auto now = clock::now();
    result_.bytes_received += bytes.size();
    l.received += bytes.size();
    switch (config_.mode) {
      case bench_mode::pingpong:
        // The muduo ping-pong: whatever came back goes out again at once.
        c.send(bytes);
        result_.bytes_sent += bytes.size();
        while (l.received >= frame_) {
          l.received -= frame_;
          record(now - l.sent_at);
          l.sent_at = now;
        }
        break;
      case bench_mode::rr:
        if (l.received > frame_) {
          result_.count_error("protocol");
          c.close();
          return;
        }
        if (l.received == frame_) {
          l.received = 0;
          record(now - l.sent_at);
          if (traffic_ && !finished_) send_block(c, l, now);
        }
        break;
      case bench_mode::rate:
        while (l.received >= frame_) {
          l.received -= frame_;
          if (l.intended.empty()) {
            result_.count_error("protocol");
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

  void record(clock::duration latency) {
    ++result_.messages;
    result_.latency.record(static_cast<std::uint64_t>(
        std::max<std::int64_t>(0, std::chrono::nanoseconds(latency).count())));
  }

  void stop_clock() {
    const auto now = std::min(clock::now(), end_);
    // Ended inside the warm-up: nothing was measured.
    result_.seconds =
        measuring_ ? std::chrono::duration<double>(now - measure_from_).count() : 0.0;
  }

  void finish() {
    if (finished_) return;
    stop_clock();
    finished_ = true;
    timer_.reset();
    loop_.stop();
  }

  const bench_config& config_;
  worker_plan plan_;
  phase_sync& sync_;
  worker_progress& progress_;
  event_loop loop_;
  std::vector<std::byte> request_;
  std::size_t frame_;
  std::size_t max_backlog_;
  std::vector<std::unique_ptr<stream_client>> clients_, idle_clients_;
  std::vector<std::vector<lane>> lanes_;  // [group][slot]
  std::vector<std::pair<std::size_t, conn_id>> active_;
  std::size_t next_active_ = 0;
  std::size_t next_group_ = 0;
  std::size_t to_connect_ = 0, to_connect_idle_ = 0, in_flight_ = 0;
  std::size_t open_ = 0, idle_open_ = 0;
  bool traffic_ = false, measuring_ = false, finished_ = false;
  clock::time_point measure_from_{}, end_{};
  std::unique_ptr<arrivals> schedule_;
  std::unique_ptr<precise_timer> timer_;
  std::string first_error_;
  bench_result result_;
};

}  // namespace

bench_result run_stream_worker(const bench_config& config, const worker_plan& plan,
                               phase_sync& sync, worker_progress& progress) {
  stream_worker w(config, plan, sync, progress);
  return w.run();
}

}  // namespace netkit::loadgen::detail
