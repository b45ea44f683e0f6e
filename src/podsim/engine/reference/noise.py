"""The noise model's draws in plain Python, bit for bit those of the C++ core (cpp/include/
podsim/random.hpp, cpp/src/random.cpp and the engine's use of them; docs/engine.md, "Noise").

Every draw is a pure function of (seed, stream, key, index): SplitMix64's finalizer mixes them,
53 bits make a uniform in (0, 1), Box-Muller a normal, Wichura's AS241 the normal quantile. The
arithmetic is IEEE double in both languages, in the same order, so the numbers agree exactly.
"""

import math
from bisect import bisect_left
from dataclasses import dataclass

_M64 = (1 << 64) - 1
_BELOW_ONE = 1.0 - 2.0**-53  # 0x1.fffffffffffffp-1
COMPUTE_JITTER, SLOW_RANK, SLOW_STEP, HOP_LATENCY = 1, 2, 3, 4  # draw streams
TRANSFER_KEYS = 1 << 62  # transfers draw from keys above every collective instance's


def mix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def bits(seed: int, stream: int, key: int, index: int) -> int:
    return mix(mix(mix(mix(seed & _M64) ^ stream) ^ (key & _M64)) ^ (index & _M64))


def uniform(seed: int, stream: int, key: int, index: int) -> float:
    """In the open interval (0, 1)."""
    return min((float(bits(seed, stream, key, index) >> 11) + 0.5) * 2.0**-53, _BELOW_ONE)


def normal(seed: int, stream: int, key: int, index: int) -> float:
    """Box-Muller from the uniforms at 2 index and 2 index + 1."""
    u1 = uniform(seed, stream, key, 2 * index)
    u2 = uniform(seed, stream, key, 2 * index + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


_A = (3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3,
      1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
      3.3430575583588128105e4, 2.5090809287301226727e3)  # fmt: skip
_B = (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
      2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
      5.2264952788528545610e3)  # fmt: skip
_C = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
      3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
      2.27238449892691845833e-2, 7.74545014278341407640e-4)  # fmt: skip
_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
      1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
      1.05075007164441684324e-9)  # fmt: skip
_E = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
      2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
      2.71155556874348757815e-5, 2.01033439929228813265e-7)  # fmt: skip
_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
      7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
      2.04426310338993978564e-15)  # fmt: skip


def _poly(c: tuple[float, ...], x: float) -> float:
    r = c[-1]
    for coefficient in reversed(c[:-1]):
        r = r * x + coefficient
    return r


def normal_quantile(p: float) -> float:
    """Wichura's AS241 (PPND16)."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _poly(_A, r) / _poly(_B, r)
    r = p if q < 0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        x = _poly(_C, r - 1.6) / _poly(_D, r - 1.6)
    else:
        x = _poly(_E, r - 5.0) / _poly(_F, r - 5.0)
    return -x if q < 0 else x


def max_of_normals(n: float, u: float) -> float:
    """The largest of n standard normals from one uniform: -Phi^-1(1 - u^(1/n))."""
    return -normal_quantile(-math.expm1(math.log(u) / n))


@dataclass(frozen=True)
class Draws:
    """The engine's noise for one step (`iteration`): the fields of podsim._core.Noise."""

    seed: int = 0
    compute_cv: float = 0.0
    latency_sigma: float = 0.0
    straggler_fraction: float = 0.0
    straggler_ranks: tuple[int, ...] = ()
    straggler_slowdown: float = 1.0
    straggler_probability: float = 1.0
    iteration: int = 0

    @classmethod
    def of(cls, noise, topology, iteration: int = 0) -> "Draws":
        """From a podsim.engine.noise.NoiseModel on a topology (or None: no noise)."""
        if noise is None:
            return cls(iteration=iteration)
        return cls(
            noise.seed,
            noise.compute_cv,
            noise.latency_sigma(topology),
            noise.straggler_fraction,
            tuple(sorted(noise.straggler_ranks)),
            noise.straggler_slowdown,
            noise.straggler_probability,
            iteration,
        )

    def slow(self, rank: int) -> bool:
        if self.straggler_slowdown == 1.0:
            return False
        ranks = self.straggler_ranks
        i = bisect_left(ranks, rank)
        listed = i < len(ranks) and ranks[i] == rank
        return listed or uniform(self.seed, SLOW_RANK, rank, 0) < self.straggler_fraction

    def compute_time(self, op: int, rank: int, duration: float) -> float:
        """A compute op's duration this step: lognormal jitter of mean 1, times a slow rank's
        factor when it is slow in this step."""
        factor = 1.0
        if self.compute_cv > 0:
            s2 = math.log1p(self.compute_cv * self.compute_cv)
            z = normal(self.seed, COMPUTE_JITTER, op, self.iteration)
            factor = math.exp(math.sqrt(s2) * z - 0.5 * s2)
        if self.slow(rank) and (
            self.straggler_probability >= 1.0
            or uniform(self.seed, SLOW_STEP, rank, self.iteration) < self.straggler_probability
        ):
            factor *= self.straggler_slowdown
        return duration * factor

    def latency_factor(self, key: int, hops: float) -> float:
        """How much longer than its median a latency term takes: the slowest of `hops`
        concurrent lognormal hops, one draw."""
        if self.latency_sigma <= 0:
            return 1.0
        u = uniform(self.seed, HOP_LATENCY, key, self.iteration)
        return math.exp(self.latency_sigma * max_of_normals(max(hops, 1.0), u))
