// The event engine: runs every rank's program over the network (docs/engine.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "podsim/copies.hpp"
#include "podsim/program.hpp"
#include "podsim/topology.hpp"

namespace podsim {

enum class NetworkMode : std::int8_t { Analytical = 0, Contention = 1 };

// Run-to-run variation (docs/engine.md, "Noise"). Every draw is counter-based: a function of
// (seed, what, which, iteration), so results do not depend on the order of events.
struct Noise {
  std::uint64_t seed = 0;
  double compute_cv = 0.0;          // coefficient of variation of each compute op (lognormal)
  double latency_sigma = 0.0;       // log-space spread of each hop's latency factor (lognormal)
  double straggler_fraction = 0.0;  // ranks drawn slow with this probability
  std::vector<std::int32_t> straggler_ranks;  // and these ranks
  double straggler_slowdown = 1.0;            // compute time factor of a slow rank
  double straggler_probability = 1.0;         // of a slow rank being slow in a given step

  void validate(std::int64_t devices) const;
  bool active() const {
    return compute_cv > 0 || latency_sigma > 0 ||
           (straggler_slowdown != 1.0 && (straggler_fraction > 0 || !straggler_ranks.empty()));
  }
};

class Engine {
 public:
  // Validates program and topology (throws ProgramError or SpecError).
  //
  // `symmetric`: the program holds one representative rank per class of identical ranks; a
  // collective instance starts once the ops the program holds for it are ready, and is priced
  // (and, in contention mode, runs its flows) over its group's full membership. Without noise
  // only (SpecError otherwise): the caller guarantees that the ranks left out behave exactly as
  // their representative.
  //
  // `copies` (symmetric only, SpecError otherwise): what the representatives' groups and ranks
  // stand for, so that the analytical network charges pod links every copy's traffic, as the
  // full program's waves would (docs/engine.md, "Pod links").
  //
  // `record`: the first complete analytical run records its order of completions (8 bytes an
  // op, instance and transfer), which restarted runs sweep and replicate() needs; a run that is
  // neither restarted nor replicated can leave it out (restarts then run the event loop again).
  Engine(Program program, Topology topology, NetworkMode mode, Noise noise = {},
         bool symmetric = false, Copies copies = {}, bool record = true);

  // Starts the run again as step `iteration` (new noise draws), reusing the checked program.
  void restart(std::uint64_t iteration);
  ~Engine();
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;

  // Processes up to max_events events; returns true once the run is complete.
  // Throws DeadlockError if the run ends with ops that can never complete.
  bool advance(std::uint64_t max_events);
  bool done() const;
  // Whether this run sweeps the order of completions the first complete run handled, with no
  // event queue (analytical mode, every run after the first; docs/engine.md, "Event loop").
  // It gives the event loop's results bit for bit.
  bool swept() const;

  // Every rank of the program a symmetric one stands for (docs/engine.md, "Replicated runs"),
  // with noise: after a complete run of a symmetric program with rank and group copies in the
  // analytical network, prepares runs of the every-rank program that lists, representative by
  // representative in rank order, each of its copies' ops (each copy's in its representative's
  // order), from the recorded order. They give that program's event loop's results: the same
  // maxima and additions, with each op's draws keyed by its number there. Throws SpecError if
  // the copies do not describe such a program.
  void replicate(Noise noise);
  // The makespans of steps first, ..., first + count - 1, on `threads` threads at once (each
  // holds one step's times); the same bits whatever the threads.
  std::vector<double> replicated_makespans(std::uint64_t first, std::uint64_t count,
                                           int threads) const;
  // Ops of the every-rank program.
  std::int64_t replicated_ops() const;
  // One step of it: every op's start and end (replicated_ops each, in its program order) and
  // the makespan.
  double replicated_times(std::uint64_t iteration, double* start, double* end) const;

  // Per op, in program order (copies).
  std::vector<double> start() const;
  std::vector<double> end() const;
  // Per collective op: the algorithm it ran (Auto resolved); -1 for other ops.
  std::vector<std::int8_t> resolved_algorithm() const;
  std::uint64_t events_processed() const;
  double makespan() const;
  // Analytical symmetric runs with copies over several pods: why some copy of a collective or
  // send would not take its representative's time (then the run is not exact); empty if none.
  const std::string& symmetry_note() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace podsim
