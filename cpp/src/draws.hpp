// The noise model's draws (docs/engine.md, "Noise"), for the event loop and both sweeps. Each is
// a function of (seed, what, which op or rank, step): any order of events and any thread gives
// the same bits.
#pragma once

#include <cstdint>
#include <vector>

#include "podsim/engine.hpp"

namespace podsim {

class Draws {
 public:
  Draws() = default;
  // Slow devices are drawn for ranks [0, ranks) (each once, from the seed and the rank).
  Draws(Noise noise, std::int32_t ranks);

  const Noise& noise() const { return noise_; }

  // A compute op's duration in step `step`: lognormal jitter of mean 1 (keyed by the program's
  // op), times a slow rank's factor.
  double compute_time(double duration, std::uint64_t op, std::int32_t rank,
                      std::uint64_t step) const;

  // How much longer than its median a latency term takes: a step waits for the slowest of its
  // `hops` concurrent hops, each lognormal with median 1 (order statistic, one draw).
  double latency_factor(std::uint64_t key, double hops, std::uint64_t step) const;

  // An analytical collective instance's time in step `step`: `time` (its closed form or
  // pod-link time, all `repeat` repetitions) plus, with latency noise, what each repetition's
  // latency term `latency` gains from the slowest of its `hops` concurrent hops.
  double instance_time(double time, double latency, std::int32_t repeat, double hops,
                       std::uint64_t instance, std::uint64_t step) const;

  // When an analytical transfer that starts at `t` ends in step `step`: the launch, its path
  // latency stretched by its draw (keyed by its send op), its bandwidth term.
  double transfer_end(double t, double launch, double latency, double bandwidth_term,
                      std::uint64_t send, std::uint64_t step) const;

 private:
  bool slow(std::int32_t rank) const {
    return !slow_.empty() && slow_[static_cast<std::size_t>(rank)] != 0;
  }

  Noise noise_;
  double s2_ = 0.0, sigma_ = 0.0;  // log-space variance and spread of compute jitter
  std::vector<char> slow_;         // per rank (only with a straggler slowdown)
};

// Draw streams of the noise model.
enum DrawStream : std::uint64_t { ComputeJitter = 1, SlowRank = 2, SlowStep = 3, HopLatency = 4 };

// Keys of latency draws: a collective instance's repetition, a transfer (above every instance's).
inline std::uint64_t repetition_key(std::uint64_t instance, std::uint64_t repetition) {
  return (instance << 20) | repetition;
}
inline std::uint64_t transfer_key(std::uint64_t send) { return (std::uint64_t{1} << 62) | send; }

}  // namespace podsim
