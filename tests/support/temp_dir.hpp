// A fresh directory under the system's temp directory, removed with everything in it when
// the object goes (for Unix socket paths).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace netkit::test {

struct temp_dir {
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "netkit-test-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::filesystem::path path;
};

}  // namespace netkit::test
