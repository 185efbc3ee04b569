#include "registry.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit::servers {

// The registry: one line per model file, each defining the function named here.
std::vector<server_model> event_loop_models();  // event_loop_echo.cpp: select ... uring
server_model multi_reactor_model();             // multi_reactor_echo.cpp
server_model prefork_model();                   // prefork_echo.cpp
server_model iterative_model();                 // iterative_echo.cpp
server_model fork_model();                      // fork_echo.cpp
server_model thread_model();                    // thread_echo.cpp
server_model nonblocking_model();               // nonblocking_echo.cpp
server_model aio_model();                       // aio_echo.cpp
server_model dgram_blocking_model();            // dgram_blocking_echo.cpp
server_model dgram_epoll_model();               // dgram_epoll_echo.cpp
server_model dgram_sigio_model();               // dgram_sigio_echo.cpp

const std::vector<server_model>& server_models() {
  static const std::vector<server_model> models = [] {
    auto all = event_loop_models();
    for (auto&& m : {multi_reactor_model(), prefork_model(), iterative_model(), fork_model(),
                     thread_model(), nonblocking_model(), aio_model(), dgram_blocking_model(),
                     dgram_epoll_model(), dgram_sigio_model()})
      all.push_back(m);
    // The listing and the error messages show a family's models together.
    std::stable_partition(all.begin(), all.end(), [](const server_model& m) {
      return m.family == transport_family::stream;
    });
    return all;
  }();
  return models;
}

namespace {

constexpr std::array<std::string_view, common_option_count> common_flags = {
    "--codec",      "--mode",       "--reuse-port", "--max-conns",    "--idle-timeout",
    "--high-water", "--hard-limit", "--threads",    "--max-datagram",
};

std::string_view schemes_of(transport_family f) noexcept {
  return f == transport_family::stream ? "tcp:// and unix://" : "udp:// and unix-dgram://";
}

std::string names_of(transport_family f) {
  std::string out;
  for (const auto& m : server_models())
    if (m.family == f) out += (out.empty() ? "" : ", ") + m.name;
  return out;
}

bool takes_flag(const server_model& m, std::string_view flag) {
  for (std::size_t i = 0; i < common_option_count; ++i)
    if (common_flags[i] == flag) return m.takes.contains(static_cast<common_option>(i));
  return m.takes_own(flag);
}

[[noreturn]] void refuse_option(std::string_view flag) {
  // Naming the transports too: "epoll" is a stream and a datagram model.
  std::vector<transport_family> families;
  for (const auto& m : server_models())
    if (takes_flag(m, flag) &&
        std::find(families.begin(), families.end(), m.family) == families.end())
      families.push_back(m.family);
  std::string where;
  if (families.size() == 1) where = fmt::format(" on {}", schemes_of(families.front()));
  throw usage_error(fmt::format("{} is only for --model {}{}", flag, models_taking(flag), where));
}

[[noreturn]] void refuse_transport(const server_model& m, const endpoint& listen) {
  throw usage_error(fmt::format("--model {} serves {}, not {}", m.name, m.describe_transports(),
                                listen.to_uri()));
}

}  // namespace

transport_family family_of(transport t) noexcept {
  return is_stream(t) ? transport_family::stream : transport_family::datagram;
}

std::string_view describe_family(transport_family f) noexcept {
  return f == transport_family::stream ? "tcp:// and unix:// (stream)"
                                       : "udp:// and unix-dgram:// (datagram)";
}

std::string_view flag_of(common_option o) noexcept {
  return common_flags[static_cast<std::size_t>(o)];
}

bool server_model::takes_own(std::string_view flag) const noexcept {
  return std::any_of(own_options.begin(), own_options.end(),
                     [flag](const model_option& o) { return o.flag == flag; });
}

bool server_model::serves(transport t) const noexcept {
  if (family_of(t) != family) return false;
  return transports.empty() ||
         std::find(transports.begin(), transports.end(), t) != transports.end();
}

std::string server_model::describe_transports() const {
  if (transports.empty()) return std::string(describe_family(family));
  std::string out;
  for (auto t : transports)
    out += fmt::format("{}{}://", out.empty() ? "" : " and ", scheme_of(t));
  return fmt::format("{} ({})", out, family == transport_family::stream ? "stream" : "datagram");
}

namespace {

const model_option& declared_option(const server_model& model, std::string_view flag) {
  auto declared = std::find_if(model.own_options.begin(), model.own_options.end(),
                               [flag](const model_option& o) { return o.flag == flag; });
  if (declared == model.own_options.end())
    throw std::logic_error(fmt::format("model {} declares no option {}", model.name, flag));
  return *declared;
}

}  // namespace

std::size_t model_settings::own_option(const server_model& model, std::string_view flag) const {
  const auto& declared = declared_option(model, flag);
  if (auto given = own.find(flag); given != own.end()) return given->second;
  return declared.default_value;
}

std::string_view model_settings::own_choice(const server_model& model,
                                            std::string_view flag) const {
  const auto& declared = declared_option(model, flag);
  auto index = own_option(model, flag);
  if (index >= declared.choices.size())
    throw std::logic_error(fmt::format("option {} of model {} is not a choice", flag, model.name));
  return declared.choices[index];
}

const server_model& find_model(std::string_view name, const endpoint& listen) {
  auto family = family_of(listen.kind());
  const server_model* other_family = nullptr;
  for (const auto& m : server_models()) {
    if (m.name != name) continue;
    if (m.family == family) {
      if (!m.serves(listen.kind())) refuse_transport(m, listen);
      return m;
    }
    other_family = &m;
  }
  if (other_family) refuse_transport(*other_family, listen);
  throw usage_error(fmt::format("unknown I/O model '{}' (stream: {}; datagram: {})", name,
                                names_of(transport_family::stream),
                                names_of(transport_family::datagram)));
}

std::string_view default_model(const endpoint& listen) {
  // Datagram servers are blocking by default: the classic recvfrom loop.
  return family_of(listen.kind()) == transport_family::stream ? "epoll" : "blocking";
}

void check_options(const server_model& model, const std::vector<common_option>& given_common,
                   const std::vector<std::string>& given_own) {
  for (auto o : given_common)
    if (!model.takes.contains(o)) refuse_option(flag_of(o));
  for (const auto& flag : given_own)
    if (!model.takes_own(flag)) refuse_option(flag);
}

std::vector<model_option> own_options() {
  std::vector<model_option> out;
  for (const auto& m : server_models())
    for (const auto& o : m.own_options)
      if (std::none_of(out.begin(), out.end(),
                       [&o](const model_option& seen) { return seen.flag == o.flag; }))
        out.push_back(o);
  return out;
}

std::string models_taking(std::string_view flag) {
  std::string out;
  for (const auto& m : server_models())
    if (takes_flag(m, flag)) out += (out.empty() ? "" : ", ") + m.name;
  return out;
}

std::string list_models_text() {
  std::string out;
  for (auto family : {transport_family::stream, transport_family::datagram}) {
    out += fmt::format(
        "{} models ({}):\n", family == transport_family::stream ? "stream" : "datagram",
        family == transport_family::stream ? "tcp://, unix://" : "udp://, unix-dgram://");
    for (const auto& m : server_models()) {
      if (m.family != family) continue;
      auto a = m.probe ? m.probe(m) : model_availability{};
      out +=
          fmt::format("  {:<13} {:<11} {}{}{}\n", m.name, a.available ? "available" : "UNAVAILABLE",
                      m.description, a.available ? "" : fmt::format(" [{}]", a.problem),
                      a.detail.empty() ? "" : fmt::format(" ({})", a.detail));
    }
  }
  return out;
}

int run_model(const server_model& model, const model_settings& settings) {
  if (!model.serves(settings.listen.kind())) refuse_transport(model, settings.listen);
  return model.run(model, settings);
}

}  // namespace netkit::servers
