#include "support/chat_crowd.hpp"

#include <stdexcept>

#include <fmt/format.h>

#include "support/loop_run.hpp"

namespace netkit::test {

chat_crowd::chat_crowd(endpoint server, std::string prefix)
    : server_(std::move(server)), prefix_(std::move(prefix)), loop_("epoll") {
  client_options options;
  options.codec = codec_spec::parse("line");
  options.connecting.retries = 5;
  // The crowd reads everything as it comes; only a test's own limits cut it off.
  options.hard_limit = 64 << 20;
  stream_handler h;
  h.on_connect = [this](connection& c) {
    // Connects may complete out of order; members_ is filled in connect order, so the
    // index is the next free one.
    auto& m = *members_.at(connected_++);
    m.id = c.id();
    m.open = true;
    c.context() = &m;
    c.send(fmt::format("/nick {}", m.nick));
  };
  h.on_message = [](connection& c, std::span<const std::byte> bytes) {
    auto& m = **std::any_cast<member*>(&c.context());
    std::string line(text_of(bytes));
    if (line.starts_with("<")) {
      m.messages.push_back(line);
    } else {
      if (line == fmt::format("*** {} joined", m.nick)) m.joined = true;
      m.notices.push_back(line);
    }
    if (m.on_line) m.on_line(m, line);
  };
  h.on_close = [](connection& c, close_reason) {
    if (auto* m = std::any_cast<member*>(&c.context())) (*m)->open = false;
  };
  h.on_connect_failed = [](stream_client&, const endpoint&, const sys_error& e) {
    throw std::runtime_error(fmt::format("chat_crowd: {}", e.what()));
  };
  client_ = make_stream_client(loop_, options, std::move(h));
}

chat_crowd::~chat_crowd() {
  client_.reset();  // closes every connection while the members still exist
}

void chat_crowd::connect(std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    auto m = std::make_unique<member>();
    m->nick = fmt::format("{}{}", prefix_, members_.size());
    members_.push_back(std::move(m));
    client_->connect(server_);
  }
}

bool chat_crowd::run_until(const std::function<bool()>& done, clock::duration limit) {
  return test::run_until(loop_, done, limit);
}

bool chat_crowd::join(std::size_t n, clock::duration limit) {
  std::size_t first = members_.size();
  connect(n);
  return run_until(
      [&] {
        for (std::size_t i = first; i < members_.size(); ++i)
          if (!members_[i]->joined) return false;
        return true;
      },
      limit);
}

void chat_crowd::say(std::size_t i, std::string_view line) {
  if (auto* c = client_->find(at(i).id)) c->send(line);
}

void chat_crowd::close(std::size_t i) {
  if (auto* c = client_->find(at(i).id)) c->close();
}

std::size_t chat_crowd::open_count() const {
  std::size_t n = 0;
  for (const auto& m : members_)
    n += m->open ? 1 : 0;
  return n;
}

}  // namespace netkit::test
