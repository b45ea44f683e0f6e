#include "podsim/engine.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "draws.hpp"
#include "event_queue.hpp"
#include "podsim/collectives.hpp"
#include "podsim/copies.hpp"
#include "podsim/errors.hpp"
#include "podsim/interrupt.hpp"
#include "podsim/network.hpp"
#include "podsim/random.hpp"
#include "program_index.hpp"
#include "replicated.hpp"

namespace podsim {
namespace {

enum class EventType : std::int8_t { FlowCheck, PhaseStart, OpDone, InstanceDone, TransferDone };

// 32 bytes: the order key (priority in the top 2 bits of `order`, the sequence number below),
// the type in the low 3 bits of `data`, the payload above them, and `hint`: another op the
// event's handling will touch (an op's first dependent, a transfer's receive), fetched into the
// cache while the event before it is handled.
struct Event {
  double time;
  std::uint64_t order;
  std::uint64_t data;
  std::int64_t hint;

  Event(double t, int priority, std::uint64_t seq, EventType type, std::int64_t payload,
        std::int64_t hint_op = -1)
      : time(t),
        order((static_cast<std::uint64_t>(priority) << 62) | seq),
        data((static_cast<std::uint64_t>(payload) << 3) | static_cast<std::uint64_t>(type)),
        hint(hint_op) {}

  EventType type() const { return static_cast<EventType>(data & 7); }
  std::int64_t payload() const { return static_cast<std::int64_t>(data >> 3); }

  // Earliest time first, then priority, then insertion order: deterministic.
  bool operator>(const Event& o) const {
    return time > o.time || (time == o.time && order > o.order);
  }
};

struct Cost;

struct Instance {
  std::int32_t group = 0;
  std::int32_t arrived = 0;
  std::int32_t expected = 0;  // ops that start it: the group's size, or the program's (symmetric)
  Algorithm algorithm = Algorithm::Auto;
  const Cost* cost = nullptr;  // looked up once, kept over restarts
};

// A collective instance or a send/recv transfer running in the contention network. A repeated
// collective runs its phases `repeat` times over; they are not copied (memory stays
// proportional to one instance): phase k is phases[k % phases.size()].
struct Activity {
  bool transfer = false;
  std::int64_t id = 0;  // instance index, or the send op
  std::vector<Phase> phases;
  std::size_t phase = 0;  // across repetitions: 0 .. phases.size() * repeat - 1
  std::int64_t pending_flows = 0;
  std::size_t repeat = 1;
  bool jitter = false;  // phase latencies drawn (a collective with latency noise)

  std::size_t total_phases() const { return phases.size() * repeat; }
  const Phase& current() const { return phases[phase % phases.size()]; }
};

using CostKey = std::tuple<std::int32_t, std::int8_t, std::int8_t, double, double, double>;

// The copies of a send that cross the same pod links (-1: none) over the same kind of path.
struct CopyPaths {
  std::int32_t up, down;
  double latency, bandwidth;
  std::int32_t src;  // one of them (the first)
  std::int64_t count;
};

// What the event loop reads per op, in half a cache line (internal order): an event touches
// the slot of the op it completes and those of its dependents, where separate columns would cost
// a cache miss each (the run visits ops of 16,384 ranks in an order the noise shuffles); what it
// only writes (start, end, algorithm) stays in columns. The first dependent is kept inline:
// most ops have one or two.
struct alignas(32) Slot {
  // compute: its duration; send: its pod-link seconds (or 0), in the analytical mode its
  // transfer's bandwidth term (those seconds included); analytical recv: its path's latency.
  double duration = 0.0;
  std::int32_t pending = 0;  // prerequisites not yet done
  std::int32_t rank = 0;
  std::int32_t original = 0;  // the program's op (ops are numbered in int32)
  std::int32_t link = -1;     // collective: its instance; send/recv: its partner (internal)
  std::int32_t next = -1;     // the first dependent, or -1
  std::int8_t kind = 0;
  std::int8_t ready = 0;
  std::int8_t more = 0;  // 1: further dependents, graph.dependent_ops after the first
};
static_assert(sizeof(Slot) == 32);

// What the sweep reads of an op, at its position in the recorded order: its slot's duration
// (compute: its duration; send: its bandwidth term; recv: its path latency), op and rank.
struct SweepOp {
  double duration;
  std::int32_t original;
  std::int32_t rank;
};

struct Cost {
  Algorithm algorithm;
  double time;     // closed form, launch included
  double latency;  // the part of it that is steps x hop latency
};

}  // namespace

struct Engine::State {
  // The run works on ops renumbered for memory locality (locality_order: the k-th ops of all
  // ranks side by side), through one slot per op (what the loop reads), the columns it writes
  // (start, end, resolved) and the index; `original` maps them back to the program, which keeps the
  // program's numbering and is read only where an instance or transfer starts. Noise draws and
  // outputs use the program's numbers, and events are handled in the same order as in program
  // order: nothing else changes.
  Program program;
  std::vector<double> op_duration;  // while building: compute duration, send pod-link seconds
  std::vector<Slot> slots;
  std::vector<double> start, end;     // per op (internal order)
  std::vector<std::int8_t> resolved;  // per op: the algorithm a collective ran, or -1
  Topology topology;
  NetworkMode mode;
  bool symmetric;
  // Instance members, groups and further dependents (what the slots do not hold).
  ProgramIndex graph;
  std::vector<std::int64_t> original;       // internal op -> its index in the caller's program
  std::vector<std::int64_t> initial_ready;  // ops with no prerequisites, in program order

  std::vector<Instance> instances;
  std::vector<Activity> activities;
  std::map<CostKey, Cost> costs;
  Draws draws;  // the noise model's draws (its Noise included)
  std::uint64_t iteration = 0;
  // Analytical mode over several pods (docs/engine.md, "Pod links"): the time of each collective
  // instance, and the pod-link seconds of each send, whose traffic crosses pods, counting every
  // concurrent copy of it (its wave).
  // NaN: the instance's own closed form (no pod links). A send's pod-link seconds are kept in
  // op_duration (then the slot's duration), which sends do not otherwise use (their duration is 0).
  std::vector<double> pod_instance_time;
  std::unordered_map<std::int32_t, double> send_pod_seconds;  // by the program's op, where > 0
  std::unique_ptr<ReplicatedPlan> replicated;                 // Engine::replicate
  Copies copies;              // what a symmetric program's groups and ranks stand for
  std::string symmetry_note;  // the first copy that would not run as its representative

  EventQueue<Event> queue;
  std::uint64_t seq = 0, events = 0, generation = 0;
  std::size_t completed = 0;
  double now = 0.0, makespan = 0.0;
  FlowNetwork network;
  bool dirty = false;
  std::vector<std::int32_t> finished_owners;

  // Analytical mode (docs/engine.md, "Event loop"): an op's times depend only on its
  // prerequisites' end times (maxima) and its own counter-keyed draws, never on the order events
  // are handled. The first complete run records the completions it handles (Event::data of each
  // OpDone, InstanceDone, TransferDone), a topological order of the program's graph; a restarted
  // run then sweeps that order once, with no queue: `start` holds each op's ready time (the
  // maximum of its prerequisites' ends) until its item is reached. Same maxima and the same
  // additions: the same bits as the event loop. Contention mode always runs the event loop
  // (flows share links: the order of events changes rates). For the sweep, ops are laid out by
  // their position in that order (an instance's members side by side, a send then its receive):
  // what it reads comes in sequence, and the dependents it releases are mostly close ahead.
  std::vector<std::uint64_t> order;
  std::vector<SweepOp> sweep_ops;                   // per position
  std::vector<std::int32_t> sweep_dependents;       // per position, its dependents' positions
  std::vector<std::int32_t> sweep_dependent_count;  // per position
  bool record = true;      // analytical runs record `order` (Engine's `record`)
  bool recording = false;  // this run records `order`
  bool recorded = false;   // `order` holds a complete run
  bool sweeping = false;   // this run sweeps `order` (from `cursor`) and has not ended yet
  bool swept = false;      // this run sweeps (or swept) `order`
  std::size_t cursor = 0, position = 0, dependent = 0;  // item, op, dependent next swept

  State(Program p, Topology t, NetworkMode m, Noise n, bool sym, Copies c)
      : topology(t), mode(m), symmetric(sym), copies(std::move(c)), network(topology) {
    {
      const ProgramIndex index = index_program(p, topology);  // checks, in program order
      copies.validate(p, topology);
      original = locality_order(p);
      check_interrupt();
      graph = permute(index, original);
      check_interrupt();
    }
    program = std::move(p);
    op_duration = gather(program.duration, original);
    for (std::size_t op = 0; op < original.size(); ++op) {
      if (graph.initial_pending[op] == 0) initial_ready.push_back(static_cast<std::int64_t>(op));
    }
    std::sort(initial_ready.begin(), initial_ready.end(),
              [&](std::int64_t a, std::int64_t b) { return original[a] < original[b]; });
    if (mode == NetworkMode::Analytical && topology.num_pods() > 1) prepare_pod_links();
    prepare_noise(std::move(n));
    fill_slots();
    if (mode == NetworkMode::Analytical) prepare_transfers();
  }

  // The per-op state of a run, from the index (which then keeps only what the loop reads rarely:
  // further dependents, instance members, groups).
  void fill_slots() {
    const std::size_t n = original.size();
    slots.resize(n);
    for (std::size_t op = 0; op < n; ++op) {
      Slot& s = slots[op];
      const auto o = static_cast<std::size_t>(original[op]);
      const auto kind = static_cast<Kind>(program.kind[o]);
      s.duration = op_duration[op];
      const std::int64_t dependents = graph.dependent_offsets[op + 1] - graph.dependent_offsets[op];
      s.next = dependents > 0 ? graph.dependent_ops[graph.dependent_offsets[op]] : -1;
      s.more = dependents > 1 ? 1 : 0;
      s.rank = program.rank[o];
      s.original = static_cast<std::int32_t>(o);
      s.link = kind == Kind::Collective ? graph.instance_of[op]
               : kind == Kind::Send || kind == Kind::Recv
                   ? static_cast<std::int32_t>(graph.partner[op])
                   : -1;
      s.kind = program.kind[o];
    }
    std::vector<double>().swap(op_duration);
    std::vector<std::int32_t>().swap(graph.instance_of);
    std::vector<std::int64_t>().swap(graph.partner);
  }

  // The analytical time of a transfer but its start and latency draw, once per send (what
  // analytical_transfer_end computed per run, the same values): the bandwidth term (or the
  // pod-link seconds) in the send's slot, the path latency in its receive's; a run then reads
  // neither the program's bytes nor the route.
  void prepare_transfers() {
    for (Slot& from : slots) {
      if (from.kind != static_cast<std::int8_t>(Kind::Send) || from.link < 0) continue;
      Slot& to = slots[static_cast<std::size_t>(from.link)];
      const Path path = route(topology, from.rank, to.rank);
      const double bytes = program.bytes[static_cast<std::size_t>(from.original)];
      if (from.duration > 0) send_pod_seconds.emplace(from.original, from.duration);
      from.duration = std::max(bytes / path.bandwidth, from.duration);  // pod links (or 0)
      to.duration = path.latency;
    }
  }

  // The draws, with slow devices among the ranks the program uses (not the whole cluster).
  void prepare_noise(Noise noise) {
    std::int32_t ranks = 0;
    for (std::int32_t r : program.rank) ranks = std::max(ranks, r + 1);
    draws = Draws(std::move(noise), ranks);
  }

  // Waves: the k-th instance on every group of the same size, op, algorithm, bytes, shape and
  // repeat runs at the same time as its copies (as the data-parallel groups of a step do); the
  // k-th send of every channel with the same tag and bytes likewise (as a pipeline stage's ranks
  // do). A wave's traffic over each pod link, per phase, is what each of its members' phases must
  // get through. Instances and sends are counted in program order and keyed by the program's op
  // numbers (`at`), not the internal ones. A symmetric program's groups and ranks stand for
  // their copies (`copies`), whose traffic joins the waves as in the full program; every copy
  // must then take its representative's time, or the run is not exact (`symmetry_note`).
  void prepare_pod_links() {
    prepare_instance_waves();
    prepare_send_waves();
  }

  // Notes the first copy whose time differs from its representative's (beyond rounding).
  void compare_copy(double copy, double representative, const std::string& what) {
    if (!symmetry_note.empty() ||
        std::abs(copy - representative) <= 1e-12 * std::abs(representative)) {
      return;
    }
    symmetry_note = what + " takes " + std::to_string(copy) + " s where its representative takes " +
                    std::to_string(representative) + " s: pod links are loaded unevenly";
  }

  void prepare_instance_waves() {
    using WaveKey = std::tuple<std::size_t, std::int8_t, std::int8_t, double, double, double,
                               std::int32_t, std::int32_t>;
    std::map<WaveKey, std::int32_t> waves;
    std::map<std::tuple<std::int32_t, std::size_t, std::int32_t>, double> totals;
    struct Pending {
      std::int32_t instance, wave;
      std::size_t op;  // the program's op
      std::vector<std::span<const std::int32_t>> copies;
      std::vector<std::vector<std::vector<PodLoad>>> loads;  // per copy, per phase
    };
    std::vector<Pending> spanning;
    std::vector<std::int32_t> seen(program.num_groups(), 0);
    // Per group: whether any of its copies spans pods (-1: not asked yet); every instance of a
    // group asks it.
    std::vector<std::int8_t> spanning_group(program.num_groups(), -1);
    pod_instance_time.assign(graph.instance_groups.size(),
                             std::numeric_limits<double>::quiet_NaN());
    for (std::size_t i = 0; i < graph.instance_groups.size(); ++i) {
      const std::int32_t group = graph.instance_groups[i];
      const std::int32_t k = seen[static_cast<std::size_t>(group)]++;
      const auto m = members(group);
      auto copies_of = copies.of_group(group, m);
      const auto across = [&](std::span<const std::int32_t> c) { return spans_pods(topology, c); };
      std::int8_t& spans = spanning_group[static_cast<std::size_t>(group)];
      if (spans < 0) spans = std::any_of(copies_of.begin(), copies_of.end(), across) ? 1 : 0;
      if (m.size() < 2 || spans == 0) continue;
      const std::size_t op = at(graph.instance_ops(static_cast<std::int32_t>(i))[0]);
      const Algorithm algorithm = cost(group, op).algorithm;
      const Shape shape = shape_of(op);
      const WaveKey key{m.size(),
                        program.collective[op],
                        static_cast<std::int8_t>(algorithm),
                        program.bytes[op],
                        shape.message_bytes,
                        shape.fanout,
                        program.repeat[op],
                        k};
      const auto wave =
          waves.try_emplace(key, static_cast<std::int32_t>(waves.size())).first->second;
      Pending entry{static_cast<std::int32_t>(i), wave, op, std::move(copies_of), {}};
      for (const auto& c : entry.copies) {
        auto loads = pod_loads(topology, static_cast<CollectiveOp>(program.collective[op]),
                               algorithm, c, program.bytes[op], shape);
        for (std::size_t phase = 0; phase < loads.size(); ++phase) {
          for (const PodLoad& load : loads[phase]) totals[{wave, phase, load.link}] += load.bytes;
        }
        entry.loads.push_back(std::move(loads));
      }
      spanning.push_back(std::move(entry));
      if (spanning.size() % 4096 == 0) check_interrupt();  // the poll takes the GIL
    }
    for (const Pending& p : spanning) {
      const std::int32_t group = graph.instance_groups[static_cast<std::size_t>(p.instance)];
      const auto c = static_cast<CollectiveOp>(program.collective[p.op]);
      const Algorithm algorithm = cost(group, p.op).algorithm;
      double representative = 0.0;
      for (std::size_t j = 0; j < p.copies.size(); ++j) {
        std::vector<double> seconds(p.loads[j].size(), 0.0);
        for (std::size_t phase = 0; phase < p.loads[j].size(); ++phase) {
          for (const PodLoad& load : p.loads[j][phase]) {
            seconds[phase] = std::max(seconds[phase], totals[{p.wave, phase, load.link}] /
                                                          topology.link_capacity(load.link));
          }
        }
        const double time = analytical_time(topology, c, algorithm, p.copies[j],
                                            program.bytes[p.op], shape_of(p.op), seconds);
        if (j == 0) {
          representative = time;
          pod_instance_time[static_cast<std::size_t>(p.instance)] = time;
        }
        compare_copy(time, representative,
                     "collective op " + std::to_string(p.op) + " on the copy of group " +
                         std::to_string(group) + " led by rank " + std::to_string(p.copies[j][0]));
      }
    }
  }

  // Sends, in program order: the k-th on each (src, dst, tag) channel; its wave is keyed by bytes,
  // tag and k. Keyed by the program's op (start_transfer looks it up through `at`). A send of a
  // symmetric program stands for one send from each rank its sender stands for (copy j: from
  // copies.of_rank(src)[j] to copies.of_rank(dst)[j]); the copies of a channel are grouped by the
  // pod links they cross (and their path), so that a send costs O(distinct paths), not O(copies).
  void prepare_send_waves() {
    std::vector<std::int64_t> internal(original.size());
    for (std::size_t op = 0; op < original.size(); ++op)
      internal[static_cast<std::size_t>(original[op])] = static_cast<std::int64_t>(op);
    // Per (src, dst): the copies' paths and, per tag, the sends seen so far (k). Channels whose
    // copies all stay in their pods are skipped before anything else.
    struct Channel {
      std::vector<CopyPaths> paths;
      bool crosses = false;
      std::vector<std::pair<std::int8_t, std::int32_t>> seen;  // (tag, sends so far)
    };
    std::unordered_map<std::uint64_t, Channel> channels;
    using SendWave = std::tuple<double, std::int8_t, std::int32_t>;
    std::map<SendWave, std::size_t> waves;
    std::vector<std::vector<double>> link_bytes;  // per wave, per pod link: bytes
    const std::int64_t first_pod_link = 4 * topology.devices;
    const auto pod_index = [&](std::int32_t link) {
      return static_cast<std::size_t>(link - first_pod_link);
    };
    std::vector<std::tuple<std::int64_t, std::size_t, const Channel*>> sends;
    for (std::size_t i = 0; i < program.num_ops(); ++i) {
      if (program.kind[i] != static_cast<std::int8_t>(Kind::Send) ||
          graph.partner[static_cast<std::size_t>(internal[i])] < 0) {
        continue;
      }
      const std::int32_t src = program.rank[i], dst = program.peer[i];
      const auto key = (static_cast<std::uint64_t>(src) << 32) | static_cast<std::uint32_t>(dst);
      auto [found, added] = channels.try_emplace(key);
      Channel& channel = found->second;
      if (added) {
        channel.paths = copy_paths(i);
        channel.crosses = std::any_of(channel.paths.begin(), channel.paths.end(),
                                      [](const CopyPaths& c) { return c.up >= 0; });
      }
      if (!channel.crosses) continue;
      const std::int8_t tag = program.collective[i];
      auto seen = std::find_if(channel.seen.begin(), channel.seen.end(),
                               [&](const auto& entry) { return entry.first == tag; });
      if (seen == channel.seen.end()) seen = channel.seen.insert(seen, {tag, 0});
      const std::int32_t k = seen->second++;
      const auto wave = waves.try_emplace({program.bytes[i], tag, k}, waves.size()).first->second;
      if (wave == link_bytes.size())
        link_bytes.emplace_back(static_cast<std::size_t>(2 * topology.num_pods()), 0.0);
      for (const CopyPaths& c : channel.paths) {
        if (c.up < 0) continue;
        link_bytes[wave][pod_index(c.up)] += static_cast<double>(c.count) * program.bytes[i];
        link_bytes[wave][pod_index(c.down)] += static_cast<double>(c.count) * program.bytes[i];
      }
      sends.emplace_back(static_cast<std::int64_t>(i), wave, &channel);
    }
    for (const auto& [send, wave, channel] : sends) {
      const double bytes = program.bytes[static_cast<std::size_t>(send)];
      const std::vector<double>& loads = link_bytes[wave];
      double representative = 0.0;
      for (std::size_t j = 0; j < channel->paths.size(); ++j) {
        const CopyPaths& c = channel->paths[j];
        double seconds = 0.0;
        if (c.up >= 0) {
          seconds = std::max(loads[pod_index(c.up)] / topology.link_capacity(c.up),
                             loads[pod_index(c.down)] / topology.link_capacity(c.down));
        }
        // The transfer's time but its launch: path latency and bandwidth term.
        const double time = c.latency + std::max(bytes / c.bandwidth, seconds);
        if (j == 0) {
          representative = time;
          // A send has no duration: its slot holds its pod-link seconds (start_transfer).
          op_duration[static_cast<std::size_t>(internal[static_cast<std::size_t>(send)])] = seconds;
        }
        compare_copy(time, representative,
                     "send op " + std::to_string(send) + " from rank " + std::to_string(c.src));
      }
    }
  }

  // The copies of the send at program op `send`, grouped by the pod links they cross and their
  // path (latency, bandwidth); the representative's own path first.
  std::vector<CopyPaths> copy_paths(std::size_t send) const {
    const std::int32_t src = program.rank[send], dst = program.peer[send];
    const auto from = copies.of_rank(src), to = copies.of_rank(dst);
    if (from.size() != to.size() || from.empty()) {
      throw SpecError("copies.ranks: send op " + std::to_string(send) + " from rank " +
                      std::to_string(src) + " (standing for " + std::to_string(from.size()) +
                      " ranks) to rank " + std::to_string(dst) + " (standing for " +
                      std::to_string(to.size()) + "): both must stand for as many ranks, >= 1");
    }
    std::vector<CopyPaths> out;
    std::map<std::tuple<std::int32_t, std::int32_t, double, double>, std::size_t> where;
    for (std::size_t j = 0; j < from.size(); ++j) {
      const Path path = route(topology, from[j], to[j]);
      const bool crosses = topology.pod(from[j]) != topology.pod(to[j]);
      const std::int32_t up = crosses ? path.links[1] : -1, down = crosses ? path.links[2] : -1;
      const auto [it, added] =
          where.try_emplace({up, down, path.latency, path.bandwidth}, out.size());
      if (added) out.push_back({up, down, path.latency, path.bandwidth, from[j], 0});
      ++out[it->second].count;
    }
    return out;
  }

  // A field of every slot, in program order.
  template <class T, class Field>
  std::vector<T> in_program_order(Field field) const {
    std::vector<T> out(slots.size());
    for (const Slot& s : slots) out[static_cast<std::size_t>(s.original)] = field(s);
    return out;
  }
  // A per-op column, in program order.
  template <class T>
  std::vector<T> in_program_order(const std::vector<T>& values) const {
    std::vector<T> out(values.size());
    for (std::size_t op = 0; op < values.size(); ++op) out[original[op]] = values[op];
    return out;
  }
  // `start` or `end`: in position order after a sweep, in internal order otherwise.
  std::vector<double> times_in_program_order(const std::vector<double>& values) const {
    if (!swept) return in_program_order(values);
    std::vector<double> out(values.size());
    for (std::size_t p = 0; p < values.size(); ++p)
      out[static_cast<std::size_t>(sweep_ops[p].original)] = values[p];
    return out;
  }

  std::string deadlock() const {
    const ProgramIndex index = index_program(program, topology);
    return describe_deadlock(
        program, index, in_program_order<std::int32_t>([](const Slot& s) { return s.pending; }),
        in_program_order<char>([](const Slot& s) { return static_cast<char>(s.ready); }),
        in_program_order(end));
  }

  // The program's op behind an internal one.
  std::size_t at(std::int64_t op) const { return static_cast<std::size_t>(original[op]); }

  // A compute op's duration this step (Draws::compute_time).
  double compute_time(const Slot& op) const {
    return compute_time(op.duration, op.original, op.rank);
  }
  // `op`: the program's op (the draw's key), `r`: its rank.
  double compute_time(double duration, std::int32_t op, std::int32_t r) const {
    return draws.compute_time(duration, static_cast<std::uint64_t>(op), r, iteration);
  }

  double latency_factor(std::uint64_t key, double hops) const {
    return draws.latency_factor(key, hops, iteration);
  }

  std::span<const std::int32_t> members(std::int32_t group) const {
    const auto& offsets = program.group_offsets;
    return {program.group_ranks.data() + offsets[group],
            static_cast<std::size_t>(offsets[group + 1] - offsets[group])};
  }

  void push(double time, int priority, EventType type, std::int64_t payload,
            std::int64_t hint = -1) {
    queue.push(Event(time, priority, seq++, type, payload, hint));
  }

  // Asks the cache for the slots the next event will touch (the run waits on memory: its ops
  // are spread over every rank, in an order the noise shuffles).
  void prefetch_next() {
    if (queue.empty()) return;
    const Event& e = queue.top();
    if (e.type() != EventType::OpDone && e.type() != EventType::TransferDone) return;
    __builtin_prefetch(&slots[static_cast<std::size_t>(e.payload())], 1);
    if (e.hint >= 0) __builtin_prefetch(&slots[static_cast<std::size_t>(e.hint)], 1);
  }

  void init() {
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    for (Slot& s : slots) {
      s.ready = 0;
    }
    for (std::size_t op = 0; op < slots.size(); ++op) slots[op].pending = graph.initial_pending[op];
    start.assign(slots.size(), nan);
    end.assign(slots.size(), nan);
    resolved.assign(slots.size(), -1);
    instances.resize(graph.instance_groups.size());  // arrival counts are reset by reset()
    for (std::size_t i = 0; i < instances.size(); ++i) {
      Instance& instance = instances[i];
      instance.group = graph.instance_groups[i];
      const std::size_t expected = symmetric
                                       ? graph.instance_ops(static_cast<std::int32_t>(i)).size()
                                       : members(instance.group).size();
      instance.expected = static_cast<std::int32_t>(expected);
    }
    recording = mode == NetworkMode::Analytical && record;
    swept = false;
    order.clear();
    for (std::int64_t op : initial_ready) on_ready(op, 0.0);
  }

  // A run over the recorded order: every op ready at 0 until a prerequisite ends later. `start`
  // and `end` are then in position order (see times_in_program_order). The algorithms a
  // collective runs do not change between runs (`resolved` is kept).
  void reset_sweep() {
    if (sweep_ops.empty()) lay_out_sweep();
    queue.clear();
    events = 0;
    completed = 0;
    now = makespan = 0.0;
    start.assign(slots.size(), 0.0);
    end.assign(slots.size(), std::numeric_limits<double>::quiet_NaN());
    sweeping = swept = true;
    cursor = position = dependent = 0;
  }

  // Positions in the recorded order, and each position's dependents as positions.
  void lay_out_sweep() {
    const std::size_t n = slots.size();
    std::vector<std::int32_t> at_position(n), position_of(n);
    std::size_t p = 0;
    const auto place = [&](std::int64_t op) {
      at_position[p] = static_cast<std::int32_t>(op);
      position_of[static_cast<std::size_t>(op)] = static_cast<std::int32_t>(p++);
    };
    for (const std::uint64_t data : order) {
      const auto item = static_cast<std::int64_t>(data >> 3);
      switch (static_cast<EventType>(data & 7)) {
        case EventType::InstanceDone:
          for (std::int64_t op : graph.instance_ops(static_cast<std::int32_t>(item))) place(op);
          break;
        case EventType::TransferDone:
          place(item);
          place(slots[static_cast<std::size_t>(item)].link);
          break;
        default:
          place(item);
      }
    }
    sweep_ops.resize(n);
    sweep_dependent_count.resize(n);
    sweep_dependents.reserve(graph.dependent_ops.size());
    for (std::size_t q = 0; q < n; ++q) {
      const auto op = static_cast<std::size_t>(at_position[q]);
      const Slot& s = slots[op];
      sweep_ops[q] = {s.duration, s.original, s.rank};
      const auto first = static_cast<std::size_t>(graph.dependent_offsets[op]);
      const auto last = static_cast<std::size_t>(graph.dependent_offsets[op + 1]);
      for (std::size_t k = first; k < last; ++k)
        sweep_dependents.push_back(position_of[static_cast<std::size_t>(graph.dependent_ops[k])]);
      sweep_dependent_count[q] = static_cast<std::int32_t>(last - first);
    }
  }

  // Sweeps up to `max_items` further items of the recorded order; true once the run is done.
  bool sweep(std::uint64_t max_items) {
    const std::size_t last = cursor + static_cast<std::size_t>(std::min<std::uint64_t>(
                                          max_items, order.size() - cursor));
    for (; cursor < last; ++cursor) {
      const std::uint64_t data = order[cursor];
      const std::size_t p = position;
      switch (static_cast<EventType>(data & 7)) {
        case EventType::OpDone: {
          const SweepOp& o = sweep_ops[p];
          finish(start[p] + compute_time(o.duration, o.original, o.rank));
          break;
        }
        case EventType::InstanceDone: {
          const auto index = static_cast<std::int32_t>(data >> 3);
          const std::size_t size = graph.instance_ops(index).size();
          double t = start[p];
          for (std::size_t q = p + 1; q < p + size; ++q) t = std::max(t, start[q]);
          for (std::size_t q = p; q < p + size; ++q) start[q] = t;
          const double done =
              t + analytical_instance_time(index, static_cast<std::size_t>(sweep_ops[p].original));
          for (std::size_t q = 0; q < size; ++q) finish(done);
          break;
        }
        case EventType::TransferDone: {
          const double t = std::max(start[p], start[p + 1]);
          start[p] = start[p + 1] = t;
          const double done = transfer_end(t, sweep_ops[p].duration, sweep_ops[p + 1].duration,
                                           sweep_ops[p].original);
          finish(done);
          finish(done);
          break;
        }
        default:
          break;  // the analytical mode records no other events
      }
    }
    events = cursor;
    if (cursor < order.size()) return false;
    sweeping = false;
    return true;
  }

  // The op at the next position ends at `t`: its dependents are ready no earlier.
  void finish(double t) {
    end[position] = t;
    ++completed;
    makespan = std::max(makespan, t);
    for (std::int32_t k = sweep_dependent_count[position++]; k > 0; --k) {
      double& ready = start[static_cast<std::size_t>(sweep_dependents[dependent++])];
      ready = std::max(ready, t);
    }
  }

  // The every-rank program a symmetric one with copies stands for, as a replicated sweep of the
  // recorded order (replicated.hpp). That program lists, representative by representative in
  // rank order, each of its copies' ops (copies in their order), each copy's ops in the
  // representative's order: an op's draws are keyed by its number there.
  ReplicatedPlan replicated_plan(Noise replicated_noise) {
    if (sweep_ops.empty()) lay_out_sweep();
    ReplicatedPlan plan;
    const std::size_t positions = sweep_ops.size();
    // Representatives in rank order: their ops, copies and first op in the every-rank program.
    std::vector<std::int32_t> reps(program.rank.begin(), program.rank.end());
    std::sort(reps.begin(), reps.end());
    reps.erase(std::unique(reps.begin(), reps.end()), reps.end());
    const auto rep_of = [&](std::int32_t rank) {
      return static_cast<std::size_t>(std::lower_bound(reps.begin(), reps.end(), rank) -
                                      reps.begin());
    };
    std::vector<std::int64_t> ops_of(reps.size(), 0), base(reps.size(), 0), copy_at(reps.size());
    std::vector<std::int64_t> local(program.num_ops());
    for (std::size_t o = 0; o < program.num_ops(); ++o)
      local[o] = ops_of[rep_of(program.rank[o])]++;
    // Each rank of the cluster is a copy of at most one representative: which, and which copy.
    std::vector<std::int32_t> owner(static_cast<std::size_t>(topology.devices), -1);
    std::vector<std::int32_t> copy_index(static_cast<std::size_t>(topology.devices), -1);
    std::int64_t total = 0;
    for (std::size_t i = 0; i < reps.size(); ++i) {
      const auto copies_of = copies.of_rank(reps[i]);
      if (copies_of.empty()) {
        throw SpecError("copies.rank_offsets: rank " + std::to_string(reps[i]) +
                        " runs ops but stands for no rank (it must stand for itself first)");
      }
      base[i] = total;
      total += ops_of[i] * static_cast<std::int64_t>(copies_of.size());
      copy_at[i] = static_cast<std::int64_t>(plan.copy_ranks.size());
      for (std::size_t c = 0; c < copies_of.size(); ++c) {
        const auto r = static_cast<std::size_t>(copies_of[c]);
        if (owner[r] >= 0) {
          throw SpecError("copies.ranks: rank " + std::to_string(copies_of[c]) +
                          " stands in for ranks " + std::to_string(reps[owner[r]]) + " and " +
                          std::to_string(reps[i]) + "; a rank is a copy of one representative");
        }
        owner[r] = static_cast<std::int32_t>(i);
        copy_index[r] = static_cast<std::int32_t>(c);
        plan.copy_ranks.push_back(copies_of[c]);
      }
    }
    if (total > std::numeric_limits<std::int32_t>::max()) {
      throw SpecError("the every-rank program would have " + std::to_string(total) +
                      " ops; at most 2147483647");
    }
    plan.cells = total;
    plan.cell.resize(positions);
    plan.copies.resize(positions);
    plan.first_op.resize(positions);
    plan.op_stride.resize(positions);
    plan.ranks.resize(positions);
    plan.duration.resize(positions);
    plan.dependent_offsets.assign(positions + 1, 0);
    std::int64_t cells = 0;
    for (std::size_t p = 0; p < positions; ++p) {
      const SweepOp& o = sweep_ops[p];
      const std::size_t i = rep_of(o.rank);
      const auto n = static_cast<std::int32_t>(copies.of_rank(o.rank).size());
      plan.cell[p] = cells;
      cells += n;
      plan.copies[p] = n;
      plan.most_copies = std::max(plan.most_copies, n);
      plan.first_op[p] = base[i] + local[static_cast<std::size_t>(o.original)];
      plan.op_stride[p] = ops_of[i];
      plan.ranks[p] = copy_at[i];
      plan.duration[p] = o.duration;
      plan.dependent_offsets[p + 1] = plan.dependent_offsets[p] + sweep_dependent_count[p];
    }
    plan.dependents = sweep_dependents;
    // Per group of the symmetric program: its copies' members as copy indices, one group copy
    // after the other, and which group copy each copy of its representative is in.
    struct GroupCopies {
      std::int64_t members;
      std::vector<std::int32_t> group_of_copy;  // per copy of the representative
      std::vector<std::int32_t> leader;         // per group copy: its first member (copy index)
    };
    std::unordered_map<std::int32_t, GroupCopies> group_copies;
    const auto copies_of_group = [&](std::int32_t group, std::size_t rep) -> GroupCopies& {
      auto [it, added] = group_copies.try_emplace(group);
      if (!added) return it->second;
      GroupCopies& out = it->second;
      out.members = static_cast<std::int64_t>(plan.member_copies.size());
      const std::size_t n = copies.of_rank(reps[rep]).size();
      out.group_of_copy.assign(n, -1);
      const auto lists = copies.of_group(group, members(group));
      for (std::size_t g = 0; g < lists.size(); ++g) {
        std::int32_t first = std::numeric_limits<std::int32_t>::max();
        for (const std::int32_t r : lists[g]) {
          const auto c = copy_index[static_cast<std::size_t>(r)];
          if (owner[static_cast<std::size_t>(r)] != static_cast<std::int32_t>(rep) ||
              out.group_of_copy[static_cast<std::size_t>(c)] >= 0) {
            throw SpecError("copies.group_ranks: the copies of group " + std::to_string(group) +
                            " must hold each copy of rank " + std::to_string(reps[rep]) +
                            " (which runs its collectives) once, and no other rank; rank " +
                            std::to_string(r) + " breaks this");
          }
          out.group_of_copy[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(g);
          plan.member_copies.push_back(c);
          first = std::min(first, c);
        }
        out.leader.push_back(first);
      }
      if (lists.size() * members(group).size() != n) {
        throw SpecError("copies.group_ranks: the copies of group " + std::to_string(group) +
                        " hold " + std::to_string(lists.size() * members(group).size()) +
                        " ranks; they must hold each of the " + std::to_string(n) +
                        " copies of rank " + std::to_string(reps[rep]) + " once");
      }
      return out;
    };
    // Items, as lay_out_sweep placed them.
    std::unordered_map<std::int32_t, std::int32_t> instance_at;  // program op -> instance
    std::unordered_map<std::uint64_t, std::vector<std::pair<double, double>>> channels;
    std::size_t p = 0;
    for (const std::uint64_t data : order) {
      const auto payload = static_cast<std::int64_t>(data >> 3);
      switch (static_cast<EventType>(data & 7)) {
        case EventType::InstanceDone: {
          const auto index = static_cast<std::int32_t>(payload);
          const std::size_t size = graph.instance_ops(index).size();
          const std::int32_t group = graph.instance_groups[static_cast<std::size_t>(index)];
          if (size != 1) {
            throw SpecError(
                "a run of every rank from a symmetric program needs each collective "
                "instance on one representative; group " +
                std::to_string(group) + " has " + std::to_string(size));
          }
          const SweepOp& o = sweep_ops[p];
          const std::size_t rep = rep_of(o.rank);
          const GroupCopies& gc = copies_of_group(group, rep);
          const auto op = static_cast<std::size_t>(o.original);
          const auto size_of_group = static_cast<std::int32_t>(members(group).size());
          instance_at.emplace(o.original, static_cast<std::int32_t>(plan.instances.size()));
          plan.instances.push_back({noise_free_instance_time(index, op),
                                    instances[static_cast<std::size_t>(index)].cost->latency,
                                    program.repeat[op], size_of_group, gc.members,
                                    static_cast<std::int64_t>(plan.instance_ids.size())});
          plan.instance_ids.resize(plan.instance_ids.size() + gc.leader.size(), -1);
          plan.items.push_back({ReplicatedPlan::ItemKind::Instance, static_cast<std::int32_t>(p),
                                static_cast<std::int32_t>(plan.instances.size() - 1)});
          p += 1;
          break;
        }
        case EventType::TransferDone: {
          const SweepOp& send = sweep_ops[p];
          const SweepOp& recv = sweep_ops[p + 1];
          const auto from = copies.of_rank(send.rank), to = copies.of_rank(recv.rank);
          if (from.size() != to.size()) {
            throw SpecError("copies.ranks: send op " + std::to_string(send.original) +
                            " from rank " + std::to_string(send.rank) + " (standing for " +
                            std::to_string(from.size()) + " ranks) to rank " +
                            std::to_string(recv.rank) + " (standing for " +
                            std::to_string(to.size()) + "): both must stand for as many ranks");
          }
          // Each copy's path (latency, bandwidth), once per pair of representatives.
          const auto key =
              (static_cast<std::uint64_t>(send.rank) << 32) | static_cast<std::uint32_t>(recv.rank);
          auto [it, added] = channels.try_emplace(key);
          if (added) {
            for (std::size_t c = 0; c < from.size(); ++c) {
              const Path path = route(topology, from[c], to[c]);
              it->second.emplace_back(path.latency, path.bandwidth);
            }
          }
          const auto& paths = it->second;
          const double bytes = program.bytes[static_cast<std::size_t>(send.original)];
          const auto pod = send_pod_seconds.find(send.original);
          const double pod_seconds = pod == send_pod_seconds.end() ? 0.0 : pod->second;
          const bool same = std::all_of(paths.begin(), paths.end(),
                                        [&](const auto& x) { return x == paths.front(); });
          plan.transfers.push_back({static_cast<std::int64_t>(plan.latency.size()), same});
          for (std::size_t c = 0; c < (same ? 1 : paths.size()); ++c) {
            plan.latency.push_back(paths[c].first);
            plan.bandwidth_term.push_back(std::max(bytes / paths[c].second, pod_seconds));
          }
          plan.items.push_back({ReplicatedPlan::ItemKind::Transfer, static_cast<std::int32_t>(p),
                                static_cast<std::int32_t>(plan.transfers.size() - 1)});
          p += 2;
          break;
        }
        default:
          plan.items.push_back({ReplicatedPlan::ItemKind::Op, static_cast<std::int32_t>(p), 0});
          p += 1;
      }
    }
    // Instances of the every-rank program, numbered as its index numbers them: in program
    // order, the first member of each group copy (its leader) opens the copy's instance.
    // Each representative's collectives in program order: (instance, its group's copies).
    std::vector<std::vector<std::pair<std::int32_t, const GroupCopies*>>> collectives(reps.size());
    for (std::size_t o = 0; o < program.num_ops(); ++o) {
      const auto at = instance_at.find(static_cast<std::int32_t>(o));
      if (at == instance_at.end()) continue;
      collectives[rep_of(program.rank[o])].emplace_back(at->second,
                                                        &group_copies.at(program.peer[o]));
    }
    std::int64_t next_instance = 0;
    for (std::size_t i = 0; i < reps.size(); ++i) {
      const auto n = static_cast<std::int32_t>(copies.of_rank(reps[i]).size());
      for (std::int32_t c = 0; c < n; ++c) {
        for (const auto& [instance, gc] : collectives[i]) {
          const std::int32_t g = gc->group_of_copy[static_cast<std::size_t>(c)];
          if (gc->leader[static_cast<std::size_t>(g)] != c) continue;
          plan.instance_ids[static_cast<std::size_t>(plan.instances[instance].ids + g)] =
              next_instance++;
        }
      }
    }
    plan.launch_latency = topology.launch_latency;
    plan.draws = Draws(std::move(replicated_noise), static_cast<std::int32_t>(topology.devices));
    return plan;
  }

  const ReplicatedPlan& replicated_or_throw() const;

  void reset(std::uint64_t step) {
    iteration = step;
    if (recorded) {
      reset_sweep();
      return;
    }
    queue.clear();
    activities.clear();
    network.clear();
    for (Instance& instance : instances) instance.arrived = 0;
    seq = events = generation = 0;
    completed = 0;
    now = makespan = 0.0;
    dirty = false;
    init();
  }

  void on_ready(std::int64_t op, double t) {
    Slot& s = slots[static_cast<std::size_t>(op)];
    s.ready = 1;
    switch (static_cast<Kind>(s.kind)) {
      case Kind::Compute:
      case Kind::Wait:
        start[static_cast<std::size_t>(op)] = t;
        push(t + compute_time(s), 2, EventType::OpDone, op, s.next);
        break;
      case Kind::Collective: {
        const std::int32_t index = s.link;
        Instance& instance = instances[static_cast<std::size_t>(index)];
        if (++instance.arrived == instance.expected) {
          start_instance(index, op, t);
        }
        break;
      }
      case Kind::Send:
      case Kind::Recv: {
        const std::int64_t partner = s.link;
        if (partner >= 0 && slots[static_cast<std::size_t>(partner)].ready) {
          start_transfer(s.kind == static_cast<std::int8_t>(Kind::Send) ? op : partner, t);
        }
        break;
      }
    }
  }

  // `op`: the program's op (not an internal one).
  Shape shape_of(std::size_t op) const {
    Shape shape;
    if (!program.message_bytes.empty()) shape.message_bytes = program.message_bytes[op];
    if (!program.fanout.empty()) shape.fanout = program.fanout[op];
    return shape;
  }

  // `op`: the program's op (not an internal one).
  const Cost& cost(std::int32_t group, std::size_t op) {
    const Shape shape = shape_of(op);
    const CostKey key{group,
                      program.collective[op],
                      program.algorithm[op],
                      program.bytes[op],
                      shape.message_bytes,
                      shape.fanout};
    auto it = costs.find(key);
    if (it == costs.end()) {
      const auto c = static_cast<CollectiveOp>(program.collective[op]);
      const auto m = members(group);
      const Algorithm a = resolve_algorithm(
          topology, c, static_cast<Algorithm>(program.algorithm[op]), m, program.bytes[op], shape);
      // Every term is linear in the bytes: at (almost) no bytes only latencies remain (and,
      // for a low-latency all-to-all of one message per peer, its per-message costs).
      // The protocol is the one the real bytes run (docs/engine.md, "Protocols").
      const Protocol protocol = resolve_protocol(topology, c, a, m, program.bytes[op]);
      const double latency =
          collective_time(topology, c, a, m, 1e-300, shape, protocol) - topology.launch_latency;
      // The analytical network charges the group's own pod-link traffic (docs/engine.md, "Pod
      // links"); waves of concurrent copies are charged per instance (pod_instance_time).
      const double time = analytical_time(topology, c, a, m, program.bytes[op], shape);
      it = costs.emplace(key, Cost{a, time, latency}).first;
    }
    return it->second;
  }

  void start_instance(std::int32_t index, std::int64_t internal, double t) {
    const std::size_t op = at(internal);
    Instance& instance = instances[index];
    if (instance.cost == nullptr) instance.cost = &cost(instance.group, op);
    const Cost& c = *instance.cost;
    const Algorithm algorithm = c.algorithm;
    instance.algorithm = algorithm;
    for (std::int64_t member : graph.instance_ops(index)) {
      start[static_cast<std::size_t>(member)] = t;
      resolved[static_cast<std::size_t>(member)] = static_cast<std::int8_t>(algorithm);
    }
    const std::int32_t repeat = program.repeat[op];
    if (mode == NetworkMode::Analytical) {
      push(t + analytical_instance_time(index, op), 2, EventType::InstanceDone, index);
      return;
    }
    auto phases =
        collective_phases(topology, static_cast<CollectiveOp>(program.collective[op]), algorithm,
                          members(instance.group), program.bytes[op], shape_of(op));
    if (phases.empty()) {  // a group of one: each repetition is a launch
      push(t + topology.launch_latency * repeat, 2, EventType::InstanceDone, index);
      return;
    }
    begin_activity({false, index, std::move(phases), 0, 0, static_cast<std::size_t>(repeat),
                    draws.noise().latency_sigma > 0},
                   t);
  }

  // How long an instance takes in the analytical network (`op`: one of its members, the
  // program's): its closed form or pod-link time, repeated, each repetition's latency term
  // stretched by this step's draw. Its cost is looked up when it first starts.
  double analytical_instance_time(std::int32_t index, std::size_t op) const {
    const Instance& instance = instances[static_cast<std::size_t>(index)];
    const double hops = static_cast<double>(members(instance.group).size());
    return draws.instance_time(noise_free_instance_time(index, op), instance.cost->latency,
                               program.repeat[op], hops, static_cast<std::uint64_t>(index),
                               iteration);
  }

  // Its time without noise: its closed form or pod-link time, times its repetitions.
  double noise_free_instance_time(std::int32_t index, std::size_t op) const {
    const double pod = pod_instance_time.empty()
                           ? std::numeric_limits<double>::quiet_NaN()
                           : pod_instance_time[static_cast<std::size_t>(index)];
    const Cost& c = *instances[static_cast<std::size_t>(index)].cost;
    return (std::isnan(pod) ? c.time : pod) * program.repeat[op];
  }

  // When a transfer that starts at `t` ends in the analytical network (`send`: internal; its
  // bandwidth term and path latency are in the slots, prepare_transfers).
  double analytical_transfer_end(std::size_t send, double t) const {
    const Slot& from = slots[send];
    const Slot& to = slots[static_cast<std::size_t>(from.link)];
    return transfer_end(t, from.duration, to.duration, from.original);
  }

  // A transfer's end: launch, its path latency stretched by this step's draw, its bandwidth term.
  double transfer_end(double t, double bandwidth_term, double latency, std::int32_t send) const {
    return draws.transfer_end(t, topology.launch_latency, latency, bandwidth_term,
                              static_cast<std::uint64_t>(send), iteration);
  }

  // The latency before phase k of an activity: back-to-back repetitions each pay the launch
  // latency again (all but the first, which begin_activity charges); with latency noise, each
  // phase's latency is stretched by the slowest of its concurrent hops.
  double phase_latency(const Activity& a, std::size_t k) const {
    const Phase& phase = a.phases[k % a.phases.size()];
    double latency = phase.latency;
    if (k > 0 && k % a.phases.size() == 0) latency += topology.launch_latency;
    if (a.jitter) {
      const double hops = static_cast<double>(phase.flow_count());
      latency *= latency_factor(repetition_key(static_cast<std::uint64_t>(a.id), k), hops);
    }
    return latency;
  }

  void start_transfer(std::int64_t send, double t) {
    Slot& from = slots[static_cast<std::size_t>(send)];
    Slot& to = slots[static_cast<std::size_t>(from.link)];
    start[static_cast<std::size_t>(send)] = start[static_cast<std::size_t>(from.link)] = t;
    if (mode == NetworkMode::Analytical) {
      push(analytical_transfer_end(static_cast<std::size_t>(send), t), 2, EventType::TransferDone,
           send, from.link);
      return;
    }
    const Path path = route(topology, from.rank, to.rank);
    const double latency =
        path.latency * latency_factor(transfer_key(static_cast<std::uint64_t>(from.original)), 1);
    const double bytes = program.bytes[static_cast<std::size_t>(from.original)];
    Phase phase{latency, {{from.rank, to.rank, bytes}}, {}};
    begin_activity({true, send, {std::move(phase)}, 0, 0, 1, false}, t);
  }

  void begin_activity(Activity activity, double t) {
    const bool empty = activity.phases.empty();
    const double first = empty ? 0.0 : phase_latency(activity, 0);
    activities.push_back(std::move(activity));
    const auto id = static_cast<std::int64_t>(activities.size() - 1);
    if (empty) {
      finish_activity(id, t + topology.launch_latency);
    } else {
      push(t + topology.launch_latency + first, 1, EventType::PhaseStart, id);
    }
  }

  // Completion is an event so that it happens at its own time, in queue order.
  void finish_activity(std::int64_t id, double t) {
    const Activity& a = activities[id];
    push(t, 2, a.transfer ? EventType::TransferDone : EventType::InstanceDone, a.id);
  }

  void start_phase(std::int64_t id, double t) {
    Activity& a = activities[id];
    network.advance_to(t);
    const Phase& phase = a.current();
    network.reserve(phase.flows.size() + phase.blocks.size());
    for (const Flow& flow : phase.flows)
      network.add(static_cast<std::int32_t>(id), flow.src, flow.dst, flow.bytes, flow.count);
    for (const FlowBlock& block : phase.blocks)
      network.add_block(static_cast<std::int32_t>(id), block);
    a.pending_flows = static_cast<std::int64_t>(phase.flows.size() + phase.blocks.size());
    dirty = true;
    if (a.pending_flows == 0) phase_done(id, t);
  }

  void phase_done(std::int64_t id, double t) {
    Activity& a = activities[id];
    if (++a.phase < a.total_phases()) {
      push(t + phase_latency(a, a.phase), 1, EventType::PhaseStart, id);
      return;
    }
    a.phases.clear();
    a.phases.shrink_to_fit();
    finish_activity(id, t);
  }

  void flow_check(double t) {
    finished_owners.clear();
    network.finish(t, finished_owners);
    dirty = true;
    for (std::int32_t owner : finished_owners) {
      if (--activities[owner].pending_flows == 0) phase_done(owner, t);
    }
  }

  void complete(std::int64_t op, double t) {
    Slot& s = slots[static_cast<std::size_t>(op)];
    end[static_cast<std::size_t>(op)] = t;
    ++completed;
    makespan = std::max(makespan, t);
    if (s.next < 0) return;
    // In the index's order: the inline first dependent, then the rest.
    const bool more = s.more != 0;
    if (--slots[static_cast<std::size_t>(s.next)].pending == 0) on_ready(s.next, t);
    if (!more) return;
    const auto first = static_cast<std::size_t>(graph.dependent_offsets[op]) + 1;
    const auto last = static_cast<std::size_t>(graph.dependent_offsets[op + 1]);
    for (std::size_t k = first; k < last; ++k) {
      const std::int32_t next = graph.dependent_ops[k];
      if (--slots[static_cast<std::size_t>(next)].pending == 0) on_ready(next, t);
    }
  }

  void handle(const Event& e) {
    now = e.time;
    const std::int64_t payload = e.payload();
    const EventType type = e.type();
    if (recording && (type == EventType::OpDone || type == EventType::InstanceDone ||
                      type == EventType::TransferDone)) {
      order.push_back(e.data);
    }
    switch (type) {
      case EventType::OpDone:
        complete(payload, e.time);
        break;
      case EventType::InstanceDone:
        for (std::int64_t op : graph.instance_ops(static_cast<std::int32_t>(payload)))
          complete(op, e.time);
        break;
      case EventType::TransferDone:
        complete(payload, e.time);
        complete(slots[static_cast<std::size_t>(payload)].link, e.time);
        break;
      case EventType::PhaseStart:
        start_phase(payload, e.time);
        break;
      case EventType::FlowCheck:
        if (static_cast<std::uint64_t>(payload) == generation) flow_check(e.time);
        break;
    }
  }

  // Rates change only once every event of this instant has been handled.
  void settle_network() {
    if (!dirty || (!queue.empty() && queue.top().time <= now)) return;
    dirty = false;
    ++generation;
    const double next = network.recompute();
    if (std::isfinite(next))
      push(next, 0, EventType::FlowCheck, static_cast<std::int64_t>(generation));
  }
};

void Noise::validate(std::int64_t devices) const {
  auto require = [](bool ok, const char* field, double value, const char* allowed) {
    if (!ok) {
      throw SpecError(std::string("noise.") + field + " = " + std::to_string(value) +
                      " is not allowed: " + allowed);
    }
  };
  require(compute_cv >= 0 && compute_cv <= 10, "compute_cv", compute_cv, "in [0, 10]");
  require(latency_sigma >= 0 && latency_sigma <= 10, "latency_sigma", latency_sigma,
          "in [0, 10] (a p99 at most e^23 times the median)");
  require(straggler_fraction >= 0 && straggler_fraction <= 1, "straggler_fraction",
          straggler_fraction, "a fraction in [0, 1]");
  require(std::isfinite(straggler_slowdown) && straggler_slowdown > 0, "straggler_slowdown",
          straggler_slowdown, "finite, > 0");
  require(straggler_probability >= 0 && straggler_probability <= 1, "straggler_probability",
          straggler_probability, "a fraction in [0, 1]");
  for (std::int32_t r : straggler_ranks) {
    require(r >= 0 && r < devices, "straggler_ranks", r, "ranks of the cluster");
  }
}

Engine::Engine(Program program, Topology topology, NetworkMode mode, Noise noise, bool symmetric,
               Copies copies, bool record) {
  topology.validate();
  // The contention network keeps state per link (four per device): bound its memory.
  constexpr std::int64_t kMaxContentionDevices = std::int64_t{1} << 24;
  if (mode == NetworkMode::Contention && topology.devices > kMaxContentionDevices) {
    throw SpecError("topology.devices = " + std::to_string(topology.devices) +
                    " is too many for the contention network (at most 16777216): use the "
                    "analytical network");
  }
  noise.validate(topology.devices);
  if (symmetric && noise.active()) {
    throw SpecError(
        "a symmetric program (one representative per class of ranks) cannot carry noise: noise "
        "breaks the symmetry; simulate every rank");
  }
  if (!symmetric && !copies.empty()) {
    throw SpecError(
        "copies are only for a symmetric program (one representative per class of ranks)");
  }
  state_ = std::make_unique<State>(std::move(program), topology, mode, std::move(noise), symmetric,
                                   std::move(copies));
  state_->record = record;
  state_->init();
}

void Engine::restart(std::uint64_t iteration) { state_->reset(iteration); }

Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;

bool Engine::advance(std::uint64_t max_events) {
  State& s = *state_;
  if (s.sweeping) return s.sweep(max_events);
  for (std::uint64_t i = 0; i < max_events && !s.queue.empty(); ++i) {
    const Event event = s.queue.top();
    s.queue.pop();
    s.prefetch_next();
    ++s.events;
    s.handle(event);
    s.settle_network();
  }
  if (!s.queue.empty()) return false;
  if (s.completed < s.program.num_ops()) throw DeadlockError(s.deadlock());
  if (s.recording) {
    s.recording = false;
    s.recorded = true;
  }
  return true;
}

void Engine::replicate(Noise noise) {
  State& s = *state_;
  noise.validate(s.topology.devices);
  if (!s.symmetric || s.copies.rank_offsets.empty() || s.copies.group_offsets.empty() ||
      s.mode != NetworkMode::Analytical) {
    throw SpecError(
        "a run of every rank from its representatives needs a symmetric program with rank and "
        "group copies in the analytical network");
  }
  if (!s.recorded) {
    throw SpecError("a run of every rank from its representatives follows a complete run");
  }
  if (!s.symmetry_note.empty()) {
    throw SpecError("a run of every rank from its representatives would not be exact: " +
                    s.symmetry_note);
  }
  s.replicated = std::make_unique<ReplicatedPlan>(s.replicated_plan(std::move(noise)));
}

const ReplicatedPlan& Engine::State::replicated_or_throw() const {
  if (!replicated) throw SpecError("call replicate(noise) before running every rank");
  return *replicated;
}

std::vector<double> Engine::replicated_makespans(std::uint64_t first, std::uint64_t count,
                                                 int threads) const {
  const ReplicatedPlan& plan = state_->replicated_or_throw();
  if (threads < 1) throw SpecError("threads = " + std::to_string(threads) + ": at least 1");
  std::vector<double> out(static_cast<std::size_t>(count));
  std::atomic<std::uint64_t> next{0};
  std::mutex failed;
  std::exception_ptr failure;  // the first thread's error (out of memory), raised here
  const auto work = [&] {
    try {
      std::vector<double> ready, ends;
      for (std::uint64_t k = next++; k < count; k = next++)
        out[k] = plan.step(first + k, ready, ends);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(failed);
      if (!failure) failure = std::current_exception();
      next = count;
    }
  };
  const auto helpers = static_cast<std::size_t>(
      std::clamp<std::uint64_t>(count, 1, static_cast<std::uint64_t>(threads)) - 1);
  std::vector<std::thread> pool;
  pool.reserve(helpers);
  for (std::size_t t = 0; t < helpers; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // the system would not start another thread: those started share the steps
    }
  }
  work();
  for (std::thread& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  return out;
}

std::int64_t Engine::replicated_ops() const { return state_->replicated_or_throw().cells; }

double Engine::replicated_times(std::uint64_t iteration, double* start, double* end) const {
  const ReplicatedPlan& plan = state_->replicated_or_throw();
  std::vector<double> ready, ends;
  return plan.step(iteration, ready, ends, start, end);
}

bool Engine::done() const { return state_->queue.empty() && !state_->sweeping; }
bool Engine::swept() const { return state_->swept; }
std::vector<double> Engine::start() const { return state_->times_in_program_order(state_->start); }
std::vector<double> Engine::end() const { return state_->times_in_program_order(state_->end); }
std::vector<std::int8_t> Engine::resolved_algorithm() const {
  return state_->in_program_order(state_->resolved);
}
std::uint64_t Engine::events_processed() const { return state_->events; }
double Engine::makespan() const { return state_->makespan; }
const std::string& Engine::symmetry_note() const { return state_->symmetry_note; }

}  // namespace podsim
