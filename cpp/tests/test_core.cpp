// Unit tests of the C++ core on its own (no Python): each expectation derived in a comment.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "podsim/collectives.hpp"
#include "podsim/engine.hpp"
#include "podsim/errors.hpp"

using namespace podsim;

namespace {

int failures = 0;

void expect_near(double got, double want, const char* what) {
  if (std::abs(got - want) > 1e-12 * std::abs(want)) {
    std::printf("FAIL %s: got %.17g, want %.17g\n", what, got, want);
    ++failures;
  }
}

void expect(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAIL %s\n", what);
    ++failures;
  }
}

Topology topology(std::int64_t devices, std::int64_t domain, std::int64_t pod, double oversub) {
  // scale-up 400 GB/s, 2 us; scale-out 50 GB/s, 5 us; launch 3 us.
  return {devices, domain, pod, 400e9, 2e-6, 50e9, 5e-6, oversub, 3e-6};
}

// Sends src -> dst of `bytes` each on its own stream; returns the program.
Program transfers(const std::vector<std::pair<int, int>>& pairs, double bytes) {
  Program p;
  p.dep_offsets = {0};
  p.group_offsets = {0};
  int stream = 1;
  for (auto [src, dst] : pairs) {
    for (int side = 0; side < 2; ++side) {
      p.rank.push_back(side == 0 ? src : dst);
      p.stream.push_back(stream);
      p.kind.push_back(static_cast<std::int8_t>(side == 0 ? Kind::Send : Kind::Recv));
      p.duration.push_back(0.0);
      p.bytes.push_back(bytes);
      p.peer.push_back(side == 0 ? dst : src);
      p.collective.push_back(-1);
      p.algorithm.push_back(-1);
      p.repeat.push_back(1);
      p.dep_offsets.push_back(0);
    }
    ++stream;
  }
  return p;
}

void ring_all_reduce_closed_form() {
  // 8 ranks in one domain: L + 2(n-1) a + 2(n-1)/n S b = 3us + 14 x 2us + 1.75 S / 400 GB/s.
  const Topology t = topology(8, 8, 8, 1.0);
  const std::vector<std::int32_t> members{0, 1, 2, 3, 4, 5, 6, 7};
  const double S = 1e9;
  expect_near(collective_time(t, CollectiveOp::AllReduce, Algorithm::Ring, members, S),
              3e-6 + 14 * 2e-6 + 1.75 * S / 400e9, "ring all-reduce");
}

void dogbone() {
  // One rank per domain, pods of 2, oversubscription 4: pod uplink 2 x 50/4 = 25 GB/s shared
  // by 0->2 and 1->3: 12.5 GB/s each. Ends at L + a + S / 12.5 GB/s.
  const double S = 1e9;
  Engine engine(transfers({{0, 2}, {1, 3}}, S), topology(4, 1, 2, 4.0), NetworkMode::Contention);
  expect(engine.advance(1000), "dogbone finishes");
  expect_near(engine.end()[0], 3e-6 + 5e-6 + S / 12.5e9, "dogbone flow 0");
  expect_near(engine.end()[2], 3e-6 + 5e-6 + S / 12.5e9, "dogbone flow 1");
}

void deadlock_is_reported() {
  Program p = transfers({{0, 1}}, 1e6);
  p.kind[0] = static_cast<std::int8_t>(Kind::Recv);  // two receives, no send
  p.peer[0] = 1;
  p.rank[0] = 0;
  p.peer[1] = 0;
  Engine engine(p, topology(2, 2, 2, 1.0), NetworkMode::Analytical);
  try {
    engine.advance(1000);
    expect(false, "deadlock raises");
  } catch (const DeadlockError& e) {
    expect(std::string(e.what()).find("no matching send") != std::string::npos,
           "deadlock names the missing send");
  }
}

void bad_program_is_rejected() {
  Program p = transfers({{0, 1}}, 1e6);
  p.rank[0] = 7;  // outside the 2 devices
  try {
    Engine engine(p, topology(2, 2, 2, 1.0), NetworkMode::Analytical);
    expect(false, "bad rank raises");
  } catch (const ProgramError& e) {
    expect(std::string(e.what()).find("rank = 7") != std::string::npos, "error names the rank");
  }
}

}  // namespace

int main() {
  ring_all_reduce_closed_form();
  dogbone();
  deadlock_is_reported();
  bad_program_is_rejected();
  std::printf("%s\n", failures == 0 ? "all C++ core tests passed" : "C++ core tests FAILED");
  return failures == 0 ? 0 : 1;
}
