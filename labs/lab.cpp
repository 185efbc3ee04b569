#include "lab.hpp"

#include <algorithm>
#include <exception>

namespace netkit::labs {

std::string_view outcome_name(outcome o) noexcept {
  switch (o) {
    case outcome::pass:
      return "pass";
    case outcome::fail:
      return "fail";
    case outcome::not_provoked:
      return "not-provoked";
  }
  return "?";
}

bool lab_report::passed() const noexcept {
  return std::none_of(checks.begin(), checks.end(),
                      [](const check& c) { return c.result == outcome::fail; });
}

lab_context::lab_context(lab_report& report, const lab_options& options)
    : report_(report), options_(options), start_(std::chrono::steady_clock::now()) {}

std::chrono::steady_clock::duration lab_context::elapsed() const noexcept {
  return std::chrono::steady_clock::now() - start_;
}

void lab_context::add_note(std::string text) {
  double ms = std::chrono::duration<double, std::milli>(elapsed()).count();
  report_.observations.push_back(fmt::format("+{:7.1f} ms  {}", ms, text));
}

void lab_context::expect(std::string name, std::string expected, std::string observed, bool ok) {
  report_.checks.push_back({std::move(name), std::move(expected), std::move(observed),
                            ok ? outcome::pass : outcome::fail});
}

void lab_context::not_provoked(std::string name, std::string expected, std::string observed) {
  report_.checks.push_back(
      {std::move(name), std::move(expected), std::move(observed), outcome::not_provoked});
}

inspect::socket_table lab_context::tcp_table(const inspect::socket_query& query) {
  auto q = query;
  q.source = options_.table;
  auto table = inspect::list_tcp_sockets(q);
  if (!source_noted_) {
    source_noted_ = true;
    if (table.source == inspect::table_source::netlink)
      note("socket states from the kernel via netlink sock_diag (INET_DIAG)");
    else if (table.fallback_reason.empty())
      note("socket states from the kernel via /proc/net/tcp{{,6}} (as asked)");
    else
      note("socket states from /proc/net/tcp{{,6}}: netlink refused ({})", table.fallback_reason);
  }
  return table;
}

const lab* find_lab(std::string_view name) {
  for (const auto& l : all_labs())
    if (l.name == name) return &l;
  return nullptr;
}

lab_report run_lab(const lab& l, const lab_options& options) {
  lab_report report;
  report.name = l.name;
  report.summary = l.summary;
  report.look_for.assign(l.look_for.begin(), l.look_for.end());
  lab_context ctx(report, options);
  try {
    l.run(ctx);
  } catch (const std::exception& e) {
    ctx.expect("the lab runs to the end", "no OS call fails", e.what(), false);
  }
  return report;
}

}  // namespace netkit::labs
