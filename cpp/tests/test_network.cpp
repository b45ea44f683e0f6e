// The topology and the max-min fair flow network (docs/engine.md, "Cluster topology" and
// "Network modes"). Each expectation is derived in a comment. Bandwidths (check.hpp): scale-up
// 400 GB/s, scale-out (NIC) 50 GB/s; a pod's uplink is pod_size x 50 GB/s / oversubscription.
#include <limits>
#include <string>
#include <vector>

#include "check.hpp"
#include "podsim/collectives.hpp"
#include "podsim/engine.hpp"
#include "podsim/errors.hpp"
#include "podsim/network.hpp"

using namespace podsim;
using namespace podsim::test;

namespace {

// Runs the network until every flow has finished; returns each owner's finish time.
std::vector<double> drain(FlowNetwork& network, std::size_t owners) {
  std::vector<double> done(owners, -1.0);
  std::vector<std::int32_t> finished;
  while (network.active() > 0) {
    const double next = network.recompute();
    finished.clear();
    network.finish(next, finished);
    for (std::int32_t owner : finished) done[static_cast<std::size_t>(owner)] = next;
  }
  return done;
}

void two_flows_on_one_link() {
  // One domain of 4: 0->1 and 0->2 both leave over up(0) (400 GB/s) and enter over different
  // down links: the shared link gives each 200 GB/s; 1 GB takes 5 ms.
  const Topology t = topology(4, 4, 4);
  FlowNetwork network(t);
  network.reserve(2);
  network.add(0, 0, 1, 1e9);
  network.add(1, 0, 2, 1e9);
  const auto done = drain(network, 2);
  expect_near(done[0], 1e9 / 200e9, "two flows share a link: flow 0");
  expect_near(done[1], 1e9 / 200e9, "two flows share a link: flow 1");
}

void merged_flows_count_as_many() {
  // A flow standing for 4 identical flows on up(0): 400 / 4 = 100 GB/s each; 1 GB in 10 ms.
  const Topology t = topology(4, 4, 4);
  FlowNetwork network(t);
  network.reserve(1);
  network.add(0, 0, 1, 1e9, 4);
  expect_near(drain(network, 1)[0], 1e9 / 100e9, "a merged flow of 4 gets a quarter");
}

void dogbone_and_leftover() {
  // Domains of 1, pods of 2, oversubscription 4: each pod uplink carries 2 x 50 / 4 = 25 GB/s.
  // Flows: A 0->2 and B 1->3 cross pod 0's uplink and pod 1's downlink; C 0->1 stays in pod 0
  // (nic_up(0) -> nic_down(1)) and shares nic_up(0) (50 GB/s) with A.
  // Progressive filling: the smallest fair share is the uplink's 25 / 2 = 12.5 GB/s (nic_up(0)
  // offers 50 / 2 = 25): A and B get 12.5. nic_up(0) has 50 - 12.5 = 37.5 GB/s left for C alone:
  // the leftover is redistributed. 1 GB: A and B end at 1e9 / 12.5e9 = 80 ms; C at 1e9 / 37.5e9
  // = 26.67 ms. C's end frees nothing A or B is short of (they stay on the uplink).
  const Topology t = topology(4, 1, 2, 4.0);
  FlowNetwork network(t);
  network.reserve(3);
  network.add(0, 0, 2, 1e9);
  network.add(1, 1, 3, 1e9);
  network.add(2, 0, 1, 1e9);
  const auto done = drain(network, 3);
  expect_near(done[0], 1e9 / 12.5e9, "dogbone: flow A limited by the pod uplink");
  expect_near(done[1], 1e9 / 12.5e9, "dogbone: flow B limited by the pod uplink");
  expect_near(done[2], 1e9 / 37.5e9, "dogbone: flow C gets the NIC's leftover 37.5 GB/s");
}

void rates_recomputed_when_a_flow_ends() {
  // 0->1 (1 GB) and 0->2 (3 GB) share up(0): 200 GB/s each until the first ends at 5 ms; the
  // second then has 3 - 1 = 2 GB left and the whole 400 GB/s: 2e9 / 400e9 = 5 ms more: 10 ms.
  const Topology t = topology(4, 4, 4);
  FlowNetwork network(t);
  network.reserve(2);
  network.add(0, 0, 1, 1e9);
  network.add(1, 0, 2, 3e9);
  std::vector<std::int32_t> owners;
  const double first = network.recompute();
  expect_near(first, 5e-3, "recompute: the next finish is the short flow's");
  network.finish(first, owners);
  expect(owners.size() == 1 && owners[0] == 0, "finish removes only the short flow");
  expect(network.active() == 1, "one flow left");
  expect_near(network.recompute(), 10e-3, "the long flow speeds up to the whole link");

  // A flow added later: at 2 ms (0->1 1 GB alone since 0): 0.8 GB sent, 0.2 GB left. From 2 ms
  // 0->2 (1 GB) joins: 200 GB/s each; 0->1 ends at 2 + 1 = 3 ms; 0->2 has 0.8 GB left, alone:
  // 2 ms more: 5 ms.
  FlowNetwork later(t);
  later.reserve(1);
  later.add(0, 0, 1, 1e9);
  later.recompute();
  later.advance_to(2e-3);
  later.reserve(1);
  later.add(1, 0, 2, 1e9);
  const auto done = drain(later, 2);
  expect_near(done[0], 3e-3, "a joining flow halves the rate: first flow");
  expect_near(done[1], 5e-3, "a joining flow halves the rate: second flow");
}

void oversubscribed_fabric() {
  // 8 devices, domains of 1, pods of 4. All four of pod 0 send 1 GB to pod 1 (r -> r + 4).
  // Oversubscription 2: uplink 4 x 50 / 2 = 100 GB/s, 25 GB/s each: 40 ms.
  // Oversubscription 1: uplink 200 GB/s, the NICs (50 GB/s) limit: 20 ms.
  for (const double oversub : {2.0, 1.0}) {
    const Topology t = topology(8, 1, 4, oversub);
    FlowNetwork network(t);
    network.reserve(4);
    for (std::int32_t r = 0; r < 4; ++r) network.add(r, r, r + 4, 1e9);
    const auto done = drain(network, 4);
    const double want = oversub == 2.0 ? 40e-3 : 20e-3;
    for (std::int32_t r = 0; r < 4; ++r) {
      expect_near(done[static_cast<std::size_t>(r)], want,
                  "oversubscription " + std::to_string(oversub) + ": flow " + std::to_string(r));
    }
  }
}

void dogbone_in_the_engine() {
  // The same dogbone through the engine's contention mode: send/recv 0->2 and 1->3, 1 GB each,
  // 12.5 GB/s each over the shared uplink; each transfer ends at L + a_out + S / 12.5 GB/s.
  Builder b;
  for (auto [src, dst] : {std::pair{0, 2}, std::pair{1, 3}}) {
    b.send(src, dst, 1e9);
    b.recv(dst, src, 1e9);
  }
  Engine engine(b.p, topology(4, 1, 2, 4.0), NetworkMode::Contention);
  expect(engine.advance(1000), "engine dogbone finishes");
  for (std::size_t op = 0; op < 4; ++op) {
    expect_near(engine.end()[op], kLaunch + kOutLat + 1e9 / 12.5e9,
                "engine dogbone op " + std::to_string(op));
  }
}

void routes() {
  // Same domain: up(src) = 4 src, down(dst) = 4 dst + 1. Same pod, other domain: nic_up = 4 src
  // + 2, nic_down = 4 dst + 3. Other pod: nic_up(src), pod uplink 4 N + 2 pod(src), pod
  // downlink 4 N + 2 pod(dst) + 1, nic_down(dst); its bandwidth is min(NIC, pod link).
  const Topology t = topology(8, 2, 4, 4.0);  // pod link: 4 x 50 / 4 = 50 GB/s
  const Path intra = route(t, 0, 1);
  expect(intra.size == 2 && intra.links[0] == 0 && intra.links[1] == 5, "intra-domain links");
  expect_near(intra.bandwidth, kUpBw, "intra-domain bandwidth");
  expect_near(intra.latency, kUpLat, "intra-domain latency");
  const Path pod = route(t, 0, 2);
  expect(pod.size == 2 && pod.links[0] == 2 && pod.links[1] == 11, "intra-pod links");
  const Path cross = route(t, 1, 6);
  expect(cross.size == 4 && cross.links[0] == 6 && cross.links[1] == 32 && cross.links[2] == 35 &&
             cross.links[3] == 27,
         "cross-pod links");
  expect_near(cross.bandwidth, 50e9, "cross-pod bandwidth: min(NIC, pod link)");
  expect_near(cross.latency, kOutLat, "cross-pod latency");
  expect(t.num_links() == 4 * 8 + 2 * 2, "num_links: 4 per device, 2 per pod");
}

void link_ids_fit_in_int32() {
  // Robustness #14: link ids are int32; 4 per device then 2 per pod: at most 6 N ids, so
  // N <= floor((2^31 - 1) / 6) = 357913941 keeps every id in range for any pod size. Above it
  // the topology is refused. At it, with pods of 1, the last pod's downlink has the largest id,
  // 4 N + 2 (N - 1) + 1 = 6 N - 1 = 2147483645, and the pod capacity 1 x 1e11 / 100 = 1e9 B/s,
  // like the first pod's. (Before: up to 536870910 devices were accepted and the ids of the last
  // pods wrapped negative, so link_capacity() answered a NIC's 1e11 B/s: cross-pod transfers at
  // the end of the cluster ran 100x faster than at its start.)
  Topology t{357913941, 1, 1, 1e11, 1e-6, 1e11, 1e-6, 100.0, 0.0};
  t.validate();
  expect(true, "357913941 devices are accepted");
  const std::int64_t n = t.devices;
  const Path first = route(t, 0, 2);
  const Path last = route(t, static_cast<std::int32_t>(n - 3), static_cast<std::int32_t>(n - 1));
  expect(last.size == 4 && last.links[2] == 2147483645 && last.links[1] > 0,
         "the last pod's link ids are positive");
  expect_near(t.link_capacity(last.links[2]), 1e9, "the last pod's downlink has pod capacity");
  expect_near(last.bandwidth, 1e9, "the last pods' path is limited by the pod links");
  expect_near(first.bandwidth, last.bandwidth, "first and last pods are alike");
  for (std::int64_t devices :
       {std::int64_t{357913942}, std::int64_t{536870910}, std::int64_t{1} << 40, std::int64_t{0}}) {
    t.devices = devices;
    expect_throws<SpecError>([&] { t.validate(); },
                             "devices = " + std::to_string(devices) + " is refused",
                             "topology.devices");
  }
}

void topology_validation() {
  auto refused = [](Topology t, const char* field) {
    expect_throws<SpecError>([&] { t.validate(); }, std::string("refused: ") + field,
                             std::string("topology.") + field);
  };
  Topology t = topology(8, 4, 8);
  t.pod_size = 6;  // not a multiple of the domain size
  refused(t, "pod_size");
  t = topology(8, 4, 8);
  t.scale_up_bandwidth = std::numeric_limits<double>::quiet_NaN();
  refused(t, "scale_up_bandwidth");
  t = topology(8, 4, 8);
  t.oversubscription = 0.5;
  refused(t, "oversubscription");
  t = topology(8, 4, 8);
  t.launch_latency = -1.0;
  refused(t, "launch_latency");
}

}  // namespace

// The finish time of each block owner with `network` holding blocks, against the same flows
// added one by one (each block's flows as separate flows of its owner). `extra`: plain flows
// (owner = index past the blocks) that share some of the blocks' links unevenly, so that a block
// splits into parts of different rates.
void blocks_equal_flows(const Topology& t, const std::vector<FlowBlock>& blocks,
                        const std::vector<Flow>& extra, const std::string& what,
                        bool splits = false) {
  FlowNetwork aggregated(t), listed(t);
  aggregated.reserve(blocks.size() + extra.size());
  listed.reserve(1);
  std::vector<std::int64_t> flows_of(blocks.size() + extra.size(), 1);
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const auto owner = static_cast<std::int32_t>(b);
    aggregated.add_block(owner, blocks[b]);
    std::int64_t pairs = 0;
    for (std::int32_t src : blocks[b].srcs) {
      for (std::int32_t dst : blocks[b].dsts) {
        if (!block_pair(t, blocks[b].exclude, src, dst)) continue;
        listed.reserve(1);
        listed.add(owner, src, dst, blocks[b].bytes);
        ++pairs;
      }
    }
    expect(pairs == blocks[b].pairs, what + ": pairs counted");
    flows_of[b] = pairs;
  }
  for (std::size_t i = 0; i < extra.size(); ++i) {
    const auto owner = static_cast<std::int32_t>(blocks.size() + i);
    aggregated.add(owner, extra[i].src, extra[i].dst, extra[i].bytes);
    listed.add(owner, extra[i].src, extra[i].dst, extra[i].bytes);
  }
  expect(aggregated.active() == blocks.size() + extra.size(), what + ": one entry per block");
  aggregated.recompute();
  expect(splits == (aggregated.active() > blocks.size() + extra.size()), what + ": splits");
  const auto want = drain(listed, flows_of.size());  // an owner's time: its last flow's
  const auto got = drain(aggregated, flows_of.size());
  for (std::size_t o = 0; o < want.size(); ++o)
    expect_near(got[o], want[o], what + ": owner " + std::to_string(o), 1e-12);
}

std::vector<std::int32_t> iota(std::int32_t from, std::int32_t to) {
  std::vector<std::int32_t> out;
  for (std::int32_t i = from; i < to; ++i) out.push_back(i);
  return out;
}

void blocks_match_their_flows() {
  // An all-to-all's blocks on 16 devices, domains of 4, pods of 8, oversubscription 4: per
  // domain (scale-up), per pod between its domains (NICs), per pair of pods (NICs, pod links).
  const Topology t = topology(16, 4, 8, 4.0);
  std::vector<FlowBlock> blocks;
  for (std::int32_t d = 0; d < 16; d += 4)
    blocks.push_back(make_block(t, iota(d, d + 4), iota(d, d + 4), 1e9, Exclude::SameDevice));
  blocks.push_back(make_block(t, iota(0, 8), iota(0, 8), 2e9, Exclude::SameDomain));
  blocks.push_back(make_block(t, iota(8, 16), iota(8, 16), 2e9, Exclude::SameDomain));
  blocks.push_back(make_block(t, iota(0, 8), iota(8, 16), 1e9, Exclude::None));
  blocks.push_back(make_block(t, iota(8, 16), iota(0, 8), 3e9, Exclude::None));
  expect(blocks[0].pairs == 12 && blocks[4].pairs == 32 && blocks[6].pairs == 64,
         "block pairs: 4 x 3, 8 x 8 - 2 x 4 x 4, 8 x 8");
  blocks_equal_flows(t, blocks, {}, "an all-to-all's blocks");
  // Flows that load some members' links more than others': blocks split, parts end apart.
  const std::vector<Flow> extra{{0, 1, 5e9}, {2, 9, 4e9}, {5, 12, 1e9}, {13, 6, 2e9}, {3, 3, 0}};
  blocks_equal_flows(t, blocks, {extra.begin(), extra.end() - 1}, "blocks split by other flows",
                     true);
  // Uneven blocks: a domain with one member in the group, another with three.
  const Topology flat = topology(12, 4, 12);
  blocks_equal_flows(flat,
                     {make_block(flat, {0, 4, 5, 6, 9}, {0, 4, 5, 6, 9}, 1e9, Exclude::SameDomain),
                      make_block(flat, {4, 5, 6}, {4, 5, 6}, 1e9, Exclude::SameDevice)},
                     {{4, 8, 1e9}}, "uneven blocks", true);
  // Full-mesh and torus domains: pairs inside a domain take their own links and are listed;
  // the blocks between domains run beside them.
  for (const ScaleUp kind : {ScaleUp::FullMesh, ScaleUp::Torus}) {
    Topology mesh = topology(16, 8, 16);
    mesh.scale_up = kind;
    mesh.link_bandwidth = 100e9;
    mesh.torus_dims = {2, 2, 2};
    std::vector<Flow> inside;
    for (std::int32_t src = 0; src < 16; ++src) {
      for (std::int32_t dst = 0; dst < 16; ++dst) {
        if (src != dst && src / 8 == dst / 8) inside.push_back({src, dst, 1e8});
      }
    }
    blocks_equal_flows(mesh, {make_block(mesh, iota(0, 16), iota(0, 16), 1e9, Exclude::SameDomain)},
                       inside, kind == ScaleUp::Torus ? "torus domains" : "full-mesh domains");
  }
  expect_throws<ProgramError>(
      [&] {
        FlowNetwork network(t);
        network.reserve(1);
        network.add_block(0, make_block(t, iota(0, 8), iota(8, 16), 1e9, Exclude::SameDomain));
        network.add_block(0, make_block(t, {0}, {0}, 1e9, Exclude::SameDevice));
      },
      "a block without pairs is refused", "without pairs");
  expect_throws<ProgramError>(
      [&] {
        FlowNetwork network(t);
        network.reserve(1);
        network.add_block(0, make_block(t, {0, 8}, {1, 9}, 1e9, Exclude::None));
      },
      "a block whose flows cross different pod links is refused", "different links");
}

// Flows that start and end at many times on 64 devices (domains of 8, pods of 32 at 2:1), with
// all-to-all blocks that split: every (owner, finish time), and the components solved.
struct Run {
  std::vector<std::pair<std::int32_t, double>> ends;
  std::int64_t solves = 0;
};

Run staggered(bool selective) {
  const Topology t = topology(64, 8, 32, 2.0);
  FlowNetwork network(t);
  network.set_selective(selective);
  network.reserve(64);
  std::uint64_t state = 12345;
  auto next = [&](std::uint64_t below) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::int32_t>((state >> 33) % below);
  };
  std::int32_t owner = 0;
  auto add_some = [&](int flows) {
    for (int i = 0; i < flows; ++i) {
      // Mostly inside a domain (a component per domain), some across the fabric.
      const std::int32_t src = next(64);
      const std::int32_t dst =
          next(4) > 0 ? src / 8 * 8 + (src + 1 + next(7)) % 8 : (src + 1 + next(63)) % 64;
      network.add(owner++, src, dst, 1e8 * (1 + next(20)));
    }
  };
  for (std::int32_t d = 0; d < 64; d += 8) {  // an all-to-all per domain pair's pod
    network.add_block(owner++,
                      make_block(t, iota(d, d + 8), iota(d, d + 8), 3e8, Exclude::SameDevice));
  }
  network.add_block(owner++, make_block(t, iota(0, 32), iota(32, 64), 2e8, Exclude::None));
  network.add_block(owner++, make_block(t, iota(0, 32), iota(0, 32), 1e8, Exclude::SameDomain));
  add_some(40);
  Run run;
  std::vector<std::int32_t> finished;
  for (int round = 0; network.active() > 0; ++round) {
    const double at = network.recompute();
    finished.clear();
    network.finish(at, finished);
    for (std::int32_t o : finished) run.ends.emplace_back(o, at);
    if (round < 60) {
      network.reserve(3);
      add_some(round % 3);
    }
  }
  run.solves = network.component_solves();
  return run;
}

void selective_update_matches_the_full_solve() {
  const Run full = staggered(false), selective = staggered(true);
  expect(full.ends.size() == selective.ends.size() && full.ends.size() > 100,
         "selective update: every owner ends");
  bool same = full.ends.size() == selective.ends.size();
  for (std::size_t i = 0; same && i < full.ends.size(); ++i)
    same = full.ends[i] == selective.ends[i];  // bit for bit
  expect(same, "selective update: the same ends as the full solve, bit for bit");
  std::printf("selective update: %lld of %lld component solves, %zu ends\n",
              static_cast<long long>(selective.solves), static_cast<long long>(full.solves),
              full.ends.size());
  // The figures docs/engine.md quotes ("Selective update"): 354 of 2,543.
  expect(selective.solves == 354 && full.solves == 2543,
         "selective update: components solved (" + std::to_string(selective.solves) + " of " +
             std::to_string(full.solves) + ")");
}

int main() {
  two_flows_on_one_link();
  merged_flows_count_as_many();
  dogbone_and_leftover();
  rates_recomputed_when_a_flow_ends();
  oversubscribed_fabric();
  dogbone_in_the_engine();
  routes();
  link_ids_fit_in_int32();
  topology_validation();
  blocks_match_their_flows();
  selective_update_matches_the_full_solve();
  return summary();
}
