// Engine semantics (docs/engine.md, "Semantics"): deps, streams, collectives waiting for their
// last member, send/recv rendezvous with tags, repeats, deadlocks and malformed programs.
// Each expectation derived in a comment. Paths in one domain: a = 2 us, 400 GB/s; L = 3 us.
#include <limits>
#include <vector>

#include "check.hpp"
#include "podsim/collectives.hpp"
#include "podsim/engine.hpp"
#include "podsim/errors.hpp"
#include "podsim/interrupt.hpp"

using namespace podsim;
using namespace podsim::test;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

Engine run(const Program& p, const Topology& t, NetworkMode mode = NetworkMode::Analytical) {
  Engine engine(p, t, mode);
  expect(engine.advance(10'000'000), "the run completes");
  return engine;
}

void deps_and_streams() {
  // Rank 0: A (1 ms, stream 0) and B (2 ms, stream 1) start at 0; C (stream 2, deps A and B) is
  // ready at max(1, 2) = 2 ms and ends at 3 ms. On stream 0 after A: D (3 ms) runs 1 -> 4 ms,
  // E (1 ms) 4 -> 5 ms: a stream runs its ops one after the other in index order.
  Builder b;
  const auto a = b.compute(0, 1e-3, 0);
  const auto bb = b.compute(0, 2e-3, 1);
  const auto c = b.compute(0, 1e-3, 2, {a, bb});
  const auto d = b.compute(0, 3e-3, 0);
  const auto e = b.compute(0, 1e-3, 0);
  // A wait joins streams: ready when D (stream 0 before it) and C (dep) are done: max(4, 3) = 4
  // ms, and it completes at once.
  const auto w = b.wait(0, 0, {c});
  const Engine engine = run(b.p, topology(2, 2, 2));
  expect_near(engine.start()[bb], 0.0, "independent streams start together");
  expect_near(engine.start()[c], 2e-3, "deps: ready at the latest dep");
  expect_near(engine.end()[c], 3e-3, "deps: then runs its duration");
  expect_near(engine.start()[d], 1e-3, "stream order: D after A");
  expect_near(engine.end()[e], 5e-3, "stream order: E after D");
  expect_near(engine.start()[w], 5e-3, "wait: ready after E (its stream) and C (its dep)");
  expect_near(engine.end()[w], 5e-3, "wait: completes at ready");
  expect_near(engine.makespan(), 5e-3, "makespan: the last end");
}

void collective_waits_for_the_last_member() {
  // Rank r computes (r+1) ms, then all 4 run an all-reduce (ring, one domain of 4):
  // the instance starts when the last member (rank 3) is ready, at 4 ms, for everyone, and all
  // end together at 4 ms + L + 2(3) a + 2(3/4) S b.
  Builder b;
  const auto g = b.group({0, 1, 2, 3});
  std::vector<std::int32_t> ops;
  for (std::int32_t r = 0; r < 4; ++r) {
    const auto c = b.compute(r, (r + 1) * 1e-3);
    ops.push_back(b.collective(r, CollectiveOp::AllReduce, g, 1e8, Algorithm::Ring, 1, {c}));
  }
  const Engine engine = run(b.p, topology(4, 4, 4));
  const double t = kLaunch + 6 * kUpLat + 1.5 * 1e8 / kUpBw;
  for (auto op : ops) {
    expect_near(engine.start()[op], 4e-3, "collective starts at the last member's arrival");
    expect_near(engine.end()[op], 4e-3 + t, "collective ends together");
    expect(engine.resolved_algorithm()[op] == static_cast<std::int8_t>(Algorithm::Ring),
           "resolved algorithm reported");
  }
  expect(engine.resolved_algorithm()[0] == -1, "no algorithm for a compute op");
}

void send_recv_rendezvous_with_tags() {
  // One transfer takes T = L + a + S b = 3 + 2 + 1e8 / 400e9 s = 255 us.
  const double S = 1e8, T = kLaunch + kUpLat + S / kUpBw;
  {
    // Rendezvous: the send is ready at 5 ms (after a compute), the recv at 0: both start at 5 ms.
    Builder b;
    const auto c = b.compute(0, 5e-3);
    const auto s = b.send(0, 1, S, 1, -1, {c});
    const auto r = b.recv(1, 0, S);
    const Engine engine = run(b.p, topology(2, 2, 2));
    expect_near(engine.start()[r], 5e-3, "recv starts when its send is ready");
    expect_near(engine.end()[s], 5e-3 + T, "send and recv end together (send)");
    expect_near(engine.end()[r], 5e-3 + T, "send and recv end together (recv)");
  }
  {
    // Tags: rank 0 sends tag 1 then tag 2 on stream 1; rank 1 receives tag 2 on stream 1 and
    // tag 1 on stream 2. Tag 1 matches at 0 and ends at T; then the tag-2 send is ready and
    // meets its recv (ready since 0): T -> 2T.
    Builder b;
    const auto s1 = b.send(0, 1, S, 1, 1);
    const auto s2 = b.send(0, 1, S, 1, 2);
    const auto r2 = b.recv(1, 0, S, 1, 2);
    const auto r1 = b.recv(1, 0, S, 2, 1);
    const Engine engine = run(b.p, topology(2, 2, 2));
    expect_near(engine.end()[s1], T, "tag 1 matched first");
    expect_near(engine.end()[r1], T, "tag 1 recv on its own stream");
    expect_near(engine.start()[r2], T, "tag 2 starts once its send is ready");
    expect_near(engine.end()[s2], 2 * T, "tag 2 ends at 2T");
  }
  {
    // The same tags with both receives on one stream (tag 2 first): the tag-1 send waits for
    // a recv behind the tag-2 recv, which waits for a send behind the tag-1 send: deadlock.
    Builder b;
    b.send(0, 1, S, 1, 1);
    b.send(0, 1, S, 1, 2);
    b.recv(1, 0, S, 1, 2);
    b.recv(1, 0, S, 1, 1);
    Engine engine(b.p, topology(2, 2, 2), NetworkMode::Analytical);
    expect_throws<DeadlockError>([&] { engine.advance(1000); },
                                 "crossed tags on one stream deadlock", "deadlock: op 0");
  }
}

void repeats() {
  // A collective with repeat = k is k back-to-back instances, each paying L: k times the closed
  // form, in both network modes (and the contention network does not copy its phases k times).
  const Topology t = topology(4, 4, 4);
  const std::vector<std::int32_t> m{0, 1, 2, 3};
  const double one = collective_time(t, CollectiveOp::AllReduce, Algorithm::Ring, m, 1e6);
  for (auto mode : {NetworkMode::Analytical, NetworkMode::Contention}) {
    Builder b;
    const auto g = b.group(m);
    for (std::int32_t r = 0; r < 4; ++r)
      b.collective(r, CollectiveOp::AllReduce, g, 1e6, Algorithm::Ring, 1000);
    const Engine engine = run(b.p, t, mode);
    expect_near(engine.makespan(), 1000 * one, "repeat 1000 = 1000 x the closed form", 1e-9);
  }
}

void deadlocks_raise() {
  // Two receives, no send: the first stuck op is named with what it misses.
  {
    Builder b;
    b.recv(0, 1, 1e6);
    b.recv(1, 0, 1e6);
    Engine engine(b.p, topology(2, 2, 2), NetworkMode::Analytical);
    expect_throws<DeadlockError>([&] { engine.advance(1000); }, "recv without send deadlocks",
                                 "has no matching send from rank 1");
  }
  // Rank 1 receives (from rank 0) before its collective; rank 0 sends only after the
  // collective, on the same stream: 1 of 2 members reaches the collective.
  {
    Builder b;
    const auto g = b.group({0, 1});
    b.collective(0, CollectiveOp::AllReduce, g, 1e6);
    b.send(0, 1, 1e6);
    b.recv(1, 0, 1e6);
    b.collective(1, CollectiveOp::AllReduce, g, 1e6);
    Engine engine(b.p, topology(2, 2, 2), NetworkMode::Contention);
    expect_throws<DeadlockError>([&] { engine.advance(1000); }, "collective deadlock",
                                 "1 of 2 members reached it");
  }
}

void malformed_programs_raise() {
  const Topology t = topology(2, 2, 2);
  auto refused = [&](Program p, const std::string& what, const std::string& contains) {
    expect_throws<ProgramError>([&] { Engine engine(p, t, NetworkMode::Analytical); },
                                "refused: " + what, contains);
  };
  Builder base;
  base.compute(0, 1e-3);
  base.send(0, 1, 1e6);
  base.recv(1, 0, 1e6);
  Program p = base.p;
  p.rank[0] = 7;
  refused(p, "rank outside the cluster", "rank = 7");
  p = base.p;
  p.stream[0] = 64;
  refused(p, "stream 64", "stream = 64");
  p = base.p;
  p.kind[0] = 9;
  refused(p, "unknown kind", "kind = 9");
  p = base.p;
  p.duration[0] = -1.0;
  refused(p, "negative compute duration", "must be finite and >= 0");
  p = base.p;
  p.bytes[1] = 0.0;
  refused(p, "send of 0 bytes", "bytes = 0");
  p = base.p;
  p.bytes[2] = 2e6;
  refused(p, "recv of other bytes than its send", "receives");
  p = base.p;
  p.peer[1] = 0;
  refused(p, "send to itself", "must be another rank");
  p = base.p;
  p.repeat[0] = 2;
  refused(p, "repeat on a compute op", "only collectives repeat");
  p = base.p;
  p.dep_ops = {2};
  p.dep_offsets = {0, 1, 1, 1};
  refused(p, "a dep on a later op", "dep 2 must be an earlier op");
  p = base.p;
  p.dep_offsets.pop_back();
  refused(p, "short dep_offsets", "program.dep_offsets");
  // Collectives whose members disagree on the bytes.
  Builder c;
  const auto g = c.group({0, 1});
  c.collective(0, CollectiveOp::AllReduce, g, 1e6);
  c.collective(1, CollectiveOp::AllReduce, g, 2e6);
  refused(c.p, "collective members disagree", "does not match op 0");
  Builder d;
  d.collective(0, CollectiveOp::AllReduce, d.group({1}), 1e6);
  refused(d.p, "a rank not in the group", "not a member of group 0");
  Builder e;
  e.group({0, 0});
  refused(e.p, "a group listing a rank twice", "twice");
}

void wait_with_a_duration_is_refused() {
  // Robustness #12: a WAIT completes at ready (it has no duration). Before, the engine ran its
  // `duration`: 5 s made it last 5 s, -1 gave end < start, NaN broke the event queue. Any
  // non-zero duration on a non-compute op is now a ProgramError, NaN and infinities included,
  // in both network modes (the reproducer wait_nan_contention.py uses the contention one).
  for (double d : {5.0, -1.0, kNaN, kInf, -1e300}) {
    for (auto mode : {NetworkMode::Analytical, NetworkMode::Contention}) {
      Builder b;
      const auto c = b.compute(0, 1e-3);
      const auto w = b.wait(0, 0, {c});
      b.p.duration[static_cast<std::size_t>(w)] = d;
      expect_throws<ProgramError>([&] { Engine engine(b.p, topology(2, 2, 2), mode); },
                                  "wait duration " + std::to_string(d) + " is refused",
                                  "op 1: duration = ");
    }
  }
  // The same for a collective and a send.
  Builder b;
  const auto g = b.group({0, 1});
  b.collective(0, CollectiveOp::AllReduce, g, 1e6);
  b.collective(1, CollectiveOp::AllReduce, g, 1e6);
  b.send(0, 1, 1e6);
  b.recv(1, 0, 1e6);
  for (std::size_t op : {std::size_t{0}, std::size_t{2}}) {
    Program p = b.p;
    p.duration[op] = 1.0;
    expect_throws<ProgramError>(
        [&] { Engine engine(p, topology(2, 2, 2), NetworkMode::Analytical); },
        "duration on a " + std::string(op == 0 ? "collective" : "send"), "has no duration");
  }
  // A zero duration stays allowed: the wait completes at its ready time, 1 ms.
  Builder ok;
  const auto c = ok.compute(0, 1e-3);
  const auto w = ok.wait(0, 1, {c});
  const Engine engine = run(ok.p, topology(2, 2, 2));
  expect_near(engine.end()[w], 1e-3, "a wait of duration 0 completes at ready");
}

void memory_proportional_to_the_program() {
  // Robustness #11, reproducer engine_memory.py. (1) One compute op on rank 2^24 - 1, stream
  // 63: the stream table was (max rank + 1) x (max stream + 1) int64 = 2^30 x 8 B = 8 GiB. Now
  // a hash map holds one entry. Run with 512 MiB of address space to spare: it completes at
  // 1 s. (2) A 64-rank all-to-all repeated 2^20 times in the contention network: its 4032
  // flows were copied per repetition (2^20 x 4032 x 24 B = 100 GB) when the instance started.
  // Now the phases are walked again for each repetition: the first 10,000 events run within the
  // same 512 MiB.
  const bool one_op = in_child(std::size_t{512} << 20, [] {
    Builder b;
    b.compute((1 << 24) - 1, 1.0, 63);
    Engine engine(b.p, topology(std::int64_t{1} << 24, 8, 64), NetworkMode::Analytical);
    return engine.advance(100) && engine.end()[0] == 1.0;
  });
  expect(one_op, "one op on rank 2^24 - 1, stream 63, in 512 MiB");
  const bool repeated = in_child(std::size_t{512} << 20, [] {
    Builder b;
    std::vector<std::int32_t> ranks(64);
    for (std::int32_t r = 0; r < 64; ++r) ranks[static_cast<std::size_t>(r)] = r;
    const auto g = b.group(ranks);
    for (std::int32_t r = 0; r < 64; ++r)
      b.collective(r, CollectiveOp::AllToAll, g, 1e6, Algorithm::Direct, kMaxRepeat);
    Engine engine(b.p, topology(64, 8, 64), NetworkMode::Contention);
    return !engine.advance(10'000) && engine.events_processed() == 10'000;
  });
  expect(repeated, "a 64-rank all-to-all x 2^20 in the contention network, in 512 MiB");
}

void restart_is_deterministic() {
  // With noise, step k's draws depend only on (seed, op, k): restarting at step 3 twice gives
  // the same bits, and a fresh engine restarted at 3 agrees.
  Builder b;
  const auto g = b.group({0, 1, 2, 3});
  for (std::int32_t r = 0; r < 4; ++r) {
    const auto c = b.compute(r, 1e-3);
    b.collective(r, CollectiveOp::AllReduce, g, 1e8, Algorithm::Auto, 2, {c});
  }
  Noise noise;
  noise.seed = 42;
  noise.compute_cv = 0.2;
  noise.latency_sigma = 0.5;
  const Topology t = topology(4, 2, 4);
  for (auto mode : {NetworkMode::Analytical, NetworkMode::Contention}) {
    Engine e1(b.p, t, mode, noise);
    e1.restart(3);
    e1.advance(1'000'000);
    const double first = e1.makespan();
    e1.restart(5);
    e1.advance(1'000'000);
    const double other = e1.makespan();
    e1.restart(3);
    e1.advance(1'000'000);
    Engine e2(b.p, t, mode, noise);
    e2.restart(3);
    e2.advance(1'000'000);
    expect(first == e1.makespan() && first == e2.makespan(), "same step, same bits");
    expect(first != other, "another step, other draws");
  }
}

void sweep_equals_the_event_loop() {
  // After a complete run, an analytical engine sweeps the order of completions that run handled
  // (docs/engine.md, "Event loop"): every step k gives the event loop's bits (a fresh engine
  // restarted at k), op for op. The program: jittered compute on two streams joined by a wait,
  // a repeated all-reduce in each domain, a data-parallel all-gather across two oversubscribed
  // pods (a wave of 4 copies), a group of one and sends across pods, with stragglers and latency
  // noise. The contention mode never sweeps.
  Builder b;
  std::vector<std::int32_t> tp, dp;
  for (std::int32_t s = 0; s < 8; s += 2) tp.push_back(b.group({s, s + 1}));
  for (std::int32_t r = 0; r < 4; ++r) dp.push_back(b.group({r, r + 4}));
  const auto alone = b.group({3});
  std::vector<std::int32_t> last(8, -1);
  for (int step = 0; step < 3; ++step) {
    for (std::int32_t r = 0; r < 8; ++r) {
      std::vector<std::int32_t> after;
      if (last[r] >= 0) after.push_back(last[r]);
      const auto a = b.compute(r, 1e-3 * (1 + r % 3), 0, after);
      const auto x = b.compute(r, 5e-4 * (1 + step), 1);
      const auto w = b.wait(r, 2, {a, x});
      b.collective(r, CollectiveOp::AllReduce, tp[static_cast<std::size_t>(r / 2)], 4e6,
                   Algorithm::Auto, 2, {w}, 0);
      last[r] = b.collective(r, CollectiveOp::AllGather, dp[static_cast<std::size_t>(r % 4)], 8e6,
                             Algorithm::Ring, 1, {w}, 1);
      if (r == 3) b.collective(r, CollectiveOp::AllReduce, alone, 1e6, Algorithm::Auto, 1, {w}, 2);
    }
    for (std::int32_t r = 0; r < 4; ++r) {
      last[r] = b.send(r, r + 4, 2e6, 2, step % 2, {last[r]});
      last[r + 4] = b.recv(r + 4, r, 2e6, 2, step % 2, {last[r + 4]});
    }
  }
  Noise noise;
  noise.seed = 9;
  noise.compute_cv = 0.3;
  noise.latency_sigma = 0.8;
  noise.straggler_ranks = {2};
  noise.straggler_slowdown = 1.5;
  noise.straggler_probability = 0.5;
  const Topology t = topology(8, 2, 4, 4.0);
  Engine swept(b.p, t, NetworkMode::Analytical, noise);
  expect(swept.advance(1'000'000) && !swept.swept(), "the first run is the event loop's");
  bool same = true, different = false;
  const double first = swept.makespan();
  for (std::uint64_t k : {1, 4, 0}) {
    swept.restart(k);
    while (!swept.advance(5)) {
    }
    Engine fresh(b.p, t, NetworkMode::Analytical, noise);
    fresh.restart(k);
    fresh.advance(1'000'000);
    same = same && swept.swept() && !fresh.swept() && swept.start() == fresh.start() &&
           swept.end() == fresh.end() && swept.makespan() == fresh.makespan() &&
           swept.events_processed() == fresh.events_processed() &&
           swept.resolved_algorithm() == fresh.resolved_algorithm();
    different = different || swept.makespan() != first;
  }
  expect(same, "a swept step equals the event loop's, bit for bit");
  expect(different, "the steps differ");
  Engine contention(b.p, t, NetworkMode::Contention, noise);
  contention.advance(10'000'000);
  contention.restart(1);
  contention.advance(10'000'000);
  expect(!contention.swept(), "the contention mode keeps the event loop");
}

// An installed interrupt poll is called during set-up and its exception stops it; none
// installed (or once the scope ends), set-up runs through.
struct Stop {};
int polls = 0;
void stop_at_the_second_poll() {
  if (++polls == 2) throw Stop{};
}

void set_up_can_be_interrupted() {
  Builder b;
  const auto g = b.group({0, 1});
  for (std::int32_t r = 0; r < 2; ++r) b.collective(r, CollectiveOp::AllReduce, g, 1e6);
  const Topology t = topology(2, 2, 2);
  bool stopped = false;
  {
    const InterruptScope scope(&stop_at_the_second_poll);
    try {
      Engine e(b.p, t, NetworkMode::Analytical);
    } catch (const Stop&) {
      stopped = true;
    }
  }
  expect(stopped && polls == 2, "an installed poll stops the set-up when it throws");
  Engine e(b.p, t, NetworkMode::Analytical);
  expect(e.advance(1'000) && polls == 2, "without a poll the set-up runs through");
}

void symmetric_copies_charge_pod_links() {
  // 8 devices, pods of 2, 1:4: a pod link carries C = 2 x 50 GB/s / 4 = 25 GB/s.
  const Topology t = topology(8, 1, 2, 4.0);
  const double C = 2 * kOutBw / 4.0, S = 1e8;
  // Full program: ranks 0 and 1 (pod 0) run ring all-reduces with ranks 2 and 3 (pod 1), groups
  // {0, 2} and {1, 3}, concurrent copies of one wave.
  Builder full;
  const auto g0 = full.group({0, 2});
  const auto g1 = full.group({1, 3});
  std::int32_t full_op = 0;
  for (std::int32_t r : {0, 2}) full_op = full.collective(r, CollectiveOp::AllReduce, g0, S);
  for (std::int32_t r : {1, 3}) full.collective(r, CollectiveOp::AllReduce, g1, S);
  Engine whole(full.p, t, NetworkMode::Analytical);
  whole.advance(1'000);
  // Symmetric: group {0, 2} stands for itself and {1, 3}; its end must be the full run's.
  Builder sym;
  const auto g = sym.group({0, 2});
  for (std::int32_t r : {0, 2}) sym.collective(r, CollectiveOp::AllReduce, g, S);
  Copies copies;
  copies.group_offsets = {0, 4};
  copies.group_ranks = {0, 2, 1, 3};
  Engine with(sym.p, t, NetworkMode::Analytical, {}, true, copies);
  with.advance(1'000);
  expect_near(with.end()[0], whole.end()[full_op], "copies: the full run's wave, exactly");
  Engine alone(sym.p, t, NetworkMode::Analytical, {}, true);
  alone.advance(1'000);
  expect(alone.end()[0] < with.end()[0], "without copies the wave is the representative's only");
  expect(with.symmetry_note().empty(), "every copy takes its representative's time");

  // A send 0 -> 2 standing for 0 -> 2 and 1 -> 3: both cross pod 0's uplink and pod 1's
  // downlink, 2 S over C: L + a + 2 S / C (the NIC's S / 50 GB/s is less).
  Builder s;
  s.send(0, 2, S);
  s.recv(2, 0, S);
  Copies pairs;
  pairs.rank_offsets = {0, 2, 2, 4, 4, 4, 4, 4, 4};
  pairs.ranks = {0, 1, 2, 3};
  Engine e(s.p, t, NetworkMode::Analytical, {}, true, pairs);
  e.advance(1'000);
  expect_near(e.end()[0], kLaunch + kOutLat + 2 * S / C, "a send's copies share the uplink");
  // Three copies {0, 1, 2} -> {4, 5, 6}: pod 0's uplink carries 2 S, pod 1's carries S, so the
  // copy 2 -> 6 would end before its representative: not exact, and the engine says so.
  pairs.rank_offsets = {0, 3, 3, 3, 3, 6, 6, 6, 6};
  pairs.ranks = {0, 1, 2, 4, 5, 6};
  Builder uneven;
  uneven.send(0, 4, S);
  uneven.recv(4, 0, S);
  Engine u(uneven.p, t, NetworkMode::Analytical, {}, true, pairs);
  expect(u.symmetry_note().find("send op 0 from rank 2") != std::string::npos,
         "unevenly loaded pod links are noted: " + u.symmetry_note());
  expect_throws<SpecError>([&] { Engine(uneven.p, t, NetworkMode::Analytical, {}, false, pairs); },
                           "copies without a symmetric program", "only for a symmetric program");
  pairs.ranks[3] = 9;
  expect_throws<SpecError>([&] { Engine(uneven.p, t, NetworkMode::Analytical, {}, true, pairs); },
                           "copies name ranks of the cluster", "copies.ranks[3] = 9");
}

// A two-stage pipeline of 4 ranks a stage (pairs in tensor-parallel groups, pods of 4 at 1:2):
// per rank a compute, an all-reduce repeated twice in its pair, then a send to the same rank of
// the next stage; stage 1 receives, computes and all-reduces. `stage_ranks`: the ranks that
// run ops, each with its stage's ops in order (the every-rank program lists rank by rank).
Program pipeline(const std::vector<std::vector<std::int32_t>>& stage_ranks) {
  Builder b;
  std::vector<std::int32_t> pairs;
  for (std::int32_t first = 0; first < 8; first += 2) pairs.push_back(b.group({first, first + 1}));
  for (std::size_t stage = 0; stage < 2; ++stage) {
    for (std::int32_t r : stage_ranks[stage]) {
      const std::int32_t pair = pairs[static_cast<std::size_t>(r / 2)];
      if (stage == 0) {
        const auto x = b.compute(r, 1e-3);
        const auto y = b.collective(r, CollectiveOp::AllReduce, pair, 1e6, Algorithm::Auto, 2, {x});
        b.send(r, r + 4, 4e6, 1, 0, {y});
      } else {
        const auto x = b.recv(r, r - 4, 4e6, 1, 0);
        const auto y = b.compute(r, 2e-3, 0, {x});
        b.collective(r, CollectiveOp::AllReduce, pair, 1e6, Algorithm::Auto, 1, {y});
      }
    }
  }
  return b.p;
}

void replicated_runs_equal_every_rank_runs() {
  const Topology t = topology(8, 2, 4, 2.0);
  const Noise noise{7, 0.2, 0.5, 0.25, {5}, 1.5, 0.5};
  Engine full(pipeline({{0, 1, 2, 3}, {4, 5, 6, 7}}), t, NetworkMode::Analytical, noise);
  // Representatives 0 and 4, each standing for its stage; pair {0, 1} for every pair of stage 0,
  // {4, 5} for every pair of stage 1 (the pairs no representative is in stand for themselves).
  Copies copies;
  copies.rank_offsets = {0, 4, 4, 4, 4, 8, 8, 8, 8};
  copies.ranks = {0, 1, 2, 3, 4, 5, 6, 7};
  copies.group_offsets = {0, 4, 6, 10, 12};
  copies.group_ranks = {0, 1, 2, 3, 2, 3, 4, 5, 6, 7, 6, 7};
  Engine sym(pipeline({{0}, {4}}), t, NetworkMode::Analytical, {}, true, copies);
  expect_throws<SpecError>([&] { sym.replicate(noise); }, "replicate before a run",
                           "follows a complete run");
  sym.advance(1'000);
  sym.replicate(noise);
  expect(sym.replicated_ops() == static_cast<std::int64_t>(full.start().size()), "every op");
  std::vector<double> makespans;
  for (std::uint64_t step = 0; step < 3; ++step) {
    if (step > 0) full.restart(step);
    full.advance(1'000);
    std::vector<double> start(full.start().size()), end(start.size());
    const double makespan = sym.replicated_times(step, start.data(), end.data());
    expect(makespan == full.makespan(), "step " + std::to_string(step) + ": the same makespan");
    expect(start == full.start() && end == full.end(),
           "step " + std::to_string(step) + ": every op's times, bit for bit");
    makespans.push_back(makespan);
  }
  expect(sym.replicated_makespans(0, 3, 2) == makespans, "two threads: the same makespans");
  expect(makespans[0] != makespans[1], "each step draws anew");
  expect_throws<SpecError>([&] { (void)sym.replicated_makespans(0, 1, 0); }, "threads >= 1",
                           "threads = 0");
  // Copies of pair {0, 1} that leave ranks 2 and 3 out: they would never run the collective.
  copies.group_ranks = {0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 6, 7};
  Engine broken(pipeline({{0}, {4}}), t, NetworkMode::Analytical, {}, true, copies);
  broken.advance(1'000);
  expect_throws<SpecError>([&] { broken.replicate(noise); }, "group copies cover each copy once",
                           "copies.group_ranks: the copies of group 0");
  // Representative 4 standing for no rank: its ops would vanish from the every-rank program.
  copies.group_ranks = {0, 1, 2, 3, 2, 3, 4, 5, 6, 7, 6, 7};
  copies.rank_offsets = {0, 4, 4, 4, 4, 4, 4, 4, 4};
  copies.ranks = {0, 1, 2, 3};
  Engine alone(pipeline({{0}, {4}}), topology(8, 2, 8), NetworkMode::Analytical, {}, true, copies);
  alone.advance(1'000);
  expect_throws<SpecError>([&] { alone.replicate(noise); }, "every representative is a copy",
                           "rank 4 runs ops but stands for no rank");
}

}  // namespace

int main() {
  deps_and_streams();
  collective_waits_for_the_last_member();
  send_recv_rendezvous_with_tags();
  repeats();
  deadlocks_raise();
  malformed_programs_raise();
  wait_with_a_duration_is_refused();
  memory_proportional_to_the_program();
  restart_is_deterministic();
  sweep_equals_the_event_loop();
  set_up_can_be_interrupted();
  symmetric_copies_charge_pod_links();
  replicated_runs_equal_every_rank_runs();
  return summary();
}
