// Counter-based random numbers: a value is a pure function of (seed, stream, key, index), so
// results never depend on the order events are handled in, nor on threads. Same seed, same
// numbers, bit for bit. The mixer is SplitMix64's finalizer (Steele, Lea & Flood 2014).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace podsim::random {

constexpr std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// 64 random bits for one draw.
constexpr std::uint64_t bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t key,
                             std::uint64_t index) {
  return mix(mix(mix(mix(seed) ^ stream) ^ key) ^ index);
}

// Uniform in the open interval (0, 1): 53 random bits, offset by half a step.
inline double uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t key,
                      std::uint64_t index) {
  // (k + 0.5) / 2^53 rounds to 1.0 for the largest k: keep the draw inside (0, 1).
  const double u = (static_cast<double>(bits(seed, stream, key, index) >> 11) + 0.5) * 0x1.0p-53;
  return std::min(u, 0x1.fffffffffffffp-1);
}

// Standard normal by Box-Muller from the draws at index 2i and 2i + 1.
inline double normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t key,
                     std::uint64_t index) {
  const double u1 = uniform(seed, stream, key, 2 * index);
  const double u2 = uniform(seed, stream, key, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Exponential with the given rate.
inline double exponential(double rate, std::uint64_t seed, std::uint64_t stream, std::uint64_t key,
                          std::uint64_t index) {
  return -std::log(uniform(seed, stream, key, index)) / rate;
}

}  // namespace podsim::random

namespace podsim::random {

// The standard normal quantile, Wichura's algorithm AS241 (PPND16), accurate to about 1e-16.
double normal_quantile(double p);

// The largest of n independent standard normals, drawn from one uniform: its quantile function
// is Phi^-1(u^(1/n)), computed as -Phi^-1(1 - u^(1/n)) to keep precision for large n.
double max_of_normals(double n, double u);

}  // namespace podsim::random
