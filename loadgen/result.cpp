#include "result.hpp"

#include <cerrno>
#include <stdexcept>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit::loadgen {

std::string error_kind(int err) {
  switch (err) {
    case ECONNREFUSED:
      return "refused";
    case ECONNRESET:
    case EPIPE:
      return "reset";
    case ETIMEDOUT:
      return "timeout";
    case EADDRNOTAVAIL:
      return "addr_not_avail";
    default:
      return errno_name(err);
  }
}

void bench_result::count_error(std::string_view kind, std::uint64_t n) {
  auto it = errors.find(kind);
  if (it == errors.end()) it = errors.emplace(std::string(kind), 0).first;
  it->second += n;
}

std::uint64_t bench_result::error_total() const noexcept {
  std::uint64_t total = 0;
  for (const auto& [kind, n] : errors)
    total += n;
  return total;
}

void bench_result::merge(const bench_result& o) {
  messages += o.messages;
  bytes_sent += o.bytes_sent;
  bytes_received += o.bytes_received;
  connects += o.connects;
  established += o.established;
  idle_established += o.idle_established;
  for (const auto& [kind, n] : o.errors)
    count_error(kind, n);
  latency.merge(o.latency);
  seconds = std::max(seconds, o.seconds);
  connect_s = std::max(connect_s, o.connect_s);
  client_cpu_s += o.client_cpu_s;
  target_lost = target_lost || o.target_lost;
  interrupted = interrupted || o.interrupted;
}

std::string bench_result::serialize() const {
  std::string out =
      fmt::format("{} {} {} {} {} {} {:.9f} {:.9f} {:.9f} {} {} {}", messages, bytes_sent,
                  bytes_received, connects, established, idle_established, seconds, connect_s,
                  client_cpu_s, target_lost ? 1 : 0, interrupted ? 1 : 0, errors.size());
  for (const auto& [kind, n] : errors)
    out += fmt::format(" {} {}", kind, n);
  return out + " | " + latency.serialize();
}

bench_result bench_result::parse(std::string_view line) {
  const auto bar = line.find(" | ");
  if (bar == std::string_view::npos) throw std::invalid_argument("malformed worker result");
  const std::string head(line.substr(0, bar));
  bench_result r;
  int lost = 0, interrupted = 0, consumed = 0;
  std::size_t kinds = 0;
  if (std::sscanf(head.c_str(), "%lu %lu %lu %lu %zu %zu %lf %lf %lf %d %d %zu%n", &r.messages,
                  &r.bytes_sent, &r.bytes_received, &r.connects, &r.established,
                  &r.idle_established, &r.seconds, &r.connect_s, &r.client_cpu_s, &lost,
                  &interrupted, &kinds, &consumed) != 12)
    throw std::invalid_argument("malformed worker result");
  const char* rest = head.c_str() + consumed;
  for (std::size_t i = 0; i < kinds; ++i) {
    char kind[64];
    std::uint64_t n = 0;
    int used = 0;
    if (std::sscanf(rest, " %63s %lu%n", kind, &n, &used) != 2)
      throw std::invalid_argument("malformed worker result errors");
    r.count_error(kind, n);
    rest += used;
  }
  r.target_lost = lost != 0;
  r.interrupted = interrupted != 0;
  r.latency = histogram::parse(line.substr(bar + 3));
  return r;
}

namespace {

double per_second(double value, double seconds) {
  return seconds > 0 ? value / seconds : 0;
}

double us(std::uint64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

struct percentile_row {
  const char* json;
  const char* text;
  double p;
};
constexpr percentile_row percentiles[] = {{"p50", "p50", 50},
                                          {"p90", "p90", 90},
                                          {"p99", "p99", 99},
                                          {"p99_9", "p99.9", 99.9},
                                          {"p99_99", "p99.99", 99.99}};

std::string advice(const bench_config& c, const bench_result& r) {
  if (r.errors.contains("addr_not_avail"))
    return "ephemeral ports ran out (EADDRNOTAVAIL): spread connections over more source "
           "addresses (--source 127.0.0.1-127.0.0.8), keep connections alive (rr/pingpong "
           "instead of churn), or widen net.ipv4.ip_local_port_range";
  if (r.errors.contains("EMFILE"))
    return "out of descriptors (EMFILE): RLIMIT_NOFILE caps one process; add --processes";
  if (r.target_lost) return "the target went away: its connections closed or reset mid-run";
  if (r.errors.contains("no_reply"))
    return "connections were up but nothing came back during the window: does the server "
           "frame messages as --codec says (netkit echo-server's default is line)?";
  if (c.mode == bench_mode::churn && r.messages == 0 && r.error_total() == 0 && !r.interrupted &&
      r.seconds > 0)
    return fmt::format(
        "not one cycle finished in the window, and none failed: every connector was still "
        "waiting for its connect or its reply. A window longer than --timeout ({} s) turns a "
        "silent server into timeout errors; does it frame messages as --codec says (netkit "
        "echo-server's default is line)?",
        std::chrono::duration<double>(c.timeout).count());
  return {};
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::string format_text(const bench_config& c, const bench_result& r) {
  const double mib = static_cast<double>(r.bytes_received) / (1024.0 * 1024.0);
  std::string out = fmt::format(
      "bench {} {} model={} protocol={} codec={} connections={} window={} idle={} size={} "
      "threads={} processes={}\n",
      to_string(c.mode), c.target.to_uri(), c.model, to_string(c.protocol), c.codec.to_string(),
      c.connections, c.window, c.idle, c.size, c.threads, c.processes);
  out += fmt::format("  {:.3f} s: {} messages, {:.1f} msgs/s, {:.2f} MiB/s received", r.seconds,
                     r.messages, per_second(static_cast<double>(r.messages), r.seconds),
                     per_second(mib, r.seconds));
  if (c.mode == bench_mode::churn)
    out += fmt::format(", {:.1f} connections/s",
                       per_second(static_cast<double>(r.connects), r.seconds));
  out += "\n";
  if (c.mode != bench_mode::churn)
    out += fmt::format("  established {} of {} active, {} of {} idle in {:.3f} s\n", r.established,
                       c.connections, r.idle_established, c.idle, r.connect_s);
  if (r.messages > 0)
    out += fmt::format("  generator CPU {:.3f} s, {:.3f} us per message\n", r.client_cpu_s,
                       r.client_cpu_s * 1e6 / static_cast<double>(r.messages));
  if (r.server_cpu_s && r.messages > 0)
    out += fmt::format(
        "  server CPU (pid {} and its descendants) {:.3f} s, {:.3f} us per message{}\n",
        c.server_pid, *r.server_cpu_s, *r.server_cpu_s * 1e6 / static_cast<double>(r.messages),
        c.mode == bench_mode::churn && r.connects > 0
            ? fmt::format(", {:.3f} us per connection",
                          *r.server_cpu_s * 1e6 / static_cast<double>(r.connects))
            : "");
  if (r.server_sleeps) {
    out += fmt::format("  server slept {} times (pid {}'s voluntary context switches)",
                       *r.server_sleeps, c.server_pid);
    if (c.mode == bench_mode::churn && r.connects > 0)
      out += fmt::format(", {:.3f} per connection",
                         static_cast<double>(*r.server_sleeps) / static_cast<double>(r.connects));
    out += "\n";
  }
  if (r.latency.count() > 0) {
    out += fmt::format("  latency us: min {:.1f}", us(r.latency.min()));
    for (const auto& row : percentiles)
      out += fmt::format(" {} {:.1f}", row.text, us(r.latency.percentile(row.p)));
    out += fmt::format(" max {:.1f}\n", us(r.latency.max()));
  }
  if (r.error_total() == 0) {
    out += "  errors: none\n";
  } else {
    out += "  errors:";
    for (const auto& [kind, n] : r.errors)
      out += fmt::format(" {}={}", kind, n);
    out += "\n";
  }
  if (auto a = advice(c, r); !a.empty()) out += "  note: " + a + "\n";
  if (r.interrupted) out += "  interrupted: partial results\n";
  return out;
}

std::string format_json(const bench_config& c, const bench_result& r) {
  std::string sources = "[";
  for (std::size_t i = 0; i < c.sources.size(); ++i) {
    if (i > 0) sources += ',';
    sources += json_string(c.sources[i].host());
  }
  sources += "]";
  std::string out = "{";
  out += fmt::format(
      "\"config\":{{\"mode\":\"{}\",\"target\":{},\"model\":{},\"protocol\":\"{}\","
      "\"codec\":{},\"connections\":{},\"window\":{},\"idle\":{},\"size\":{},\"frame_size\":{},"
      "\"duration_s\":{:.6f},\"warmup_s\":{:.6f},\"rate\":{},\"spacing\":\"{}\",\"threads\":{},"
      "\"processes\":{},\"sources\":{},\"timeout_ms\":{},\"reconnect\":{},\"seed\":{}}},",
      to_string(c.mode), json_string(c.target.to_uri()), json_string(c.model),
      to_string(c.protocol), json_string(c.codec.to_string()), c.connections, c.window, c.idle,
      c.size, c.frame_size(), std::chrono::duration<double>(c.duration).count(),
      std::chrono::duration<double>(c.warmup).count(), c.rate, to_string(c.spacing_kind), c.threads,
      c.processes, sources, c.timeout.count(), c.reconnect ? "true" : "false", c.seed);
  const double mib = static_cast<double>(r.bytes_received) / (1024.0 * 1024.0);
  out += fmt::format(
      "\"complete\":{},\"target_lost\":{},\"interrupted\":{},\"seconds\":{:.6f},"
      "\"messages\":{},\"msgs_per_s\":{:.3f},\"bytes_sent\":{},\"bytes_received\":{},"
      "\"mib_per_s\":{:.6f},\"connects\":{},\"connects_per_s\":{:.3f},\"established\":{},"
      "\"idle_established\":{},\"connect_s\":{:.6f},\"client_cpu_s\":{:.6f},"
      "\"client_cpu_us_per_msg\":{:.4f},",
      !r.target_lost && !r.interrupted ? "true" : "false", r.target_lost ? "true" : "false",
      r.interrupted ? "true" : "false", r.seconds, r.messages,
      per_second(static_cast<double>(r.messages), r.seconds), r.bytes_sent, r.bytes_received,
      per_second(mib, r.seconds), r.connects,
      per_second(static_cast<double>(r.connects), r.seconds), r.established, r.idle_established,
      r.connect_s, r.client_cpu_s,
      r.messages > 0 ? r.client_cpu_s * 1e6 / static_cast<double>(r.messages) : 0.0);
  // null when not asked for (no --server-pid) or not measurable (the window never began);
  // per connection only in churn mode, where each connection is one cycle (connects counts
  // the cycles that connected in the window, messages those whose reply came back in it).
  if (r.server_cpu_s && r.messages > 0) {
    out += fmt::format(
        "\"server_pid\":{},\"server_cpu_s\":{:.6f},\"server_cpu_us_per_msg\":{:.4f},", c.server_pid,
        *r.server_cpu_s, *r.server_cpu_s * 1e6 / static_cast<double>(r.messages));
  } else {
    out += fmt::format("\"server_pid\":{},\"server_cpu_s\":null,\"server_cpu_us_per_msg\":null,",
                       c.server_pid > 0 ? fmt::format("{}", c.server_pid) : "null");
  }
  if (r.server_cpu_s && c.mode == bench_mode::churn && r.connects > 0) {
    out += fmt::format("\"server_cpu_us_per_conn\":{:.4f},",
                       *r.server_cpu_s * 1e6 / static_cast<double>(r.connects));
  } else {
    out += "\"server_cpu_us_per_conn\":null,";
  }
  // Nearly each sleep of the server ends in a wake-up; on loopback the sender's CPU pays.
  if (r.server_sleeps) {
    out += fmt::format("\"server_sleeps\":{},", *r.server_sleeps);
    out +=
        c.mode == bench_mode::churn && r.connects > 0
            ? fmt::format("\"server_sleeps_per_conn\":{:.4f},",
                          static_cast<double>(*r.server_sleeps) / static_cast<double>(r.connects))
            : "\"server_sleeps_per_conn\":null,";
  } else {
    out += "\"server_sleeps\":null,\"server_sleeps_per_conn\":null,";
  }
  out += fmt::format("\"latency_us\":{{\"count\":{},\"min\":{:.3f},\"mean\":{:.3f}",
                     r.latency.count(), us(r.latency.min()), r.latency.mean() / 1000.0);
  for (const auto& row : percentiles)
    out += fmt::format(",\"{}\":{:.3f}", row.json, us(r.latency.percentile(row.p)));
  out += fmt::format(",\"max\":{:.3f}}},", us(r.latency.max()));
  out += "\"errors\":{";
  bool first = true;
  for (const auto& [kind, n] : r.errors) {
    out += fmt::format("{}{}:{}", first ? "" : ",", json_string(kind), n);
    first = false;
  }
  out += fmt::format("}},\"errors_total\":{},\"note\":{}}}\n", r.error_total(),
                     json_string(advice(c, r)));
  return out;
}

int exit_status(const bench_result& r) noexcept {
  return r.error_total() > 0 || r.target_lost || r.interrupted ? 1 : 0;
}

}  // namespace netkit::loadgen
