// Scale-up topologies (docs/engine.md, "Scale-up topologies"): full-mesh and torus routes, the
// mesh and torus algorithms' closed forms, the contention network reproducing them, the
// algorithm choice and the checks. Each expectation is derived in a comment. Notation: L launch
// 3 us, a = 2 us per scale-up hop, l = 1 / link bandwidth, S the bytes.
#include <numeric>
#include <set>
#include <vector>

#include "check.hpp"
#include "podsim/collectives.hpp"
#include "podsim/engine.hpp"
#include "podsim/errors.hpp"
#include "podsim/network.hpp"

using namespace podsim;
using namespace podsim::test;

namespace {

constexpr double S = 1e9;
constexpr double kMeshLink = 50e9, kTorusLink = 100e9;
using Op = CollectiveOp;
using A = Algorithm;

std::vector<std::int32_t> first(std::int32_t n, std::int32_t from = 0, std::int32_t stride = 1) {
  std::vector<std::int32_t> ranks(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) ranks[static_cast<std::size_t>(i)] = from + i * stride;
  return ranks;
}

// Domains of 8 in a full mesh, 50 GB/s per pair link (7 x 50 = 350 GB/s per device).
Topology mesh(std::int64_t devices = 8) {
  Topology t = topology(devices, 8, devices);
  t.scale_up = ScaleUp::FullMesh;
  t.link_bandwidth = kMeshLink;
  return t;
}

// One 4x4x4 torus domain (or dims given), 100 GB/s per link and direction.
Topology torus(std::array<std::int64_t, 3> dims = {4, 4, 4}) {
  const std::int64_t n = dims[0] * dims[1] * dims[2];
  Topology t = topology(n, n, n);
  t.scale_up = ScaleUp::Torus;
  t.link_bandwidth = kTorusLink;
  t.torus_dims = dims;
  return t;
}

void mesh_routes() {
  // Device 0's routes to its 7 peers: one link each, all distinct, each a pair link of 50 GB/s;
  // 9 -> 8 (second domain) is a pair link too; 0 -> 8 crosses domains over the NICs.
  const Topology t = mesh(16);
  t.validate();
  std::set<std::int32_t> links;
  for (std::int32_t peer = 1; peer < 8; ++peer) {
    const Path p = route(t, 0, peer);
    expect(p.size == 1 && p.bandwidth == kMeshLink && p.latency == kUpLat,
           "mesh route 0 -> " + std::to_string(peer) + ": one pair link");
    links.insert(p.links[0]);
    expect_near(t.link_capacity(p.links[0]), kMeshLink, "a pair link's capacity");
  }
  expect(links.size() == 7, "device 0 has 7 distinct pair links");
  expect(route(t, 1, 0).links[0] != route(t, 0, 1).links[0], "a pair link per direction");
  expect(route(t, 9, 8).size == 1, "pair link in the second domain");
  expect(route(t, 0, 8).bandwidth == kOutBw, "across domains: the NIC");
  // Ids: 4 x 16 switch/NIC links + 2 pod links + 16 x 7 pair links = 178.
  expect(t.num_links() == 178, "mesh link count");
  expect(route(t, 15, 14).links[0] < t.num_links(), "the last pair link is in range");
}

void torus_routes() {
  // (0,0,0) -> (2,2,2) in 4x4x4: 2 hops per dimension, ties (half way round) go + from the even
  // coordinate: 6 links, latency 6 a. (1,0,0) -> (3,0,0): a tie from an odd coordinate goes -.
  const Topology t = torus();
  t.validate();
  const Path far = route(t, 0, static_cast<std::int32_t>(t.at(0, {2, 2, 2})));
  expect(far.size == 6 && far.hops == 6, "torus route (0,0,0) -> (2,2,2): 6 hops");
  expect_near(far.latency, 6 * kUpLat, "6 hops of latency");
  const Path plus = route(t, 0, 2), minus = route(t, 1, 3);
  const std::int64_t base = 4 * 64 + 2;
  expect(plus.links[0] == base + 6 * 0 + 0, "tie from x = 0 goes +x");
  expect(minus.links[0] == base + 6 * 1 + 1, "tie from x = 1 goes -x");
  expect(route(t, 0, 3).size == 1 && route(t, 0, 3).links[0] == base + 1, "wrap-around: -x");
  expect(route(t, 0, 0).size == 2, "a device to itself keeps the switch path");
  // 8x8x8: (0,0,0) -> (4,4,4) is 12 hops, priced in full but longer than the contention
  // network follows: it refuses the flow with a clear error.
  const Topology big = torus({8, 8, 8});
  big.validate();
  const Path long_route = route(big, 0, static_cast<std::int32_t>(big.at(0, {4, 4, 4})));
  expect(long_route.hops == 12 && long_route.size == kMaxPathLinks, "a 12-hop route");
  expect_near(long_route.latency, 12 * kUpLat, "12 hops of latency");
  FlowNetwork network(big);
  network.reserve(1);
  expect_throws<ProgramError>(
      [&] { network.add(0, 0, static_cast<std::int32_t>(big.at(0, {4, 4, 4})), 1e6); },
      "the contention network refuses a 12-hop route", "analytical");
}

void mesh_closed_forms() {
  const Topology t = mesh();
  const auto m = first(8);
  const double l = 1.0 / kMeshLink;
  // Ring over one pair link per hop: L + 14 a + 2 (7/8) S l.
  expect_near(collective_time(t, Op::AllReduce, A::Ring, m, S),
              kLaunch + 14 * kUpLat + 1.75 * S * l, "mesh: ring all-reduce over one link per hop");
  // Mesh all-reduce: a one-shot reduce-scatter (S/8 to each peer, each over its own link) and
  // a one-shot all-gather: L + 2 a + 2 S/8 l; all-gather or reduce-scatter alone: L + a + S/8 l.
  expect_near(collective_time(t, Op::AllReduce, A::Mesh, m, S), kLaunch + 2 * kUpLat + S / 4 * l,
              "mesh all-reduce");
  for (Op op : {Op::AllGather, Op::ReduceScatter}) {
    expect_near(collective_time(t, op, A::Mesh, m, S), kLaunch + kUpLat + S / 8 * l,
                std::string("mesh ") + to_string(op));
  }
  // Direct all-to-all: S/8 to each peer over its own link: L + 7 a + S/8 l.
  expect_near(collective_time(t, Op::AllToAll, A::Direct, m, S), kLaunch + 7 * kUpLat + S / 8 * l,
              "mesh: direct all-to-all");
  // The flattened model (a switch of the aggregate 7 x 50 GB/s): ring all-reduce's bandwidth
  // term 1.75 S / 350 GB/s, 7 times less than over one link; the mesh algorithm recovers it:
  // 2 S/8 / 50 GB/s = 1.75 S / 350 GB/s.
  Topology flat = topology(8, 8, 8);
  flat.scale_up_bandwidth = 7 * kMeshLink;
  const double flat_ring =
      collective_time(flat, Op::AllReduce, A::Ring, m, S) - kLaunch - 14 * kUpLat;
  const double one_link = collective_time(t, Op::AllReduce, A::Ring, m, S) - kLaunch - 14 * kUpLat;
  const double meshed = collective_time(t, Op::AllReduce, A::Mesh, m, S) - kLaunch - 2 * kUpLat;
  expect_near(one_link / flat_ring, 7.0, "ring over one link: 7x the flattened bandwidth term");
  expect_near(meshed, flat_ring, "mesh algorithm: the aggregate bandwidth");
  // Hierarchical on two mesh domains (g = 8, m = 2): one-shot intra steps, rails across:
  // 2 (a + S/8 l) + 2 (a_o + S/2 / 8 / 50 GB/s) (one rail step each way: (m-1)/m S/g b_o).
  const Topology two = mesh(16);
  expect_near(collective_time(two, Op::AllReduce, A::Hierarchical, first(16), S),
              kLaunch + 2 * (kUpLat + S / 8 * l) + 2 * (kOutLat + 0.5 * S / 8 / kOutBw),
              "mesh: hierarchical all-reduce with one-shot intra-domain steps");
}

void torus_closed_forms() {
  const Topology t = torus();
  const auto all = first(64);
  const double l = 1.0 / kTorusLink;
  // Reduce-scatter: three parts of S/3, part j along dimensions j, j+1, j+2; step t moves each
  // part's (3/4) x (its bytes) / 2 per direction on its own dimension's links: S/3, S/12, S/48:
  // 9 a + (3/8)(1/3)(1 + 1/4 + 1/16) S l = 9 a + 21/128 S l, the aggregate's (n-1)/n S / 6 l.
  expect_near(collective_time(t, Op::ReduceScatter, A::Torus, all, S),
              kLaunch + 9 * kUpLat + 21.0 / 128 * S * l, "torus reduce-scatter, 4x4x4");
  expect_near(collective_time(t, Op::AllGather, A::Torus, all, S),
              kLaunch + 9 * kUpLat + 21.0 / 128 * S * l, "torus all-gather, 4x4x4");
  expect_near(collective_time(t, Op::AllReduce, A::Torus, all, S),
              kLaunch + 18 * kUpLat + 21.0 / 64 * S * l, "torus all-reduce, 4x4x4");
  // 2x4x1: two parts of S/2. A dimension of 2 is one ring (both neighbours are one device).
  // Step 0: part 0 along x moves (1/2)(S/2) = S/4, part 1 along y (3/4)(S/2)/2 = 3S/16: the
  // step takes max(1, 3) a + S/4 l. Step 1: part 0 along y on S/4: 3S/32; part 1 along x on
  // S/8: S/16: 3 a + 3S/32 l. In all 6 a + 11/32 S l.
  const Topology small = torus({2, 4, 1});
  expect_near(collective_time(small, Op::ReduceScatter, A::Torus, first(8), S),
              kLaunch + 6 * kUpLat + 11.0 / 32 * S * l, "torus reduce-scatter, 2x4x1");
  // A line of the torus (x = 0..3 at y = z = 0) is a sub-torus: one bidirectional ring,
  // L + 3 a + 3/8 S l; a y-line (stride 4) too.
  expect_near(collective_time(t, Op::AllGather, A::Torus, first(4), S),
              kLaunch + 3 * kUpLat + 3.0 / 8 * S * l, "torus all-gather on an x line");
  expect_near(collective_time(t, Op::AllGather, A::Torus, first(4, 0, 4), S),
              kLaunch + 3 * kUpLat + 3.0 / 8 * S * l, "torus all-gather on a y line");
  // Direct all-to-all on 4x4x4 with dimension-ordered routes: each of 64 sources sends S/64 to
  // 16 destinations at each x offset, 0 + 1 + 2 + 1 = 4 x-hops per 16: 64 x 64 hop-messages of
  // S/64 = 64 S over the 128 x links: S/2 per link (likewise y, z); latency 63 peers x the
  // 6-hop diameter.
  expect_near(collective_time(t, Op::AllToAll, A::Direct, all, S),
              kLaunch + 63 * 6 * kUpLat + S / 2 * l, "torus: direct all-to-all");
}

// Packages of 2 dies (910C-like) in a switched domain of 8, a 100 GB/s die-to-die link.
Topology packaged() {
  Topology t = topology(8, 8, 8);
  t.package_size = 2;
  t.package_bandwidth = 100e9;
  return t;
}

void package_links() {
  // Dies 0 and 1 share a package: one die-to-die link each way; 0 -> 2 goes over the switch.
  // Ids: 4 x 8 + 2 pod links, then 8 x 1 die links = 42 links.
  const Topology t = packaged();
  t.validate();
  const Path die = route(t, 0, 1);
  expect(die.size == 1 && die.bandwidth == 100e9, "dies of a package: their own link");
  expect_near(t.link_capacity(die.links[0]), 100e9, "the die link's capacity");
  expect(route(t, 1, 0).links[0] != die.links[0], "a die link per direction");
  expect(route(t, 0, 2).bandwidth == kUpBw, "across packages: the switch");
  expect(t.num_links() == 42, "package link count");
  // Ring all-gather over the 8 dies: every other hop is a die link, the slowest path:
  // L + 7 a + 7/8 S / 100 GB/s.
  expect_near(collective_time(t, Op::AllGather, A::Ring, first(8), S),
              kLaunch + 7 * kUpLat + 0.875 * S / 100e9, "ring over dies: the die link bounds it");
  Topology bad = packaged();
  bad.package_size = 3;
  expect_throws<SpecError>([&] { bad.validate(); }, "packages must tile the domain",
                           "package_size");
  bad = packaged();
  bad.package_bandwidth = 0;
  expect_throws<SpecError>([&] { bad.validate(); }, "a die link needs a bandwidth",
                           "package_bandwidth");
}

void choice_and_checks() {
  const Topology m = mesh(), t = torus();
  expect(resolve_algorithm(m, Op::AllReduce, A::Auto, first(8), S) == A::Mesh,
         "auto on a full mesh: the mesh algorithm (large)");
  expect(resolve_algorithm(m, Op::AllGather, A::Auto, first(8), 1e3) == A::Mesh,
         "auto on a full mesh: the mesh algorithm (small)");
  expect(resolve_algorithm(t, Op::AllReduce, A::Auto, first(64), S) == A::Torus,
         "auto on a torus: dimension-ordered rings");
  expect(!applicable(t, Op::AllReduce, A::Torus, first(3)), "3 of a ring of 4: no torus rings");
  expect(!applicable(m, Op::AllToAll, A::LowLatency, first(8)), "DeepEP kernels need a switch");
  expect(!applicable(topology(8, 8, 8), Op::AllReduce, A::Mesh, first(8)),
         "no mesh algorithm on a switch");
  expect(!applicable(mesh(16), Op::AllReduce, A::Mesh, first(16)),
         "the mesh algorithm stays in one domain");
  Topology bad = torus();
  bad.torus_dims = {4, 4, 2};
  expect_throws<SpecError>([&] { bad.validate(); }, "torus dims must multiply to the domain",
                           "torus_dims");
  bad = torus();
  bad.link_bandwidth = 0;
  expect_throws<SpecError>([&] { bad.validate(); }, "a torus needs a link bandwidth",
                           "link_bandwidth");
  bad = torus({2, 2, 2});
  bad.devices = 12;
  expect_throws<SpecError>([&] { bad.validate(); }, "whole tori only", "devices");
  bad = torus({66, 1, 1});
  expect_throws<SpecError>([&] { bad.validate(); }, "diameter above 32 hops", "diameter");
}

void contention_matches_closed_forms() {
  // Each flow of a mesh or torus phase has links of its own: the contention network gives the
  // closed form exactly (one instance on all ranks, both modes).
  struct Case {
    Topology t;
    Op op;
    A a;
    std::int32_t n;
  };
  const Case cases[] = {
      {mesh(), Op::AllReduce, A::Mesh, 8},
      {mesh(), Op::AllGather, A::Mesh, 8},
      {mesh(), Op::ReduceScatter, A::Mesh, 8},
      {mesh(), Op::AllReduce, A::Ring, 8},
      {mesh(), Op::AllToAll, A::Direct, 8},
      {mesh(16), Op::AllReduce, A::Hierarchical, 16},
      {torus(), Op::AllReduce, A::Torus, 64},
      {torus(), Op::AllGather, A::Torus, 64},
      {torus({2, 4, 1}), Op::ReduceScatter, A::Torus, 8},
      {torus(), Op::AllToAll, A::Direct, 64},
      {packaged(), Op::AllGather, A::Ring, 8},
  };
  for (const Case& c : cases) {
    const auto ends = both_modes(c.t, c.op, c.a, first(c.n), S, 1);
    const std::string what = std::string(to_string(c.op)) + " " + to_string(c.a) + " on " +
                             std::to_string(c.n) + ": contention = analytical";
    expect_near(ends[1], ends[0], what, 1e-9);
    expect_near(ends[0], collective_time(c.t, c.op, c.a, first(c.n), S), what + " (closed form)");
  }
}

}  // namespace

int main() {
  mesh_routes();
  torus_routes();
  mesh_closed_forms();
  torus_closed_forms();
  package_links();
  choice_and_checks();
  contention_matches_closed_forms();
  return summary();
}
