// Counter-based random numbers (podsim/random.hpp): a draw is a pure function of
// (seed, stream, key, index). Each expectation derived in a comment.
#include <cmath>
#include <cstdint>

#include "check.hpp"
#include "podsim/random.hpp"

using namespace podsim;
using namespace podsim::test;

namespace {

void mixer_is_splitmix64() {
  // mix(x) is one SplitMix64 step from state x: the first output of SplitMix64 seeded with 0 is
  // the published 0xE220A8397B1DCDAF; seeded with 1, 0x910A2DEC89025CC1.
  static_assert(random::mix(0) == 0xE220A8397B1DCDAFULL);
  static_assert(random::mix(1) == 0x910A2DEC89025CC1ULL);
  expect(random::mix(0) == 0xE220A8397B1DCDAFULL, "mix(0) is SplitMix64's first output");
}

void same_key_same_draw() {
  // Same (seed, stream, key, index): the same bits, whatever was drawn in between and in
  // whichever order; changing any one of the four changes the draw.
  const double a = random::uniform(1, 2, 3, 4);
  for (std::uint64_t i = 0; i < 1000; ++i) (void)random::uniform(9, 9, i, i);
  expect(random::uniform(1, 2, 3, 4) == a, "same key, same draw");
  expect(random::uniform(2, 2, 3, 4) != a && random::uniform(1, 3, 3, 4) != a &&
             random::uniform(1, 2, 4, 4) != a && random::uniform(1, 2, 3, 5) != a,
         "any other seed, stream, key or index, another draw");
  expect(random::normal(5, 1, 7, 11) == random::normal(5, 1, 7, 11), "normals are pure too");
  // normal(i) uses the uniforms at 2i and 2i + 1 (Box-Muller).
  const double u1 = random::uniform(5, 1, 7, 22), u2 = random::uniform(5, 1, 7, 23);
  expect_near(random::normal(5, 1, 7, 11),
              std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2),
              "normal(i) = Box-Muller of uniforms 2i, 2i + 1");
}

void distributions() {
  // n = 200,000 uniforms: inside (0, 1) (53 bits plus half a step: never 0 nor 1), mean 1/2
  // within 5 sigma (sigma = 1 / sqrt(12 n) = 6.5e-4). Normals: mean 0 (sigma 1 / sqrt(n)),
  // variance 1 (sigma sqrt(2 / n)). Exponentials of rate 4: mean 1/4 (sigma 1 / (4 sqrt(n))).
  const int n = 200'000;
  double lo = 1.0, hi = 0.0, sum = 0.0, zs = 0.0, z2 = 0.0, es = 0.0;
  for (int i = 0; i < n; ++i) {
    const auto k = static_cast<std::uint64_t>(i);
    const double u = random::uniform(123, 1, 0, k);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    sum += u;
    const double z = random::normal(123, 2, 0, k);
    zs += z;
    z2 += z * z;
    es += random::exponential(4.0, 123, 3, 0, k);
  }
  const double dn = n;
  expect(lo > 0.0 && hi < 1.0, "uniforms in the open interval (0, 1)");
  expect(std::abs(sum / dn - 0.5) < 5 / std::sqrt(12 * dn), "uniform mean 1/2");
  expect(std::abs(zs / dn) < 5 / std::sqrt(dn), "normal mean 0");
  expect(std::abs(z2 / dn - 1) < 5 * std::sqrt(2 / dn), "normal variance 1");
  expect(std::abs(es / dn - 0.25) < 5 * 0.25 / std::sqrt(dn), "exponential mean 1 / rate");
  // The smallest uniform, bits 0: 0.5 x 2^-53 > 0, so -log(u) is finite. (The largest, all ones,
  // is (2^53 - 1 + 0.5) x 2^-53, which rounds to exactly 1.0 in double: reported, random.hpp.)
  expect(0.5 * 0x1.0p-53 > 0.0, "the smallest uniform is above 0");
}

void quantiles() {
  // Phi^-1(0.5) = 0; Phi^-1(0.975) = 1.959963984540054 (tables); Phi^-1(1e-10) =
  // -6.361340902404056; symmetric: Phi^-1(1 - p) = -Phi^-1(p).
  expect_near(random::normal_quantile(0.5), 0.0, "median", 1e-15);
  expect_near(random::normal_quantile(0.975), 1.959963984540054, "97.5%", 1e-14);
  expect_near(random::normal_quantile(1e-10), -6.361340902404056, "1e-10", 1e-13);
  expect_near(random::normal_quantile(0.9), -random::normal_quantile(0.1), "symmetry", 1e-15);
  // The largest of n normals from one uniform: Phi^-1(u^(1/n)). n = 1: Phi^-1(u). n = 2,
  // u = 0.25: Phi^-1(0.5) = 0.
  expect_near(random::max_of_normals(1, 0.975), 1.959963984540054, "max of 1 normal", 1e-14);
  expect_near(random::max_of_normals(2, 0.25), 0.0, "max of 2 normals at u = 1/4", 1e-15);
  // It grows with n: the median of the max of 1e6 normals is Phi^-1(0.5^(1e-6)) = Phi^-1(1
  // - 6.9e-7) ~ 4.83.
  const double big = random::max_of_normals(1e6, 0.5);
  expect(big > 4.7 && big < 5.0, "the median max of 1e6 normals is about 4.8");
}

}  // namespace

int main() {
  mixer_is_splitmix64();
  same_key_same_draw();
  distributions();
  quantiles();
  return summary();
}
