// Sandboxes a test process the way a container runtime might, to exercise fallbacks.
#pragma once

namespace netkit::test {

// From now on socket(AF_NETLINK, ...) fails with EPERM in this process and whatever it
// execs (a seccomp filter cannot be removed: call it in a child). Async-signal-safe. False
// where seccomp filters are unavailable (or on an architecture this does not know).
bool deny_netlink_sockets();

}  // namespace netkit::test
