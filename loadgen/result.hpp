// What a run measured: counters, errors by kind and the latency histogram of every worker
// (thread or process), merged; and its two outputs, the text summary and --json.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "config.hpp"
#include "histogram.hpp"

namespace netkit::loadgen {

// Error kinds by name: "refused", "reset", "timeout", "addr_not_avail", "closed" (the
// target closed a connection), "protocol" (a reply that is not what was sent), "backlog"
// (rate mode: requests not sent because too many were unanswered), "no_reply" (connected,
// but not one reply in the whole window), else an errno name.
std::string error_kind(int err);

struct bench_result {
  std::uint64_t messages = 0;  // replies received whole (pingpong: bytes / frame size)
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t connects = 0;        // connections established (churn: each cycle's)
  std::size_t established = 0;       // active connections up when measuring began
  std::size_t idle_established = 0;  // idle ones
  double connect_s = 0;  // connect phase: start to last connection up (the slowest worker's)
  std::map<std::string, std::uint64_t, std::less<>> errors;
  histogram latency;         // nanoseconds, per message
  double seconds = 0;        // length of the measured window (the longest worker's)
  double client_cpu_s = 0;   // the generator's own CPU time in the window, all workers
  bool target_lost = false;  // every active connection of some worker was gone early
  bool interrupted = false;  // a stop signal ended the run early
  // --server-pid: the server tree's CPU time over the window (measured by the parent
  // process only, so not serialized between workers).
  std::optional<double> server_cpu_s;
  std::optional<std::uint64_t> server_sleeps;  // its voluntary context switches, same window

  void count_error(std::string_view kind, std::uint64_t n = 1);
  std::uint64_t error_total() const noexcept;
  // Adds another worker's figures (run concurrently: the window is the longer one).
  void merge(const bench_result& other);
  // One line for a worker process to hand to its parent; parse() throws
  // std::invalid_argument on a malformed one.
  std::string serialize() const;
  static bench_result parse(std::string_view line);
};

// The human summary: throughput, latency percentiles, errors and their advice.
std::string format_text(const bench_config& config, const bench_result& result);
// Every figure and the full configuration, as one JSON object (with a trailing newline).
std::string format_json(const bench_config& config, const bench_result& result);
// The exit status: 0 for a whole clean run; 1 when errors occurred, the target went away or
// a stop signal cut the run short (its figures are partial).
int exit_status(const bench_result& result) noexcept;

}  // namespace netkit::loadgen
