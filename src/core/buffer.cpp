#include "netkit/buffer.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace netkit {

byte_buffer::byte_buffer(byte_buffer&& other) noexcept
    : storage_(std::move(other.storage_)),
      capacity_(std::exchange(other.capacity_, 0)),
      read_(std::exchange(other.read_, 0)),
      write_(std::exchange(other.write_, 0)) {}

byte_buffer& byte_buffer::operator=(byte_buffer&& other) noexcept {
  if (this != &other) {
    storage_ = std::move(other.storage_);
    capacity_ = std::exchange(other.capacity_, 0);
    read_ = std::exchange(other.read_, 0);
    write_ = std::exchange(other.write_, 0);
  }
  return *this;
}

void byte_buffer::release() noexcept {
  storage_.reset();
  capacity_ = 0;
  read_ = 0;
  write_ = 0;
}

void byte_buffer::consume(std::size_t n) noexcept {
  read_ += std::min(n, size());
  if (read_ == write_) clear();
}

void byte_buffer::clear() noexcept {
  // Rewinding an empty buffer is free, unlike compacting a non-empty one.
  read_ = 0;
  write_ = 0;
  if (capacity_ > kept_capacity) release();
}

void byte_buffer::make_room(std::size_t n) {
  const std::size_t used = size();
  if (capacity_ - used >= n && used <= capacity_ / 2) {
    // Enough room once the consumed prefix is reclaimed, and the move is at most half the
    // capacity: compact in place.
    std::memmove(storage_.get(), storage_.get() + read_, used);
  } else {
    if (n > SIZE_MAX / 2 - used) throw std::length_error("byte_buffer: size overflow");
    const std::size_t cap = std::max({min_allocation, capacity_ * 2, used + n});
    // new std::byte[] default-initialises: no zero-fill of memory about to be overwritten.
    std::unique_ptr<std::byte[]> grown(new std::byte[cap]);
    if (used != 0) std::memcpy(grown.get(), storage_.get() + read_, used);
    storage_ = std::move(grown);
    capacity_ = cap;
  }
  read_ = 0;
  write_ = used;
}

std::span<std::byte> byte_buffer::prepare(std::size_t n) {
  if (writable() < n || storage_ == nullptr) make_room(std::max<std::size_t>(n, 1));
  return {storage_.get() + write_, writable()};
}

void byte_buffer::commit(std::size_t n) {
  if (n > writable()) throw std::length_error("byte_buffer::commit past the prepared tail");
  write_ += n;
}

void byte_buffer::append(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  auto tail = prepare(bytes.size());
  std::memcpy(tail.data(), bytes.data(), bytes.size());
  write_ += bytes.size();
}

void byte_buffer::append(std::string_view s) {
  append(std::as_bytes(std::span(s)));
}

void byte_buffer::shrink_to_fit() {
  if (empty()) {
    release();
    return;
  }
  if (capacity_ == size()) return;
  std::unique_ptr<std::byte[]> exact(new std::byte[size()]);
  std::memcpy(exact.get(), storage_.get() + read_, size());
  storage_ = std::move(exact);
  capacity_ = size();
  write_ = size();
  read_ = 0;
}

io_result byte_buffer::read_from(int fd) {
  // Uninitialised on purpose: the kernel writes it and only the written part is read back.
  std::byte spill[spill_size];
  const std::size_t tail = writable();
  iovec iov[2] = {{storage_.get() + write_, tail}, {spill, sizeof spill}};
  // A tail as large as the spill area makes the spill pointless.
  const int iovcnt = tail >= sizeof spill ? 1 : 2;
  ssize_t n;
  do {
    n = ::readv(fd, iov, iovcnt);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return {0, errno};
  const auto got = static_cast<std::size_t>(n);
  if (got <= tail) {
    write_ += got;
  } else {
    write_ = capacity_;
    append(std::span<const std::byte>(spill, got - tail));
  }
  return {n, 0};
}

io_result byte_buffer::write_to(int fd) {
  if (empty()) return {0, 0};
  ssize_t n;
  do {
    n = ::send(fd, storage_.get() + read_, size(), MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = ::write(fd, storage_.get() + read_, size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return {0, errno};
  consume(static_cast<std::size_t>(n));
  return {n, 0};
}

}  // namespace netkit
