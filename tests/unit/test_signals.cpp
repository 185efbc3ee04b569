// netkit/signals.hpp: the one stop-signal facility every server uses.
#include "netkit/signals.hpp"

#include <signal.h>

#include <gtest/gtest.h>

namespace netkit {
namespace {

sighandler_t current_handler(int sig) {
  struct sigaction now {};
  ::sigaction(sig, nullptr, &now);
  return now.sa_handler;
}

bool is_blocked(int sig) {
  sigset_t mask;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  return sigismember(&mask, sig) == 1;
}

TEST(signals, scope_records_the_signal_and_restores_the_previous_handler) {
  ::signal(SIGTERM, SIG_IGN);
  {
    stop_signal_scope stop;
    EXPECT_EQ(stop.received(), 0);
    ::raise(SIGTERM);
    EXPECT_EQ(stop.received(), SIGTERM);
    EXPECT_EQ(stop_signal_received(), SIGTERM);
  }
  EXPECT_EQ(current_handler(SIGTERM), SIG_IGN);
  ::signal(SIGTERM, SIG_DFL);
}

TEST(signals, a_new_scope_forgets_an_earlier_signal) {
  {
    stop_signal_scope stop;
    ::raise(SIGINT);
    EXPECT_EQ(stop.received(), SIGINT);
  }
  stop_signal_scope next;
  EXPECT_EQ(next.received(), 0);
}

TEST(signals, blocked_signals_are_taken_only_in_wait) {
  stop_signal_scope stop;
  stop.block();
  EXPECT_TRUE(is_blocked(SIGTERM));
  EXPECT_FALSE(sigismember(&stop.waiting_mask(), SIGTERM));
  ::raise(SIGTERM);
  EXPECT_EQ(stop.received(), 0) << "a blocked signal stays pending until the wait";
  EXPECT_EQ(stop.wait(), SIGTERM);
}

TEST(signals, pending_blocked_signals_are_discarded_not_delivered_at_the_end) {
  ASSERT_EQ(current_handler(SIGUSR1), SIG_DFL);  // its default action ends the process
  {
    stop_signal_scope stop;
    stop.block({SIGUSR1});
    ::raise(SIGUSR1);
  }
  EXPECT_FALSE(is_blocked(SIGUSR1));
  SUCCEED() << "still alive: the pending SIGUSR1 was consumed before the unblock";
}

TEST(signals, take_forgets_and_the_wake_descriptor_is_cleared_only_by_its_owner) {
  install_stop_handler({SIGUSR2}, interrupted_calls::restart);
  ::raise(SIGUSR2);
  EXPECT_EQ(take_stop_signal(), SIGUSR2);
  EXPECT_EQ(stop_signal_received(), 0);
  ::signal(SIGUSR2, SIG_DFL);

  set_stop_wake_fd(42);
  clear_stop_wake_fd(7);
  EXPECT_EQ(stop_wake_fd(), 42);
  clear_stop_wake_fd(42);
  EXPECT_EQ(stop_wake_fd(), -1);
}

}  // namespace
}  // namespace netkit
