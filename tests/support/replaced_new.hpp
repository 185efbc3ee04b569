// Replaces the global operator new and delete of the test executable that includes this
// header, in exactly one of its translation units (the definitions are not inline: a
// second inclusion in the same executable fails to link). Every allocation calls
// observe_allocation(size), which that translation unit defines, then malloc; delete is
// free. How a test sees what the code under test allocates (sizes, counts per thread).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace netkit::test {
// Called before every operator new of the executable, on the allocating thread. Must not
// allocate.
void observe_allocation(std::size_t size) noexcept;
}  // namespace netkit::test

// GCC 12 pairs the inlined malloc/free across the replaced operators and warns wrongly.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  netkit::test::observe_allocation(size);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  return operator new(size);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  netkit::test::observe_allocation(size);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop
