// Point-to-point chat (`netkit p2p-chat`), the course's two-process program done right.
//
// One side listens for a single peer, the other connects. Each side then forks: the
// parent reads the keyboard and sends, the child receives and prints. Every message is a
// line, framed with the library's line codec, so one is never split or joined with
// another however the bytes arrive.
//
// How the two processes learn of each other's exit: two pipes, one per direction, each
// holding only the write end in one process and the read end in the other. A process's
// death, however it dies (exit, crash, SIGKILL), closes its write end, and the other's
// poll() reports the hang-up at once. Signals would not do: SIGCHLD tells the parent only,
// a child's PR_SET_PDEATHSIG fires on the parent *thread*'s death and races with fork, and
// a kill of the sibling needs its pid to be still valid. The pipes need no handler, cannot
// be lost or arrive twice, and cannot name a recycled pid.
//  - the user quits (EOF on stdin, /quit, Ctrl-C): the parent shuts the socket down for
//    writing (the peer reads EOF), closes its pipe (the child exits at once), reaps the
//    child and exits 0;
//  - the peer goes away (EOF or reset): the child prints "*** peer left" and exits 0; the
//    parent sees its pipe close, reaps it and exits 0;
//  - the child dies otherwise (a crash, a kill): the parent reaps it, says how it died
//    and exits 1; the parent dies: the child sees its pipe close and exits.
// The parent never exits before it has reaped the child: no orphan, no zombie. The terminal
// stays in its normal (canonical) mode, so it is left as it was found.
#pragma once

#include <cstddef>

#include "netkit/endpoint.hpp"

namespace netkit::chat {

struct p2p_options {
  enum class role { listen, connect } side = role::connect;
  endpoint address;
  std::size_t max_line = 64 * 1024;
};

// Runs one side until either user quits or the peer goes; returns the exit status (0, or
// 1 after an error it has reported on stderr). Throws sys_error for setup errors (bind,
// connect, fork).
int run_p2p_chat(const p2p_options& options);

}  // namespace netkit::chat
