#include "draws.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "podsim/random.hpp"

namespace podsim {

Draws::Draws(Noise noise, std::int32_t ranks) : noise_(std::move(noise)) {
  std::sort(noise_.straggler_ranks.begin(), noise_.straggler_ranks.end());
  if (noise_.compute_cv > 0) {
    s2_ = std::log1p(noise_.compute_cv * noise_.compute_cv);
    sigma_ = std::sqrt(s2_);
  }
  if (noise_.straggler_slowdown == 1.0) return;
  slow_.assign(static_cast<std::size_t>(ranks), 0);
  for (std::int32_t r = 0; r < ranks; ++r) {
    if (std::binary_search(noise_.straggler_ranks.begin(), noise_.straggler_ranks.end(), r) ||
        random::uniform(noise_.seed, SlowRank, static_cast<std::uint64_t>(r), 0) <
            noise_.straggler_fraction)
      slow_[static_cast<std::size_t>(r)] = 1;
  }
}

double Draws::compute_time(double duration, std::uint64_t op, std::int32_t rank,
                           std::uint64_t step) const {
  double factor = 1.0;
  if (noise_.compute_cv > 0) {
    const double z = random::normal(noise_.seed, ComputeJitter, op, step);
    factor = std::exp(sigma_ * z - 0.5 * s2_);
  }
  if (slow(rank) && (noise_.straggler_probability >= 1.0 ||
                     random::uniform(noise_.seed, SlowStep, static_cast<std::uint64_t>(rank),
                                     step) < noise_.straggler_probability)) {
    factor *= noise_.straggler_slowdown;
  }
  return duration * factor;
}

double Draws::latency_factor(std::uint64_t key, double hops, std::uint64_t step) const {
  if (noise_.latency_sigma <= 0) return 1.0;
  const double u = random::uniform(noise_.seed, HopLatency, key, step);
  return std::exp(noise_.latency_sigma * random::max_of_normals(std::max(hops, 1.0), u));
}

double Draws::instance_time(double time, double latency, std::int32_t repeat, double hops,
                            std::uint64_t instance, std::uint64_t step) const {
  for (std::int32_t r = 0; noise_.latency_sigma > 0 && r < repeat; ++r) {
    const auto key = repetition_key(instance, static_cast<std::uint64_t>(r));
    time += latency * (latency_factor(key, hops, step) - 1.0);
  }
  return time;
}

double Draws::transfer_end(double t, double launch, double latency, double bandwidth_term,
                           std::uint64_t send, std::uint64_t step) const {
  return t + launch + latency * latency_factor(transfer_key(send), 1, step) + bandwidth_term;
}

}  // namespace podsim
