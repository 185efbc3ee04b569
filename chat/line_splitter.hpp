// The chat protocol's input framing: text lines ending in '\n' (a '\r' before it is
// dropped, so telnet's "\r\n" works), bounded. Unlike the library's line codec, which
// treats an over-long line as a protocol error and closes the connection, a chat server
// answers it and carries on: the splitter discards the line through its '\n' and reports
// it once. Pure and incremental: no socket inside, O(n) over the bytes fed.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace netkit::chat {

class line_splitter {
 public:
  explicit line_splitter(std::size_t max_line) : max_(max_line) {}

  // Feeds bytes; calls on_line(std::string_view) for each complete line (terminator
  // removed) and on_overlong() once for each line longer than max_line (its bytes are
  // dropped up to and including its '\n'). Only a partial line is copied, into pending().
  template <typename OnLine, typename OnOverlong>
  void feed(std::span<const std::byte> bytes, OnLine&& on_line, OnOverlong&& on_overlong) {
    std::string_view data(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    while (!data.empty()) {
      auto nl = data.find('\n');
      std::string_view piece = data.substr(0, nl);
      if (discarding_) {
        if (nl == std::string_view::npos) return;
        discarding_ = false;
      } else if (partial_.size() + piece.size() > max_ + 1) {  // +1: a '\r' before '\n'
        partial_.clear();
        partial_.shrink_to_fit();
        discarding_ = nl == std::string_view::npos;
        on_overlong();
        if (discarding_) return;
      } else if (nl == std::string_view::npos) {
        partial_.append(piece);
        return;
      } else {
        std::string_view line = piece;
        if (!partial_.empty()) {
          partial_.append(piece);
          line = partial_;
        }
        if (line.ends_with('\r')) line.remove_suffix(1);
        if (line.size() > max_) {
          on_overlong();
        } else {
          on_line(line);
        }
        partial_.clear();
      }
      data.remove_prefix(nl + 1);
    }
  }

  // Bytes of the line in progress (held until its '\n').
  std::size_t pending() const noexcept { return partial_.size(); }
  std::size_t max_line() const noexcept { return max_; }

 private:
  std::size_t max_;
  std::string partial_;
  bool discarding_ = false;  // inside an over-long line, already reported
};

}  // namespace netkit::chat
