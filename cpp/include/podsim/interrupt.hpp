// Long set-up work (checking and indexing a program of millions of ops) calls
// check_interrupt() now and then. A caller that wants to stop it (the Python binding, on
// Ctrl-C) installs a poll for its thread that throws; the exception leaves the set-up with
// nothing half-built. No poll installed: nothing happens.
#pragma once

namespace podsim {

using InterruptPoll = void (*)();

inline thread_local InterruptPoll interrupt_poll = nullptr;

inline void check_interrupt() {
  if (interrupt_poll != nullptr) interrupt_poll();
}

// Installs `poll` for the current thread for the lifetime of this object.
class InterruptScope {
 public:
  explicit InterruptScope(InterruptPoll poll) : previous_(interrupt_poll) { interrupt_poll = poll; }
  ~InterruptScope() { interrupt_poll = previous_; }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  InterruptPoll previous_;
};

}  // namespace podsim
