// netkit udp-relay: a user-space impairing UDP relay (netem is not available everywhere).
//
// Each client address gets its own upstream socket connected to --forward (a tiny NAT), so
// replies find their way back. Per flow and per direction there is a random stream seeded
// from (--seed, flow number, direction), and every datagram draws the same four numbers
// (loss, duplicate, reorder, jitter) whatever happens to it: the decisions depend only on
// the seed and the order of datagrams in that direction, never on timing.
//
// Counting is done where datagrams leave, by arrival index in their direction, with the
// same rules `netkit echo-client` uses where they arrive: a second copy of an index is
// "duplicated", a first copy sent after a higher index is "reordered", an index never
// sent is "dropped" (or a send error). That is what lets a test compare the two exactly.
#include <signal.h>

#include <charconv>
#include <map>
#include <memory>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "commands.hpp"
#include "netkit/datagram.hpp"
#include "netkit/error.hpp"
#include "netkit/event/loop.hpp"

namespace netkit::cli {

namespace {

using namespace std::chrono_literals;

enum class impair_dir { both, to_server, to_client };

struct relay_args {
  std::string listen, forward;
  double loss = 0, dup = 0, reorder = 0;
  std::string delay = "0";
  std::uint64_t seed = 1;
  std::string impair = "both";
  std::size_t max_flows = 256;
  bool verbose = false;
};

struct delay_spec {
  std::chrono::microseconds base{0}, jitter{0};
};

// "MS", "MS±J", "MS+-J" or "MS~J" (milliseconds, fractions allowed).
delay_spec parse_delay(std::string_view text) {
  auto number = [&](std::string_view s) {
    double v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || v < 0)
      throw usage_error(fmt::format("bad --delay '{}': expected MS or MS±J (milliseconds)", text));
    return std::chrono::microseconds(static_cast<long>(v * 1000));
  };
  for (std::string_view sep : {"\xC2\xB1", "+-", "~"})
    if (auto at = text.find(sep); at != std::string_view::npos)
      return {number(text.substr(0, at)), number(text.substr(at + sep.size()))};
  return {number(text), {}};
}

struct direction_stats {
  std::uint64_t received = 0, forwarded = 0, dropped = 0, duplicated = 0, reordered = 0,
                send_errors = 0, pending = 0;
};

struct relay_config {
  double loss, dup, reorder;
  delay_spec delay;
  bool verbose;
};

// One direction of one flow. Owned by its flow.
class direction {
 public:
  using sender = std::function<io_result(std::span<const std::byte>)>;

  direction(event_loop& loop, const relay_config& cfg, bool impaired, std::seed_seq& seed,
            std::string name, sender send)
      : loop_(loop),
        cfg_(cfg),
        impaired_(impaired),
        rng_(seed),
        name_(std::move(name)),
        send_(std::move(send)) {}

  void on_datagram(std::span<const std::byte> data) {
    auto idx = next_index_++;
    ++stats_.received;
    if (!impaired_) {
      emit(idx, data, 1);
      return;
    }
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    double u_loss = unit(rng_), u_dup = unit(rng_), u_reorder = unit(rng_), u_jitter = unit(rng_);
    if (u_loss < cfg_.loss) {
      ++stats_.dropped;
      if (cfg_.verbose) fmt::print("{} #{}: {} bytes dropped\n", name_, idx, data.size());
      return;
    }
    int copies = u_dup < cfg_.dup ? 2 : 1;
    auto delay =
        cfg_.delay.base + std::chrono::microseconds(static_cast<long>(
                              (2 * u_jitter - 1) * static_cast<double>(cfg_.delay.jitter.count())));
    if (delay.count() < 0) delay = {};
    auto payload = std::make_shared<std::vector<std::byte>>(data.begin(), data.end());
    if (u_reorder < cfg_.reorder && !held_) {
      // Held back until the next datagram of this direction has gone out.
      held_ = held{idx, payload, copies};
      auto hold_for = delay + cfg_.delay.jitter + 50ms;
      loop_.run_after(hold_for, [this, idx] {
        if (held_ && held_->idx == idx) release_held();
      });
      return;
    }
    if (delay.count() == 0) {
      emit(idx, *payload, copies);
      if (held_) release_held();
      return;
    }
    ++stats_.pending;
    loop_.run_after(delay, [this, idx, payload, copies] {
      --stats_.pending;
      emit(idx, *payload, copies);
      if (held_ && held_->idx != idx) release_held();
    });
  }

  const direction_stats& stats() const noexcept { return stats_; }
  std::uint64_t held_count() const noexcept { return held_ ? 1 : 0; }

 private:
  struct held {
    std::uint64_t idx;
    std::shared_ptr<std::vector<std::byte>> payload;
    int copies;
  };

  void release_held() {
    auto h = std::move(*held_);
    held_.reset();
    emit(h.idx, *h.payload, h.copies);
  }

  void emit(std::uint64_t idx, std::span<const std::byte> data, int copies) {
    for (int c = 0; c < copies; ++c) {
      auto r = send_(data);
      if (!r.ok()) {
        ++stats_.send_errors;
        fmt::print(stderr, "{} #{}: send: {}\n", name_, idx, errno_text(r.err));
        continue;
      }
      if (idx >= sent_.size()) sent_.resize(idx + 1, false);
      const char* what = "forwarded";
      if (sent_[idx]) {
        ++stats_.duplicated;
        what = "duplicate";
      } else {
        sent_[idx] = true;
        ++stats_.forwarded;
        if (max_sent_ >= 0 && static_cast<std::int64_t>(idx) < max_sent_) {
          ++stats_.reordered;
          what = "reordered";
        }
        max_sent_ = std::max<std::int64_t>(max_sent_, static_cast<std::int64_t>(idx));
      }
      if (cfg_.verbose) fmt::print("{} #{}: {} bytes {}\n", name_, idx, data.size(), what);
    }
  }

  event_loop& loop_;
  const relay_config& cfg_;
  bool impaired_;
  std::mt19937_64 rng_;
  std::string name_;
  sender send_;
  std::uint64_t next_index_ = 0;
  std::int64_t max_sent_ = -1;
  std::vector<bool> sent_;  // one bit per datagram of this direction
  std::optional<held> held_;
  direction_stats stats_;
};

constexpr int datagrams_per_wakeup = 64;  // then let other sockets and timers run

class relay;

// One client address: its upstream socket and both directions.
class flow final : public io_handler {
 public:
  flow(relay& r, std::uint64_t number, endpoint client);
  ~flow();
  void from_client(std::span<const std::byte> data) { to_server_->on_datagram(data); }
  void on_io(std::uint32_t) override;
  const direction& to_server() const { return *to_server_; }
  const direction& to_client() const { return *to_client_; }

 private:
  relay& relay_;
  endpoint client_;
  unique_fd upstream_;
  watch_id id_;
  std::unique_ptr<direction> to_server_, to_client_;
};

class relay final : public io_handler {
 public:
  relay(const relay_args& a, relay_config cfg)
      : loop_("epoll"),
        cfg_(cfg),
        impair_(a.impair == "to-server"   ? impair_dir::to_server
                : a.impair == "to-client" ? impair_dir::to_client
                                          : impair_dir::both),
        listen_(endpoint::parse(a.listen)),
        forward_(endpoint::parse(a.forward)),
        seed_(a.seed),
        max_flows_(a.max_flows),
        buffer_(65536) {
    if (listen_.kind() != transport::udp || forward_.kind() != transport::udp)
      throw usage_error("udp-relay: --listen and --forward must be udp:// URIs");
    sock_ = listen_on(listen_, io_mode::nonblocking);
    id_ = loop_.watch(sock_.get(), io_read, *this);
  }
  ~relay() {
    flows_.clear();
    loop_.unwatch(id_);
  }

  void run() {
    loop_.stop_on_signals({SIGINT, SIGTERM});
    fmt::print("listening on {} forward {} seed={} impair={}\n",
               local_endpoint(sock_.get(), transport::udp).to_uri(), forward_.to_uri(), seed_,
               impair_ == impair_dir::both        ? "both"
               : impair_ == impair_dir::to_server ? "to-server"
                                                  : "to-client");
    std::fflush(stdout);
    loop_.run();
    print_totals();
  }

  void on_io(std::uint32_t) override {
    for (int i = 0; i < datagrams_per_wakeup; ++i) {
      auto r = recv_datagram(sock_.get(), buffer_, transport::udp);
      if (r.would_block()) return;
      if (!r.ok()) {
        fmt::print(stderr, "recv: {}\n", errno_text(r.err));
        continue;
      }
      if (r.truncated) {
        fmt::print(stderr, "truncated datagram from {} ({} bytes); dropped\n", r.from.to_uri(),
                   r.full_size);
        continue;
      }
      auto key = r.from.to_uri();
      auto it = flows_.find(key);
      if (it == flows_.end()) {
        if (flows_.size() >= max_flows_) {
          ++refused_flows_;
          continue;
        }
        it = flows_.emplace(key, std::make_unique<flow>(*this, flows_.size(), r.from)).first;
        if (cfg_.verbose) fmt::print("flow {}: {}\n", flows_.size() - 1, key);
      }
      it->second->from_client(std::span(buffer_).first(static_cast<std::size_t>(r.n)));
    }
  }

  event_loop& loop() noexcept { return loop_; }
  const relay_config& config() const noexcept { return cfg_; }
  const endpoint& forward() const noexcept { return forward_; }
  int socket() const noexcept { return sock_.get(); }
  std::uint64_t seed() const noexcept { return seed_; }
  bool impaired(bool to_server) const noexcept {
    return impair_ == impair_dir::both ||
           (to_server ? impair_ == impair_dir::to_server : impair_ == impair_dir::to_client);
  }

 private:
  void print_totals() {
    direction_stats up, down;
    std::uint64_t held = 0;
    auto add = [&held](direction_stats& t, const direction& d) {
      const auto& s = d.stats();
      t.received += s.received;
      t.forwarded += s.forwarded;
      t.dropped += s.dropped;
      t.duplicated += s.duplicated;
      t.reordered += s.reordered;
      t.send_errors += s.send_errors;
      t.pending += s.pending;
      held += d.held_count();
    };
    for (auto& [key, f] : flows_) {
      add(up, f->to_server());
      add(down, f->to_client());
    }
    auto line = [](std::string_view name, const direction_stats& s) {
      fmt::print(
          "{}: received={} forwarded={} dropped={} duplicated={} reordered={} "
          "send_errors={} pending={}\n",
          name, s.received, s.forwarded, s.dropped, s.duplicated, s.reordered, s.send_errors,
          s.pending);
    };
    line("to-server", up);
    line("to-client", down);
    fmt::print("flows={} refused_flows={} held_at_exit={}\n", flows_.size(), refused_flows_, held);
    std::fflush(stdout);
  }

  event_loop loop_;
  relay_config cfg_;
  impair_dir impair_;
  endpoint listen_, forward_;
  std::uint64_t seed_;
  std::size_t max_flows_;
  std::uint64_t refused_flows_ = 0;
  unique_fd sock_;
  watch_id id_;
  std::vector<std::byte> buffer_;
  std::map<std::string, std::unique_ptr<flow>> flows_;
};

flow::flow(relay& r, std::uint64_t number, endpoint client)
    : relay_(r),
      client_(std::move(client)),
      upstream_(open_dgram_client(r.forward(), io_mode::nonblocking)) {
  id_ = r.loop().watch(upstream_.get(), io_read, *this);
  std::seed_seq up_seed{r.seed(), number, std::uint64_t{0}};
  std::seed_seq down_seed{r.seed(), number, std::uint64_t{1}};
  auto up_name = fmt::format("flow {} to-server", number);
  auto down_name = fmt::format("flow {} to-client", number);
  int up = upstream_.get();
  to_server_ = std::make_unique<direction>(
      r.loop(), r.config(), r.impaired(true), up_seed, up_name,
      [up](std::span<const std::byte> d) { return send_datagram(up, d); });
  to_client_ = std::make_unique<direction>(
      r.loop(), r.config(), r.impaired(false), down_seed, down_name,
      [this](std::span<const std::byte> d) { return send_datagram(relay_.socket(), d, &client_); });
}

flow::~flow() {
  relay_.loop().unwatch(id_);
}

void flow::on_io(std::uint32_t) {
  std::vector<std::byte> buffer(65536);
  for (int i = 0; i < datagrams_per_wakeup; ++i) {
    auto r = recv_datagram(upstream_.get(), buffer, transport::udp);
    if (r.would_block()) return;
    if (!r.ok()) {
      // ECONNREFUSED: the server is not (or no longer) there; the flow stays.
      fmt::print(stderr, "from {}: {}\n", relay_.forward().to_uri(), errno_text(r.err));
      continue;
    }
    if (r.truncated) continue;
    to_client_->on_datagram(std::span(buffer).first(static_cast<std::size_t>(r.n)));
  }
}

}  // namespace

void add_udp_relay(CLI::App& app) {
  static relay_args args;
  auto* cmd = app.add_subcommand(
      "udp-relay",
      "Impairing UDP relay: drops, duplicates, reorders and delays datagrams, reproducibly "
      "from --seed, and prints what it did (per direction) when stopped by SIGINT/SIGTERM");
  cmd->add_option("--listen", args.listen, "udp://HOST:PORT clients send to (port 0: any)")
      ->required();
  cmd->add_option("--forward", args.forward, "udp://HOST:PORT of the server")->required();
  cmd->add_option("--loss", args.loss, "Probability a datagram is dropped")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--dup", args.dup, "Probability a datagram is sent twice")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--reorder", args.reorder,
                  "Probability a datagram is held back until the next one has gone out")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--delay", args.delay,
                  "Delay in ms, with optional uniform jitter: 20, 20±5, 20+-5")
      ->capture_default_str();
  cmd->add_option("--seed", args.seed, "Seed of every random decision")->capture_default_str();
  cmd->add_option("--impair", args.impair, "Directions impaired: both, to-server or to-client")
      ->check(CLI::IsMember({"both", "to-server", "to-client"}))
      ->capture_default_str();
  cmd->add_option("--max-flows", args.max_flows, "Client addresses served at once (bound)")
      ->capture_default_str();
  cmd->add_flag("--verbose", args.verbose, "One line per datagram: index and fate");
  cmd->callback([] {
    relay_config cfg{args.loss, args.dup, args.reorder, parse_delay(args.delay), args.verbose};
    relay r(args, cfg);
    r.run();
  });
}

}  // namespace netkit::cli
