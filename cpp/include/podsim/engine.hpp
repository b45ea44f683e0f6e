// The event engine: runs every rank's program over the network (docs/engine.md).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "podsim/program.hpp"
#include "podsim/topology.hpp"

namespace podsim {

enum class NetworkMode : std::int8_t { Analytical = 0, Contention = 1 };

class Engine {
 public:
  // Validates program and topology (throws ProgramError or SpecError).
  Engine(Program program, Topology topology, NetworkMode mode);
  ~Engine();
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;

  // Processes up to max_events events; returns true once the run is complete.
  // Throws DeadlockError if the run ends with ops that can never complete.
  bool advance(std::uint64_t max_events);
  bool done() const;

  const std::vector<double>& start() const;
  const std::vector<double>& end() const;
  // Per collective op: the algorithm it ran (Auto resolved); -1 for other ops.
  const std::vector<std::int8_t>& resolved_algorithm() const;
  std::uint64_t events_processed() const;
  double makespan() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace podsim
