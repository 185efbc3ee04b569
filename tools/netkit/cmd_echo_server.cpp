// netkit echo-server: the command line of the server-model registry (servers/registry.hpp).
// Which options a model takes, the --model list, --list-models and the checks all come
// from the registry; this file only maps command-line text to model_settings.
#include <sys/types.h>

#include <array>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "registry.hpp"

namespace netkit::cli {

namespace {

struct echo_server_args {
  std::string listen = "tcp://127.0.0.1:9000";
  std::string model;  // empty: the registry's default for the endpoint
  std::string codec = "line";
  std::size_t max_conns = 0;
  double idle_timeout = 0;
  std::size_t high_water = 1 << 20;
  std::size_t hard_limit = 16 << 20;
  bool reuse_port = false;
  std::size_t threads = 1;
  std::string mode;  // octal, for Unix socket files
  std::size_t max_datagram = 65536;
  std::map<std::string, std::size_t, std::less<>> own;        // the models' own options by flag
  std::map<std::string, std::string, std::less<>> own_words;  // choice options, as written
  bool list_models = false;
  bool verbose = false;
};

// The options as CLI11 parsed them, to tell which were given.
struct given_options {
  std::array<CLI::Option*, servers::common_option_count> common{};
  std::vector<std::pair<std::string, CLI::Option*>> own;
  CLI::Option* model = nullptr;
};

std::optional<mode_t> parse_mode(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::size_t end = 0;
  unsigned long value = 0;
  try {
    value = std::stoul(text, &end, 8);
  } catch (const std::exception&) {
    end = 0;
  }
  if (end != text.size() || value > 07777)
    throw usage_error(fmt::format("--mode '{}' is not an octal file mode such as 0660", text));
  return static_cast<mode_t>(value);
}

// An own option's value: a count as given, a choice as the index of its word.
std::size_t own_value(const echo_server_args& args, const std::string& flag) {
  auto word = args.own_words.find(flag);
  if (word == args.own_words.end()) return args.own.find(flag)->second;
  for (const auto& o : servers::own_options())
    if (o.flag == flag)
      for (std::size_t i = 0; i < o.choices.size(); ++i)
        if (o.choices[i] == word->second) return i;
  throw std::logic_error("unchecked choice for " + flag);
}

int run(const echo_server_args& args, const given_options& given) {
  if (args.list_models) {
    fmt::print("{}", servers::list_models_text());
    return 0;
  }
  if (args.verbose) set_log_level(log_level::debug);
  auto listen = endpoint::parse(args.listen);
  const auto& model = servers::find_model(
      given.model->count() > 0 ? std::string_view(args.model) : servers::default_model(listen),
      listen);

  std::vector<servers::common_option> common;
  for (std::size_t i = 0; i < given.common.size(); ++i)
    if (given.common[i]->count() > 0) common.push_back(static_cast<servers::common_option>(i));
  std::vector<std::string> own;
  for (const auto& [flag, option] : given.own)
    if (option->count() > 0) own.push_back(flag);
  servers::check_options(model, common, own);

  servers::model_settings settings;
  settings.listen = listen;
  // A datagram is its own frame: datagram models echo it (raw) unless told --codec sockperf.
  const bool codec_given =
      given.common[static_cast<std::size_t>(servers::common_option::codec)]->count() > 0;
  settings.codec = codec_spec::parse(
      codec_given || model.family == servers::transport_family::stream ? args.codec : "raw");
  if (model.family == servers::transport_family::datagram &&
      settings.codec.kind != codec_kind::raw && settings.codec.kind != codec_kind::sockperf)
    throw usage_error(fmt::format(
        "--codec {} is for streams: a datagram is its own frame; datagram models take raw "
        "(echo, the default) or sockperf",
        settings.codec.to_string()));
  settings.unix_mode = parse_mode(args.mode);
  settings.reuse_port = args.reuse_port;
  settings.max_conns = args.max_conns;
  settings.idle_timeout = std::chrono::milliseconds(static_cast<long>(args.idle_timeout * 1000));
  settings.high_water = args.high_water;
  settings.hard_limit = args.hard_limit;
  if (given.common[static_cast<std::size_t>(servers::common_option::threads)]->count() > 0)
    settings.threads = args.threads;
  settings.max_datagram = args.max_datagram;
  settings.verbose = args.verbose;
  for (const auto& flag : own)
    settings.own.emplace(flag, own_value(args, flag));
  return servers::run_model(model, settings);
}

// " [--model A, B]" for an option only some models take; "" when every model does.
std::string for_models(std::string_view flag) {
  auto takers = servers::models_taking(flag);
  std::string every;
  for (const auto& m : servers::server_models())
    every += (every.empty() ? "" : ", ") + m.name;
  return takers == every ? "" : fmt::format(" [--model {}]", takers);
}

std::string model_help() {
  std::string stream, dgram;
  for (const auto& m : servers::server_models()) {
    auto& list = m.family == servers::transport_family::stream ? stream : dgram;
    list += (list.empty() ? "" : ", ") + m.name;
  }
  return fmt::format(
      "I/O model (see --list-models). Stream (tcp://, unix://): {}; default epoll. "
      "Datagram (udp://, unix-dgram://): {}; default blocking",
      stream, dgram);
}

}  // namespace

void add_echo_server(CLI::App& app) {
  static echo_server_args args;
  static given_options given;
  using servers::common_option;
  auto* cmd = app.add_subcommand(
      "echo-server",
      "Echo every framed message back, on the I/O model of your choice.\n"
      "Prints 'listening on URI model=M ...' first (so port 0 is usable); stops cleanly on "
      "SIGINT/SIGTERM after flushing pending output.");
  auto common = [&](common_option o, CLI::Option* option) {
    option->description(option->get_description() + for_models(servers::flag_of(o)));
    given.common[static_cast<std::size_t>(o)] = option;
    return option;
  };
  cmd->add_option("--listen,-l", args.listen,
                  "Address to serve: tcp://HOST:PORT, tcp://[::1]:PORT, unix:///PATH, "
                  "unix://@NAME, udp://HOST:PORT, unix-dgram:///PATH (port 0 picks a free port)")
      ->capture_default_str();
  given.model = cmd->add_option("--model,-m", args.model, model_help());
  common(common_option::unix_mode,
         cmd->add_option("--mode", args.mode,
                         "Octal mode of a Unix socket file, e.g. 0660 (default: from the umask); "
                         "never more permissive than this from the moment the file exists"));
  common(common_option::max_datagram,
         cmd->add_option("--max-datagram", args.max_datagram,
                         "Datagram receive buffer; a longer datagram is reported (MSG_TRUNC) and "
                         "not echoed")
             ->capture_default_str());
  common(
      common_option::codec,
      cmd->add_option("--codec,-c", args.codec,
                      "Framing: raw, line, crlf, fixed:N, length, length16, sockperf (answers as "
                      "`sockperf server`; datagrams: raw or sockperf, default raw); optional "
                      ",max=BYTES")
          ->capture_default_str());
  common(common_option::max_conns,
         cmd->add_option("--max-conns", args.max_conns,
                         "Close connections beyond this many at once, with a log line (0: no "
                         "limit)")
             ->capture_default_str());
  common(common_option::idle_timeout,
         cmd->add_option("--idle-timeout", args.idle_timeout,
                         "Close connections silent for this many seconds (0: never)")
             ->capture_default_str());
  common(common_option::high_water,
         cmd->add_option("--high-water", args.high_water,
                         "Stop reading from a client whose unsent output exceeds this many bytes, "
                         "until it drains to a quarter of it")
             ->capture_default_str());
  common(common_option::hard_limit,
         cmd->add_option("--hard-limit", args.hard_limit,
                         "Close a client whose unsent output exceeds this many bytes")
             ->capture_default_str());
  common(common_option::threads,
         cmd->add_option("--threads,-t", args.threads,
                         "Multi-reactor: this many event loops, one per thread, sharing the "
                         "connections as --accept says")
             ->capture_default_str()
             ->check(CLI::Range(1, 256)));
  common(common_option::reuse_port, cmd->add_flag("--reuse-port", args.reuse_port,
                                                  "Set SO_REUSEPORT (several servers, one port)"));
  for (const auto& o : servers::own_options()) {
    std::string flag(o.flag);
    auto help = std::string(o.help) + for_models(flag);
    CLI::Option* option = nullptr;
    if (o.choices.empty()) {
      args.own[flag] = o.default_value;
      option = cmd->add_option(flag, args.own[flag], help)
                   ->capture_default_str()
                   ->check(CLI::Range(o.min, o.max));
    } else {
      args.own_words[flag] = std::string(o.choices.at(o.default_value));
      std::vector<std::string> words(o.choices.begin(), o.choices.end());
      option = cmd->add_option(flag, args.own_words[flag], help)
                   ->capture_default_str()
                   ->check(CLI::IsMember(words));
    }
    given.own.emplace_back(flag, option);
  }
  cmd->add_flag("--list-models", args.list_models,
                "List the I/O models and whether this kernel supports each");
  // The models and their limits (e.g. iterative: the others wait in the backlog), built
  // only when --help is shown: listing probes the kernel.
  cmd->footer([] { return "\nI/O models (--model):\n" + servers::list_models_text(); });
  cmd->add_flag("--verbose,-v", args.verbose, "Log one line per connection");
  cmd->callback([] {
    if (int rc = run(args, given); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace netkit::cli
