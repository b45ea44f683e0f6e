// Embeds podsim's C++ core: builds two programs with podsim::ProgramBuilder, runs them on the
// engine in both network modes and checks each against its closed form (docs/engine.md).
// Prints "N passed, M failed" and exits non-zero if anything fails.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <podsim/builder.hpp>
#include <podsim/engine.hpp>
#include <podsim/errors.hpp>
#include <vector>

namespace {

// 128 servers of 8 devices (scale-up domains) in one pod, non-blocking:
// scale-up 450 GB/s and 1 us, scale-out (one NIC per device) 50 GB/s and 5 us, launch 4 us.
constexpr std::int64_t kDevices = 1024;
constexpr std::int64_t kDomain = 8;
constexpr double kUpBandwidth = 450e9;
constexpr double kUpLatency = 1e-6;
constexpr double kOutBandwidth = 50e9;
constexpr double kOutLatency = 5e-6;
constexpr double kLaunch = 4e-6;

podsim::Topology cluster() {
  return {kDevices,      kDomain,     kDevices, kUpBandwidth, kUpLatency,
          kOutBandwidth, kOutLatency, 1.0,      kLaunch};
}

// Runs `program` to completion; returns its makespan (seconds).
double run(const podsim::Program& program, podsim::NetworkMode mode) {
  podsim::Engine engine(program, cluster(), mode);
  while (!engine.advance(1 << 20)) {
  }
  return engine.makespan();
}

// A ring all-reduce of S = 1 GiB over all 1,024 ranks, in rank order.
//
// The group spans 128 domains holding 8 members each (balanced), so the ring runs as g = 8
// channels (docs/engine.md, "ring over balanced domains"):
//   T = L + steps a + X max((g-1)/g b_u, b_o/g),  steps = 2(n-1),  X = 2(n-1)/n S,
// with a the largest step latency (the scale-out hops: a = 5 us), b_u = 1/450e9 and
// b_o = 1/50e9 s/byte. (g-1)/g b_u = 1/514.3e9 < b_o/g = 1/400e9: the NICs are the bottleneck,
//   T = 4e-6 + 2 * 1023 * 5e-6 + 2 * 1023/1024 * 2^30 / 400e9
//     = 4e-6 + 10.23e-3 + 5.3635...e-3 = 15.5975...e-3 s.
podsim::Program ring_all_reduce(double bytes) {
  podsim::ProgramBuilder b;
  std::vector<std::int32_t> ranks;
  for (std::int32_t r = 0; r < kDevices; ++r) ranks.push_back(r);
  const std::int32_t group = b.group(ranks);
  for (std::int32_t r = 0; r < kDevices; ++r) {
    b.collective(r, podsim::CollectiveOp::AllReduce, group, bytes, podsim::Algorithm::Ring);
  }
  return b.build();
}

double ring_all_reduce_expected(double bytes) {
  const double n = static_cast<double>(kDevices), g = static_cast<double>(kDomain);
  const double per_byte = std::max((g - 1) / g / kUpBandwidth, 1.0 / kOutBandwidth / g);
  return kLaunch + 2 * (n - 1) * kOutLatency + 2 * (n - 1) / n * bytes * per_byte;
}

// A two-stage pipeline of M microbatches between rank 0 (stage 0) and rank 8 (stage 1, in the
// next domain, so activations cross the NICs). Stage 0 computes microbatch k for c0 (stream 0)
// and sends its activations, S bytes with tag 1, on stream 1 once computed; stage 1 receives
// them on stream 1 and computes for c1 on stream 0 once received.
//
// One transfer takes t = L + a_o + S b_o (docs/engine.md, send/recv). Each microbatch passes
// three resources in order, each one at a time and in microbatch order: stage 0's compute
// stream (c0), the transfer channel (t: the k-th recv waits for the (k-1)-th) and stage 1's
// compute stream (c1), with no limit on what waits between them. For M identical jobs on
// such a flow line the last one finishes at
//   T = c0 + t + c1 + (M-1) max(c0, t, c1).
// With c0 = 2 ms, c1 = 3 ms, S = 64 MiB: t = 4e-6 + 5e-6 + 2^26 / 50e9 = 1.35118 ms, stage 1
// is the bottleneck and T = 2e-3 + 1.35118e-3 + 3e-3 + 7 * 3e-3 = 27.35118 ms.
constexpr std::int32_t kStage0 = 0;
constexpr std::int32_t kStage1 = 8;
constexpr int kTag = 1;

podsim::Program pipeline(int microbatches, double c0, double c1, double bytes) {
  podsim::ProgramBuilder b;
  for (int k = 0; k < microbatches; ++k) {
    const std::int32_t forward = b.compute(kStage0, c0);
    b.send(kStage0, kStage1, bytes, 1, {forward}, kTag);
    const std::int32_t arrived = b.recv(kStage1, kStage0, bytes, 1, {}, kTag);
    b.compute(kStage1, c1, 0, {arrived});
  }
  return b.build();
}

double pipeline_expected(int microbatches, double c0, double c1, double bytes) {
  const double t = kLaunch + kOutLatency + bytes / kOutBandwidth;
  return c0 + t + c1 + (microbatches - 1) * std::max({c0, t, c1});
}

int passed = 0;
int failed = 0;

void check(const char* what, const podsim::Program& program, double expected) {
  for (const auto mode : {podsim::NetworkMode::Analytical, podsim::NetworkMode::Contention}) {
    const char* mode_name = mode == podsim::NetworkMode::Analytical ? "analytical" : "contention";
    try {
      const double got = run(program, mode);
      const bool ok = std::abs(got - expected) <= 1e-9 * expected;
      std::printf("%s %s (%s): %.9g s, closed form %.9g s\n", ok ? "ok  " : "FAIL", what, mode_name,
                  got, expected);
      ++(ok ? passed : failed);
    } catch (const std::exception& e) {
      std::printf("FAIL %s (%s): %s\n", what, mode_name, e.what());
      ++failed;
    }
  }
}

}  // namespace

int main() {
  const double all_reduce_bytes = 1 << 30;
  check("ring all-reduce, 1,024 ranks, 1 GiB", ring_all_reduce(all_reduce_bytes),
        ring_all_reduce_expected(all_reduce_bytes));

  const int microbatches = 8;
  const double c0 = 2e-3, c1 = 3e-3, activations = 1 << 26;
  check("two-stage pipeline, 8 microbatches", pipeline(microbatches, c0, c1, activations),
        pipeline_expected(microbatches, c0, c1, activations));

  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
