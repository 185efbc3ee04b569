// What a server model is to the registry: its name, the transports it serves, what it does,
// the options it takes and the function that runs it. Each model lives in one file and
// defines one function returning its server_model; registry.cpp lists those functions.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netkit/codec/codec.hpp"
#include "netkit/endpoint.hpp"

namespace netkit::servers {

// The transports a model serves: stream (tcp://, unix://) or datagram (udp://,
// unix-dgram://).
enum class transport_family { stream, datagram };

transport_family family_of(transport t) noexcept;
// "tcp:// and unix:// (stream)", "udp:// and unix-dgram:// (datagram)".
std::string_view describe_family(transport_family f) noexcept;

// Options of `netkit echo-server` that several models share; each model says which of them
// it takes, and the command line refuses the others.
enum class common_option : std::uint8_t {
  codec,
  unix_mode,
  reuse_port,
  max_conns,
  idle_timeout,
  high_water,
  hard_limit,
  threads,
  max_datagram,
};
inline constexpr std::size_t common_option_count = 9;

// "--codec", "--mode", ... as written on the command line.
std::string_view flag_of(common_option o) noexcept;

class common_options {
 public:
  constexpr common_options() noexcept = default;
  constexpr common_options(std::initializer_list<common_option> options) noexcept {
    for (auto o : options)
      bits_ |= bit(o);
  }
  constexpr bool contains(common_option o) const noexcept { return (bits_ & bit(o)) != 0; }

 private:
  static constexpr std::uint32_t bit(common_option o) noexcept {
    return std::uint32_t{1} << static_cast<unsigned>(o);
  }
  std::uint32_t bits_ = 0;
};

// An option only some models take, declared by the model (prefork's --workers). A count
// within [min, max], or, when `choices` is not empty, one of those words (fork's
// "--sigchld reap|ignore"): then its value is the index of the word, default_value the
// index of the default, and min/max are not used. Two models may declare the same flag;
// they must agree on its range or choices.
struct model_option {
  std::string_view flag;  // "--workers"
  std::string_view help;
  std::size_t default_value = 0;
  std::size_t min = 0;
  std::size_t max = 0;
  std::vector<std::string_view> choices;
};

struct server_model;

// What the command line asked for, already checked against the model. Options the model
// does not take keep their defaults.
struct model_settings {
  endpoint listen;
  codec_spec codec;
  std::optional<mode_t> unix_mode;  // mode of a Unix socket file
  bool reuse_port = false;
  std::size_t max_conns = 0;  // 0: no limit
  std::chrono::milliseconds idle_timeout{0};
  std::size_t high_water = 1 << 20;
  std::size_t hard_limit = 16 << 20;
  std::optional<std::size_t> threads;  // unset: the model's choice
  std::size_t max_datagram = 65536;
  bool verbose = false;
  // The model's own options by flag ("--workers"), as given (a choice as its index).
  std::map<std::string, std::size_t, std::less<>> own;

  // An own option's value: as given, else the declared default.
  std::size_t own_option(const server_model& model, std::string_view flag) const;
  // A choice option's word ("reap"): as given, else the declared default.
  std::string_view own_choice(const server_model& model, std::string_view flag) const;
};

struct model_availability {
  bool available = true;
  std::string problem;  // why not, when unavailable
  std::string detail;   // what the kernel gave it, when that varies (io_uring features)
};

struct server_model {
  std::string name;
  transport_family family = transport_family::stream;
  // The transports of its family it serves; empty: all of them (tcp and unix, or udp and
  // unix-dgram).
  std::vector<transport> transports;
  std::string description;
  common_options takes;
  std::vector<model_option> own_options;
  // Probes this kernel (nullptr: always available).
  model_availability (*probe)(const server_model&) = nullptr;
  // Prints "listening on URI model=NAME ..." as its first stdout line (flushed, with
  // SIGINT/SIGTERM handling already in place), serves until SIGINT/SIGTERM and returns
  // the exit code. Setup errors throw (sys_error, usage_error).
  int (*run)(const server_model&, const model_settings&) = nullptr;

  bool takes_own(std::string_view flag) const noexcept;
  bool serves(transport t) const noexcept;
  // "tcp:// and unix:// (stream)", "tcp:// (stream)".
  std::string describe_transports() const;
};

}  // namespace netkit::servers
