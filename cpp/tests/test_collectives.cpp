// Closed-form collective times (docs/engine.md, "Collective algorithms"), the algorithm choice,
// and the contention network reproducing them without other traffic. Each expectation derived.
// Notation: L launch 3 us; a_u = 2 us, b_u = 1 / 400 GB/s (scale-up); a_o = 5 us,
// b_o = 1 / 50 GB/s (scale-out); S the bytes; n the group size.
#include <numeric>
#include <vector>

#include "check.hpp"
#include "podsim/collectives.hpp"
#include "podsim/engine.hpp"
#include "podsim/errors.hpp"

using namespace podsim;
using namespace podsim::test;

namespace {

constexpr double S = 1e9;
constexpr double bu = 1.0 / kUpBw, bo = 1.0 / kOutBw;

std::vector<std::int32_t> first(std::int32_t n) {
  std::vector<std::int32_t> ranks(static_cast<std::size_t>(n));
  std::iota(ranks.begin(), ranks.end(), 0);
  return ranks;
}

double time_of(const Topology& t, CollectiveOp op, Algorithm a, std::int32_t n, double bytes = S) {
  return collective_time(t, op, a, first(n), bytes);
}

void one_domain_closed_forms() {
  const Topology t = topology(8, 8, 8);  // every path intra-domain: a = a_u, b = b_u
  using Op = CollectiveOp;
  using A = Algorithm;
  // Ring all-reduce: L + 2(n-1) a + 2(n-1)/n S b = L + 14 a + 1.75 S b.
  expect_near(time_of(t, Op::AllReduce, A::Ring, 8), kLaunch + 14 * kUpLat + 1.75 * S * bu,
              "ring all-reduce, 8 in a domain");
  // Ring all-gather / reduce-scatter: L + (n-1) a + (n-1)/n S b = L + 7 a + 7/8 S b.
  for (Op op : {Op::AllGather, Op::ReduceScatter}) {
    expect_near(time_of(t, op, A::Ring, 8), kLaunch + 7 * kUpLat + 0.875 * S * bu,
                std::string("ring ") + to_string(op));
  }
  // Double binary tree all-reduce: L + 2 h a + 2 c S b, h = floor(log2 8) = 3, c = 1:
  // L + 6 a + 2 S b. For n = 2: h = 1, c = 1/2: L + 2 a + S b.
  expect_near(time_of(t, Op::AllReduce, A::Tree, 8), kLaunch + 6 * kUpLat + 2 * S * bu,
              "tree all-reduce, 8");
  expect_near(time_of(t, Op::AllReduce, A::Tree, 2), kLaunch + 2 * kUpLat + S * bu,
              "tree all-reduce, 2 (each rank sends one half)");
  // Halving-doubling all-reduce: L + 2 log2(n) a + 2(n-1)/n S b = L + 6 a + 1.75 S b; the
  // all-gather half: L + 3 a + 7/8 S b.
  expect_near(time_of(t, Op::AllReduce, A::HalvingDoubling, 8),
              kLaunch + 6 * kUpLat + 1.75 * S * bu, "halving-doubling all-reduce");
  expect_near(time_of(t, Op::AllGather, A::HalvingDoubling, 8),
              kLaunch + 3 * kUpLat + 0.875 * S * bu, "halving-doubling all-gather");
  // Broadcast / reduce as a pipelined chain: L + (n-1) a + S b = L + 7 a + S b.
  for (Op op : {Op::Broadcast, Op::Reduce}) {
    expect_near(time_of(t, op, A::Ring, 8), kLaunch + 7 * kUpLat + S * bu,
                std::string("chain ") + to_string(op));
  }
  // Binomial tree: L + ceil(log2 n) (a + S b): 3 steps for n = 8 and for n = 5.
  for (std::int32_t n : {8, 5}) {
    expect_near(time_of(t, Op::Broadcast, A::Tree, n), kLaunch + 3 * (kUpLat + S * bu),
                "binomial broadcast, n = " + std::to_string(n));
  }
  // Direct all-to-all in one domain: every rank sends S/n to each of n-1 peers over its up
  // link: L + (n-1) a + (n-1) S/n b = L + 7 a + 7/8 S b.
  expect_near(time_of(t, Op::AllToAll, A::Direct, 8), kLaunch + 7 * kUpLat + 0.875 * S * bu,
              "direct all-to-all, one domain");
}

void multi_domain_closed_forms() {
  using Op = CollectiveOp;
  using A = Algorithm;
  // 16 devices, 2 domains of 8, one pod. Hierarchical all-reduce, g = 8, m = 2:
  // L + 2(g-1) a_u + 2(g-1)/g S b_u + 2(m-1) a_o + 2(m-1)/m (S/g) b_o
  // = L + 14 a_u + 1.75 S b_u + 2 a_o + S/8 b_o.
  const Topology t16 = topology(16, 8, 16);
  expect_near(time_of(t16, Op::AllReduce, A::Hierarchical, 16),
              kLaunch + 14 * kUpLat + 1.75 * S * bu + 2 * kOutLat + S / 8 * bo,
              "hierarchical all-reduce");
  // Hierarchical all-gather: half of it: L + 7 a_u + 7/8 S b_u + a_o + 1/2 (S/8) b_o.
  expect_near(time_of(t16, Op::AllGather, A::Hierarchical, 16),
              kLaunch + 7 * kUpLat + 0.875 * S * bu + kOutLat + S / 16 * bo,
              "hierarchical all-gather");
  // Ring over balanced domains runs as g = 8 channels: L + steps a + X max((g-1)/g b_u, b_o/g)
  // with steps = 2(n-1) = 30, a = max(a_u, a_o) = a_o, X = 2(n-1)/n S = 1.875 S and
  // max(7/8 / 400e9, 1 / (8 x 50e9)) = max(2.1875e-12, 2.5e-12) = 2.5e-12 s/B.
  expect_near(time_of(t16, Op::AllReduce, A::Ring, 16),
              kLaunch + 30 * kOutLat + 1.875 * S * 2.5e-12, "channelled ring all-reduce");
  // Direct all-to-all over 2 domains of 4 (8 devices, one pod): each rank sends S/8 to 3 peers
  // in its domain (3 S/8 at 400 GB/s) and to 4 outside (4 S/8 at 50 GB/s); a = a_o:
  // L + 7 a_o + max(3 S/8 b_u, 4 S/8 b_o) = L + 7 a_o + S / 100e9.
  expect_near(time_of(topology(8, 4, 8), Op::AllToAll, A::Direct, 8),
              kLaunch + 7 * kOutLat + S / 100e9, "direct all-to-all over two domains");
}

void one_rank_groups() {
  // Robustness #18: with n = 1 every collective takes L (nothing moves) and has no phases, for
  // every op and every algorithm that applies; bus bandwidth is then 0 bytes moved / L (the
  // factor (n-1)/n is 0) and is computed on the Python side.
  const Topology t = topology(8, 4, 8);
  const std::vector<std::int32_t> one{5};
  for (int op = 0; op < kCollectiveOps; ++op) {
    for (int a = 1; a < kAlgorithms; ++a) {
      const auto c = static_cast<CollectiveOp>(op);
      const auto alg = static_cast<Algorithm>(a);
      if (!applicable(t, c, alg, one)) continue;
      const std::string what = std::string(to_string(c)) + " " + to_string(alg) + " on 1 rank";
      expect_near(collective_time(t, c, alg, one, S), kLaunch, what + " takes L");
      expect(collective_phases(t, c, alg, one, S).empty(), what + " has no phases");
    }
    const Algorithm chosen =
        resolve_algorithm(t, static_cast<CollectiveOp>(op), Algorithm::Auto, one, S);
    expect(chosen != Algorithm::Auto, "auto resolves on 1 rank");
  }
  // The engine: a 1-rank all-reduce repeated 3 times ends at 3 L in both network modes.
  for (auto mode : {NetworkMode::Analytical, NetworkMode::Contention}) {
    Builder b;
    b.collective(5, CollectiveOp::AllReduce, b.group({5}), S, Algorithm::Auto, 3);
    Engine engine(b.p, t, mode);
    engine.advance(100);
    expect_near(engine.end()[0], 3 * kLaunch, "engine: 1-rank collective x3 ends at 3 L");
  }
}

void auto_choice() {
  const Topology t = topology(8, 8, 8);
  using Op = CollectiveOp;
  // 8 ranks: halving-doubling (L + 6 a + 1.75 S b) beats ring (14 a, same bytes), tree
  // (6 a + 2 S b) and hierarchical over one domain (the ring's time).
  expect(resolve_algorithm(t, Op::AllReduce, Algorithm::Auto, first(8), S) ==
             Algorithm::HalvingDoubling,
         "auto: halving-doubling for 8 ranks");
  // 6 ranks (no halving-doubling): ring 10 a + 2 (5/6) S b, tree 2 floor(log2 6) a + 2 S b =
  // 4 a + 2 S b. At 1 kB the latency wins: tree (8 us against 20 us). At 10 GB the bytes win:
  // ring (41.7 ms against 50 ms); hierarchical over one domain ties with the ring: the earlier,
  // ring, wins the tie.
  expect(resolve_algorithm(t, Op::AllReduce, Algorithm::Auto, first(6), 1e3) == Algorithm::Tree,
         "auto: tree for 6 ranks, 1 kB");
  expect(resolve_algorithm(t, Op::AllReduce, Algorithm::Auto, first(6), 1e10) == Algorithm::Ring,
         "auto: ring for 6 ranks, 10 GB");
  // A requested algorithm that cannot run is a ProgramError listing the allowed ones.
  expect_throws<ProgramError>(
      [&] { resolve_algorithm(t, Op::AllReduce, Algorithm::HalvingDoubling, first(6), S); },
      "halving-doubling on 6 ranks is refused", "allowed here: ring, tree, hierarchical");
  expect_throws<ProgramError>(
      [&] { resolve_algorithm(t, Op::AllGather, Algorithm::Tree, first(4), S); },
      "tree all-gather is refused", "cannot run all-gather");
  expect_throws<ProgramError>(
      [&] { resolve_algorithm(t, Op::AllReduce, Algorithm::Direct, first(4), S); },
      "direct all-reduce is refused", "allowed here");
  expect_throws<ProgramError>([&] { collective_time(t, Op::AllReduce, Algorithm::Ring, {}, S); },
                              "an empty group is refused", "at least one rank");
}

void contention_matches_closed_forms() {
  // Without other traffic the contention network reproduces the closed forms (docs/engine.md):
  // one instance on all ranks of the cluster, both modes; the end times must agree.
  struct Case {
    Topology t;
    CollectiveOp op;
    Algorithm a;
    std::int32_t n;
  };
  using Op = CollectiveOp;
  using A = Algorithm;
  const Topology one = topology(8, 8, 8), two = topology(16, 8, 16), a2a = topology(8, 4, 8);
  const Case cases[] = {
      {one, Op::AllReduce, A::Ring, 8},
      {one, Op::AllReduce, A::Tree, 8},
      {one, Op::AllReduce, A::HalvingDoubling, 8},
      {one, Op::ReduceScatter, A::Ring, 8},
      {one, Op::Broadcast, A::Ring, 8},
      {one, Op::Broadcast, A::Tree, 5},
      {one, Op::Reduce, A::Tree, 8},
      {one, Op::AllToAll, A::Direct, 8},
      {two, Op::AllReduce, A::Hierarchical, 16},
      {two, Op::AllGather, A::Hierarchical, 16},
      {two, Op::AllReduce, A::Ring, 16},
      {a2a, Op::AllToAll, A::Direct, 8},
  };
  for (const Case& c : cases) {
    const auto ends = both_modes(c.t, c.op, c.a, first(c.n), S, 2);
    const std::string what = std::string(to_string(c.op)) + " " + to_string(c.a) + " on " +
                             std::to_string(c.n) + ": contention = analytical";
    expect_near(ends[1], ends[0], what, 1e-9);
    // Repeat 2: two back-to-back instances, each paying L.
    expect_near(ends[0], 2 * collective_time(c.t, c.op, c.a, first(c.n), S),
                what + " (repeat 2 = twice the closed form)", 1e-12);
  }
}

// NVLS all-reduce: L + start-up + (n+1)/n S / nvls_bandwidth, only in one reducing switch.
void nvls_closed_form() {
  Topology t = topology(16, 8, 16);
  t.nvls_bandwidth = 200e9;
  t.nvls_latency = 20e-6;
  expect_near(time_of(t, CollectiveOp::AllReduce, Algorithm::Nvls, 8),
              kLaunch + 20e-6 + 9.0 / 8.0 * S / 200e9, "nvls all-reduce, 8 in a domain");
  expect(applicable(t, CollectiveOp::AllReduce, Algorithm::Nvls, first(8)), "nvls in a domain");
  expect(!applicable(t, CollectiveOp::AllReduce, Algorithm::Nvls, first(16)),
         "no nvls across domains");
  expect(!applicable(t, CollectiveOp::AllGather, Algorithm::Nvls, first(8)),
         "nvls is all-reduce only");
  // auto takes it once the bytes cost its start-up: 9/8 S / 200 GB/s >= 20 us, S >= 3.56 MB
  expect(resolve_algorithm(t, CollectiveOp::AllReduce, Algorithm::Auto, first(8), 4e6) ==
             Algorithm::Nvls,
         "auto takes nvls above the switch point");
  expect(resolve_algorithm(t, CollectiveOp::AllReduce, Algorithm::Auto, first(8), 1e3) !=
             Algorithm::Nvls,
         "auto keeps the fastest other algorithm below it");
  Topology bad = t;
  bad.nvls_bandwidth = -1.0;
  expect_throws<SpecError>([&] { bad.validate(); }, "negative nvls bandwidth", "nvls_bandwidth");
  bad.nvls_bandwidth = 1e9;
  bad.scale_up = ScaleUp::FullMesh;
  expect_throws<SpecError>([&] { bad.validate(); }, "nvls on a mesh", "nvls_bandwidth");
  t.nvls_bandwidth = 0.0;
  expect(!applicable(t, CollectiveOp::AllReduce, Algorithm::Nvls, first(8)),
         "no nvls where the switch does not reduce");
}

// Ring protocols (docs/engine.md, "Protocols"): L + max(0, L (r_base - 1) + steps a r_hop) + W / f
// with NCCL's ring ratios (base 6.6 / 14.0 / 8.4 us, NVLink step 0.6 / 1.9 / 3.4 us).
void protocols_closed_form() {
  Topology t = topology(8, 8, 8);
  const double bytes = 1e5;
  const double ll =
      kLaunch + kLaunch * (6.6 / 8.4 - 1) + 14 * kUpLat * 0.6 / 3.4 + 1.75 * bytes * bu / 0.335;
  const double ll128 =
      kLaunch + kLaunch * (14.0 / 8.4 - 1) + 14 * kUpLat * 1.9 / 3.4 + 1.75 * bytes * bu / 0.92;
  const double simple = kLaunch + 14 * kUpLat + 1.75 * bytes * bu;
  const auto ring = [&](Protocol p) {
    return collective_time(t, CollectiveOp::AllReduce, Algorithm::Ring, first(8), bytes, {}, p);
  };
  expect_near(ring(Protocol::LL), ll, "ll ring all-reduce");
  expect_near(ring(Protocol::LL128), ll128, "ll128 ring all-reduce");
  expect_near(ring(Protocol::Simple), simple, "simple ring all-reduce");
  expect_near(ring(Protocol::Auto), simple, "the topology's protocol (simple) by default");
  t.protocol = Protocol::Auto;
  expect_near(ring(Protocol::Auto), ll, "auto: the fastest, ll at 100 kB");
  expect(resolve_protocol(t, CollectiveOp::AllReduce, Algorithm::Ring, first(8), 1e9) ==
             Protocol::Simple,
         "auto: simple at 1 GB");
  expect(resolve_protocol(t, CollectiveOp::AllReduce, Algorithm::Tree, first(8), 8) ==
             Protocol::Simple,
         "trees run simple");
  // Contention: one phase of the ll latency, each flow carrying its bytes / 0.335.
  const auto phases =
      collective_phases(t, CollectiveOp::AllReduce, Algorithm::Ring, first(8), bytes);
  expect(phases.size() == 1 && phases[0].flows.size() == 8, "one ring phase");
  expect_near(phases[0].latency, ll - kLaunch - 1.75 * bytes * bu / 0.335, "ll phase latency");
  expect_near(phases[0].flows[0].bytes, 1.75 * bytes / 0.335, "ll flow bytes");
  Topology bad = t;
  bad.protocol = static_cast<Protocol>(9);
  expect_throws<SpecError>([&] { bad.validate(); }, "unknown protocol", "protocol");
}

// NVLS-tree over m balanced domains of g: L + T_s + 2 floor(log2 m) a_o + max((g+1)/g S /
// nvls_bandwidth, 2 c (S/g) b_o), c = 1/2 on two domains (each tree edge carries one half).
void nvls_tree_closed_form() {
  Topology t = topology(32, 8, 32);
  t.nvls_bandwidth = 200e9;
  t.nvls_latency = 20e-6;
  const auto time = [&](std::int32_t n) {
    return time_of(t, CollectiveOp::AllReduce, Algorithm::NvlsTree, n);
  };
  // 2 domains: switch 9/8 S / 200 GB/s = 5.625 ms, NICs S/8 / 50 GB/s = 2.5 ms
  expect_near(time(16), kLaunch + 20e-6 + 2 * kOutLat + 9.0 / 8.0 * S / 200e9,
              "nvls-tree on 2 domains, switch-bound");
  t.nvls_bandwidth = 400e9;  // 4 domains: switch 2.81 ms, NICs 2 S/8 / 50 GB/s = 5 ms
  expect_near(time(32), kLaunch + 20e-6 + 4 * kOutLat + 2.0 * S / 8.0 * bo,
              "nvls-tree on 4 domains, NIC-bound");
  expect(!applicable(t, CollectiveOp::AllReduce, Algorithm::NvlsTree, first(8)),
         "no nvls-tree inside one domain");
  expect(!applicable(t, CollectiveOp::AllGather, Algorithm::NvlsTree, first(16)),
         "nvls-tree is all-reduce only");
  const auto phases =
      collective_phases(t, CollectiveOp::AllReduce, Algorithm::NvlsTree, first(16), S);
  expect(phases.size() == 1, "one pipelined phase");
  expect_near(phases[0].latency, 20e-6 + 2 * kOutLat, "start-up and two tree hops");
}

// NCCL's tree over m = 4 domains of g = 8: L + latency + max(2 (g-1)/g S b_u, 2 (S/g) b_o) /
// share, latency = L (base/8.4 - 1) + 2 (g-1) a_u nvlink/3.4 + 2 log2(m) a_o net/14 (NCCL's
// tree tuner constants against the ring's Simple).
void nccl_tree_closed_form() {
  Topology t = topology(32, 8, 32);
  const auto tree = [&](double bytes, Protocol p) {
    return collective_time(t, CollectiveOp::AllReduce, Algorithm::NcclTree, first(32), bytes, {},
                           p);
  };
  // Simple: the NICs (2 S/8 / 50 GB/s = 5 ms) bound it, not the scale-up links (4.375 ms).
  expect_near(tree(S, Protocol::Simple),
              kLaunch + 14 * kUpLat * 4.0 / 3.4 + 4 * kOutLat + 0.25 * S * bo / 0.92,
              "simple nccl-tree, NIC-bound");
  const double small = 1e5;
  expect_near(tree(small, Protocol::LL),
              kLaunch + kLaunch * (6.8 / 8.4 - 1) + 14 * kUpLat * 0.6 / 3.4 +
                  4 * kOutLat * 5.0 / 14.0 + 0.25 * small * bo * 3.8 / 0.92,
              "ll nccl-tree");
  expect_near(tree(small, Protocol::LL128),
              kLaunch + kLaunch * (14.0 / 8.4 - 1) + 14 * kUpLat * 1.25 / 3.4 +
                  4 * kOutLat * 8.5 / 14.0 + 0.25 * small * bo / (0.92 * 120.0 / 128.0),
              "ll128 nccl-tree");
  t.protocol = Protocol::Auto;
  expect(resolve_protocol(t, CollectiveOp::AllReduce, Algorithm::NcclTree, first(32), 8) ==
             Protocol::LL,
         "auto: ll at 8 bytes");
  expect(resolve_protocol(t, CollectiveOp::AllReduce, Algorithm::NcclTree, first(32), S) ==
             Protocol::Simple,
         "auto: simple at 1 GB");
  expect(!applicable(t, CollectiveOp::AllReduce, Algorithm::NcclTree, first(8)),
         "no nccl-tree inside one domain");
  expect(!applicable(t, CollectiveOp::AllGather, Algorithm::NcclTree, first(16)),
         "nccl-tree is all-reduce only");
  for (const double bytes : {8.0, 1e6, S}) {
    expect(resolve_algorithm(t, CollectiveOp::AllReduce, Algorithm::Auto, first(32), bytes) !=
               Algorithm::NcclTree,
           "auto never takes nccl-tree");
  }
  const auto phases =
      collective_phases(t, CollectiveOp::AllReduce, Algorithm::NcclTree, first(32), S);
  expect(phases.size() == 1, "one pipelined phase");
  expect_near(phases[0].latency, 14 * kUpLat * 4.0 / 3.4 + 4 * kOutLat, "chain and tree hops");
}

}  // namespace

int main() {
  protocols_closed_form();
  nccl_tree_closed_form();
  nvls_tree_closed_form();
  nvls_closed_form();
  one_domain_closed_forms();
  multi_domain_closed_forms();
  one_rank_groups();
  auto_choice();
  contention_matches_closed_forms();
  return summary();
}
