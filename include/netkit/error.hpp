// Error convention (see docs/design.md):
//  - setup (parse, socket, bind, listen, connect, options) throws sys_error or usage_error;
//  - the per-message path returns io_result values and never throws for OS errors.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include <sys/types.h>

namespace netkit {

// "EACCES" for EACCES; "E<number>" for values glibc does not name.
std::string errno_name(int err);

// "Permission denied (EACCES)".
std::string errno_text(int err);

// An OS call failed. what() reads "bind tcp://0.0.0.0:80: Permission denied (EACCES)".
class sys_error : public std::system_error {
 public:
  sys_error(int err, std::string_view operation, std::string_view subject = {});
  const std::string& operation() const noexcept { return operation_; }
  const std::string& subject() const noexcept { return subject_; }
  int errno_value() const noexcept { return code().value(); }
  // Our message alone: std::system_error would append strerror's text a second time.
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
  std::string operation_;
  std::string subject_;
};

// Input from a user was malformed (bad URI, bad codec spec, bad option value).
class usage_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A peer broke the framing rules (oversize frame, missing delimiter, truncated record).
class protocol_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A host name did not resolve: "resolve nosuch.example: Name or service not known (EAI_NONAME)".
class resolve_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws sys_error for `err` (default: the current errno).
[[noreturn]] void throw_sys_error(std::string_view operation, std::string_view subject = {});
[[noreturn]] void throw_sys_error(int err, std::string_view operation, std::string_view subject);

// Result of one non-blocking I/O call on the per-message path.
// n > 0: bytes moved; n == 0 with err == 0: orderly EOF (reads) ;
// err == EAGAIN: would block; any other err: failure (n == 0).
struct io_result {
  ssize_t n = 0;
  int err = 0;

  bool ok() const noexcept { return err == 0; }
  bool eof() const noexcept { return err == 0 && n == 0; }
  bool would_block() const noexcept { return err == EAGAIN || err == EWOULDBLOCK; }
};

}  // namespace netkit
