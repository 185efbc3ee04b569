// Parameterisation over every I/O backend netkit lists (and every codec), the way
// libevent runs its suite once per backend. A backend added to the registry (e.g. uring)
// joins every suite automatically; one the kernel refuses is reported as skipped with the
// probe's reason rather than silently dropped.
//
//   class echo_test : public testing::TestWithParam<backend_codec> {};
//   TEST_P(echo_test, works) { NETKIT_SKIP_UNAVAILABLE_BACKEND(backend_of(GetParam())); ... }
//   INSTANTIATE_TEST_SUITE_P(all, echo_test, every_backend_and_codec(), param_name);
#pragma once

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

namespace netkit::test {

// Names of every backend in list_backends(), available or not.
std::vector<std::string> backend_names();
// Why `name` cannot run on this kernel, or nullopt when it can.
std::optional<std::string> backend_problem(const std::string& name);

// True for completion backends (io_uring): their server submits accept/recv/send as
// operations, so syscall-level injection (strace on accept4, a send(2) interposer) does
// not reach them.
bool is_completion_backend(const std::string& name);

// The codecs the echo suites cover.
std::vector<std::string> codec_names();

using backend_codec = std::tuple<std::string, std::string>;
inline const std::string& backend_of(const backend_codec& p) {
  return std::get<0>(p);
}
inline const std::string& codec_of(const backend_codec& p) {
  return std::get<1>(p);
}

inline auto every_backend() {
  return testing::ValuesIn(backend_names());
}
inline auto every_backend_and_codec() {
  return testing::Combine(testing::ValuesIn(backend_names()), testing::ValuesIn(codec_names()));
}

// gtest parameter names: letters, digits and '_' only ("epoll-et" -> "epoll_et").
std::string sanitize_name(std::string text);
struct param_name {
  std::string operator()(const testing::TestParamInfo<std::string>& info) const {
    return sanitize_name(info.param);
  }
  std::string operator()(const testing::TestParamInfo<backend_codec>& info) const {
    return sanitize_name(backend_of(info.param) + "_" + codec_of(info.param));
  }
};

}  // namespace netkit::test

#define NETKIT_SKIP_UNAVAILABLE_BACKEND(name)                                              \
  do {                                                                                     \
    if (auto netkit_problem_ = ::netkit::test::backend_problem(name))                      \
      GTEST_SKIP() << "backend '" << (name) << "' unavailable here: " << *netkit_problem_; \
  } while (0)
