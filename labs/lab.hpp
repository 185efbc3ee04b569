// A lab: a short, self-contained experiment on loopback that says what to look for, then
// reports what the kernel actually did. One file per lab (labs/*.cpp), listed in
// registry.cpp; `netkit lab` runs them and the integration tests assert their outcomes.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "netkit/inspect/socket_table.hpp"

namespace netkit::labs {

enum class outcome {
  pass,
  fail,
  not_provoked,  // the kernel or environment would not produce the situation: said, not faked
};

std::string_view outcome_name(outcome o) noexcept;  // "pass", "fail", "not-provoked"

// One thing the lab expected, and what it saw instead or as well.
struct check {
  std::string name;
  std::string expected;
  std::string observed;
  outcome result = outcome::fail;
};

struct lab_report {
  std::string name;
  std::string summary;
  std::vector<std::string> look_for;      // what to look for, said before anything runs
  std::vector<std::string> observations;  // what the kernel did, in order, time-stamped
  std::vector<check> checks;
  // No check failed (a situation not provoked is reported, but is not a failure).
  bool passed() const noexcept;
};

struct lab_options {
  // Where socket states come from (sock_diag, or /proc/net/tcp{,6} forced).
  inspect::table_source table = inspect::table_source::automatic;
};

// What a lab writes its findings into while it runs. Not thread-safe; one per run.
class lab_context {
 public:
  lab_context(lab_report& report, const lab_options& options);

  const lab_options& options() const noexcept { return options_; }
  std::chrono::steady_clock::duration elapsed() const noexcept;

  // A time-stamped observation ("+  1.2 ms  client  FIN_WAIT_1 ...").
  template <typename... Args>
  void note(fmt::format_string<Args...> format, Args&&... args) {
    add_note(fmt::format(format, std::forward<Args>(args)...));
  }
  // A check that passes when `ok`.
  void expect(std::string name, std::string expected, std::string observed, bool ok);
  // A situation the lab tried and failed to provoke; `observed` says what happened instead.
  void not_provoked(std::string name, std::string expected, std::string observed);

  // The kernel's TCP table, from options().table; notes once where it came from.
  inspect::socket_table tcp_table(const inspect::socket_query& query = {});

 private:
  void add_note(std::string text);

  lab_report& report_;
  lab_options options_;
  std::chrono::steady_clock::time_point start_;
  bool source_noted_ = false;
};

struct lab {
  std::string_view name;
  std::string_view summary;
  std::vector<std::string_view> look_for;  // two or three lines
  void (*run)(lab_context&);
};

// Every lab, in the order `netkit lab --list` shows them.
const std::vector<lab>& all_labs();
const lab* find_lab(std::string_view name);

// Runs one lab. An exception from the lab (an OS call that failed) becomes a failed check
// naming it; the lab's own RAII has cleaned up by then.
lab_report run_lab(const lab& l, const lab_options& options = {});

// The report for a person, and as one JSON object (no trailing newline).
std::string format_text(const lab_report& r);
std::string format_json(const lab_report& r);
// One lab's name and summary as a JSON object, for `netkit lab --list --json`.
std::string format_json(const lab& l);

}  // namespace netkit::labs
