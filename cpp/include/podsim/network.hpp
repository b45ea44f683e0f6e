// Flows sharing links max-min fairly (progressive filling), advanced in time.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "podsim/collectives.hpp"
#include "podsim/topology.hpp"

namespace podsim {

class FlowNetwork {
 public:
  // Keeps its own copy of the topology.
  explicit FlowNetwork(const Topology& topology);

  // Makes room for `more` flows; call before add().
  void reserve(std::size_t more);
  // Adds a flow of `bytes` from src to dst owned by `owner`; rates are stale until
  // recompute(). Call advance_to(now) first.
  void add(std::int32_t owner, std::int32_t src, std::int32_t dst, double bytes,
           std::int32_t count = 1);
  // Adds a block of flows (collectives.hpp), simulated as one weighted entry while its flows
  // share a rate; `owner` is reported once, when the last of them has finished.
  void add_block(std::int32_t owner, const FlowBlock& block);
  // Applies progress at the current rates up to `now`.
  void advance_to(double now);
  // Max-min fair rates for the active flows; returns the time the next flows finish
  // (infinity if none).
  double recompute();
  // At the time recompute() returned: removes the flows that finish then, appending
  // their owners (in flow order) to `owners`.
  void finish(double now, std::vector<std::int32_t>& owners);

  // Selective update (the default): recompute() solves again only the components (links joined
  // by the flows crossing them) where a flow started or ended since the last solve, or where a
  // block split; the others keep their rates, which solving them again would reproduce bit for
  // bit. Off: every component is solved each time (the reference for the tests).
  void set_selective(bool on) { selective_ = on; }
  // Components solved so far (each solve is progressive filling over one component).
  std::int64_t component_solves() const { return component_solves_; }
  // Active entries: flows, merged flows and blocks (or the parts a block was split into).
  std::size_t active() const { return flows_.size(); }
  // Drops every flow and returns to time 0.
  void clear();

 private:
  struct ActiveFlow {
    std::int32_t owner;
    std::int32_t count;  // identical flows merged into this one
    // Its path's links, not the path's costs: a flow stays 72 bytes, as many flows are active.
    std::array<std::int32_t, kMaxPathLinks> links;
    std::int32_t size;   // links used (0 for a block)
    std::int32_t block;  // -1: a flow; else its block in blocks_
    double remaining;
    double rate;
    double finish_in;
  };
  // One end of a block: a member's own link and the block's flows through it.
  struct BlockEnd {
    std::int32_t device;
    std::int32_t link;
    std::int64_t weight;
  };
  struct ActiveBlock {
    std::vector<BlockEnd> srcs, dsts;
    std::array<std::int32_t, kMaxPathLinks> mid;  // the links every flow crosses between
    std::int32_t mid_size;
    Exclude exclude;
    std::int64_t pairs;
    std::int32_t root;  // in root_parts_: the parts of the block the owner added
  };
  template <class F>
  void for_links(const ActiveFlow& flow, F&& f) const;  // f(link, flows of the entry on it)
  void mark_changed(const ActiveFlow& flow);
  std::int32_t find(std::int32_t link);
  void solve(std::span<const std::int32_t> links);  // the entries in unfixed_
  void fix(std::size_t index, double share);
  void fix_block(const ActiveBlock& block, double share);
  bool split(std::size_t index, double share);
  std::int32_t new_block(ActiveBlock block);
  void weigh(ActiveBlock& block) const;

  Topology topology_;  // a copy: the network does not depend on the caller's lifetime
  std::vector<ActiveFlow> flows_;
  std::vector<ActiveBlock> blocks_;
  std::vector<std::int32_t> free_blocks_;
  std::vector<std::int64_t> root_parts_;  // per block added: its parts still active
  std::vector<std::int32_t> free_roots_;
  std::vector<double> capacity_left_;
  std::vector<std::int64_t> unfixed_count_;
  std::vector<char> touched_;
  std::vector<std::int32_t> touched_links_;
  std::vector<char> changed_;  // per link: gained or lost an entry since the last solve
  std::vector<std::int32_t> changed_links_;
  std::vector<std::int32_t> parent_;     // per active link: union-find of the components
  std::vector<std::int32_t> component_;  // per root link: its component's number (-1: none yet)
  // Scratch of recompute(), kept to save allocations: per entry its component, entries and
  // links listed by component, which components changed, the unfixed entries of a solve.
  std::vector<std::int32_t> entry_component_, roots_, link_list_, link_component_;
  std::vector<std::size_t> entry_start_, link_start_, entry_list_, at_, unfixed_;
  std::vector<char> dirty_;
  bool selective_ = true;
  std::int64_t component_solves_ = 0;
  double now_ = 0.0;
  double next_finish_in_ = 0.0;
};

}  // namespace podsim
