#include "podsim/network.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "podsim/errors.hpp"

namespace podsim {
namespace {

// Links whose fair share is within this relative distance of the smallest are filled together,
// so that symmetric flows get bit-identical rates whatever their order.
constexpr double kShareTolerance = 1e-12;

}  // namespace

FlowNetwork::FlowNetwork(const Topology& topology) : topology_(topology) {}

void FlowNetwork::reserve(std::size_t more) {
  if (touched_.empty()) {  // per-link state, allocated only once the network is used
    const auto links = static_cast<std::size_t>(topology_.num_links());
    capacity_left_.assign(links, 0.0);
    unfixed_count_.assign(links, 0);
    touched_.assign(links, 0);
    changed_.assign(links, 0);
    parent_.assign(links, 0);
    component_.assign(links, -1);
  }
  flows_.reserve(flows_.size() + more);
}

void FlowNetwork::add(std::int32_t owner, std::int32_t src, std::int32_t dst, double bytes,
                      std::int32_t count) {
  const Path path = route(topology_, src, dst);
  if (path.hops > path.size) {
    throw ProgramError("a torus route of " + std::to_string(path.hops) + " hops (" +
                       std::to_string(src) + " -> " + std::to_string(dst) +
                       ") is longer than the contention network follows (" +
                       std::to_string(kMaxPathLinks) +
                       "): use the analytical network, or algorithms between neighbours");
  }
  if (touched_.empty()) reserve(1);
  flows_.push_back({owner, count, path.links, path.size, -1, bytes, 0.0, 0.0});
  mark_changed(flows_.back());
}

void FlowNetwork::add_block(std::int32_t owner, const FlowBlock& block) {
  if (block.pairs <= 0) throw ProgramError("a flow block without pairs");
  if (touched_.empty()) reserve(1);
  const auto [first_src, first_dst] = first_pair(topology_, block);
  const Path first = route(topology_, first_src, first_dst);
  ActiveBlock active{{}, {}, {}, first.size - 2, block.exclude, 0, 0};
  std::copy(first.links.begin() + 1, first.links.begin() + first.size - 1, active.mid.begin());
  // Each member's own link, from its path to a partner; every path must cross the same links
  // between (the precondition of a block: then one rate serves all its flows).
  auto path_of = [&](std::int32_t src, std::int32_t dst) {
    const Path path = route(topology_, src, dst);
    if (path.size != first.size || path.hops > path.size ||
        !std::equal(path.links.begin() + 1, path.links.begin() + path.size - 1,
                    active.mid.begin())) {
      throw ProgramError("a flow block whose flows " + std::to_string(src) + " -> " +
                         std::to_string(dst) + " and " + std::to_string(first_src) + " -> " +
                         std::to_string(first_dst) + " cross different links between their ends");
    }
    return path;
  };
  for (std::int32_t src : block.srcs) {
    for (std::int32_t dst : block.dsts) {
      if (!block_pair(topology_, block.exclude, src, dst)) continue;
      active.srcs.push_back({src, path_of(src, dst).links[0], 0});
      break;
    }
  }
  for (std::int32_t dst : block.dsts) {
    for (std::int32_t src : block.srcs) {
      if (!block_pair(topology_, block.exclude, src, dst)) continue;
      const Path path = path_of(src, dst);
      active.dsts.push_back({dst, path.links[static_cast<std::size_t>(path.size - 1)], 0});
      break;
    }
  }
  weigh(active);
  if (free_roots_.empty()) {
    active.root = static_cast<std::int32_t>(root_parts_.size());
    root_parts_.push_back(1);
  } else {
    active.root = free_roots_.back();
    free_roots_.pop_back();
    root_parts_[static_cast<std::size_t>(active.root)] = 1;
  }
  flows_.push_back({owner, 1, {}, 0, new_block(std::move(active)), block.bytes, 0.0, 0.0});
  mark_changed(flows_.back());
}

std::int32_t FlowNetwork::new_block(ActiveBlock block) {
  if (free_blocks_.empty()) {
    blocks_.push_back(std::move(block));
    return static_cast<std::int32_t>(blocks_.size() - 1);
  }
  const std::int32_t slot = free_blocks_.back();
  free_blocks_.pop_back();
  blocks_[static_cast<std::size_t>(slot)] = std::move(block);
  return slot;
}

// Each end's weight (the block's flows through its link: the partners it has at the other
// end) and the pairs; ends without a partner are dropped.
void FlowNetwork::weigh(ActiveBlock& block) const {
  auto devices = [](const std::vector<BlockEnd>& ends) {
    std::vector<std::int32_t> out(ends.size());
    for (std::size_t i = 0; i < ends.size(); ++i) out[i] = ends[i].device;
    return out;
  };
  const std::vector<std::int32_t> srcs = devices(block.srcs), dsts = devices(block.dsts);
  const auto src_weights = partners(topology_, block.exclude, srcs, dsts);
  const auto dst_weights = partners(topology_, block.exclude, dsts, srcs);
  for (std::size_t i = 0; i < srcs.size(); ++i) block.srcs[i].weight = src_weights[i];
  for (std::size_t i = 0; i < dsts.size(); ++i) block.dsts[i].weight = dst_weights[i];
  auto none = [](const BlockEnd& e) { return e.weight == 0; };
  block.srcs.erase(std::remove_if(block.srcs.begin(), block.srcs.end(), none), block.srcs.end());
  block.dsts.erase(std::remove_if(block.dsts.begin(), block.dsts.end(), none), block.dsts.end());
  block.pairs = 0;
  for (const BlockEnd& e : block.srcs) block.pairs += e.weight;
}

void FlowNetwork::clear() {
  flows_.clear();
  blocks_.clear();
  free_blocks_.clear();
  root_parts_.clear();
  free_roots_.clear();
  for (std::int32_t link : changed_links_) changed_[link] = 0;
  changed_links_.clear();
  now_ = 0.0;
}

void FlowNetwork::advance_to(double now) {
  const double dt = now - now_;
  if (dt > 0) {
    for (ActiveFlow& flow : flows_) flow.remaining -= flow.rate * dt;
  }
  now_ = now;
}

template <class F>
void FlowNetwork::for_links(const ActiveFlow& flow, F&& f) const {
  if (flow.block < 0) {
    for (int i = 0; i < flow.size; ++i) f(flow.links[static_cast<std::size_t>(i)], flow.count);
    return;
  }
  const ActiveBlock& block = blocks_[static_cast<std::size_t>(flow.block)];
  for (const BlockEnd& e : block.srcs) f(e.link, e.weight);
  for (const BlockEnd& e : block.dsts) f(e.link, e.weight);
  for (int i = 0; i < block.mid_size; ++i) f(block.mid[static_cast<std::size_t>(i)], block.pairs);
}

void FlowNetwork::mark_changed(const ActiveFlow& flow) {
  for_links(flow, [&](std::int32_t link, std::int64_t) {
    if (!changed_[link]) {
      changed_[link] = 1;
      changed_links_.push_back(link);
    }
  });
}

std::int32_t FlowNetwork::find(std::int32_t link) {
  while (parent_[link] != link) {
    parent_[link] = parent_[parent_[link]];  // path halving
    link = parent_[link];
  }
  return link;
}

double FlowNetwork::recompute() {
  // The active links, their capacities and flow counts, and their connected components (links
  // joined by the entries that cross them).
  touched_links_.clear();
  const std::size_t entries = flows_.size();
  entry_component_.resize(entries);
  for (std::size_t i = 0; i < entries; ++i) {
    std::int32_t root = -1;
    for_links(flows_[i], [&](std::int32_t link, std::int64_t flows) {
      if (!touched_[link]) {
        touched_[link] = 1;
        touched_links_.push_back(link);
        capacity_left_[link] = topology_.link_capacity(link);
        unfixed_count_[link] = 0;
        parent_[link] = link;
      }
      unfixed_count_[link] += flows;
      const std::int32_t other = find(link);
      if (root < 0) {
        root = other;
      } else if (other != root) {
        parent_[other] = root;  // root stays a root
      }
    });
    entry_component_[i] = root;  // a link of the entry, for now
  }
  // Components numbered in order of their first entry; entries and links listed per component.
  roots_.clear();
  for (std::size_t i = 0; i < entries; ++i) {
    const std::int32_t root = find(entry_component_[i]);
    if (component_[root] < 0) {
      component_[root] = static_cast<std::int32_t>(roots_.size());
      roots_.push_back(root);
    }
    entry_component_[i] = component_[root];
  }
  const std::size_t components = roots_.size();
  entry_start_.assign(components + 1, 0);
  link_start_.assign(components + 1, 0);
  dirty_.assign(components, selective_ ? 0 : 1);
  for (std::int32_t c : entry_component_) ++entry_start_[static_cast<std::size_t>(c) + 1];
  link_component_.resize(touched_links_.size());
  for (std::size_t k = 0; k < touched_links_.size(); ++k) {
    const std::int32_t link = touched_links_[k];
    const std::int32_t c = component_[find(link)];
    link_component_[k] = c;
    ++link_start_[static_cast<std::size_t>(c) + 1];
    if (changed_[link]) dirty_[static_cast<std::size_t>(c)] = 1;
  }
  for (std::size_t c = 0; c < components; ++c) {
    entry_start_[c + 1] += entry_start_[c];
    link_start_[c + 1] += link_start_[c];
  }
  entry_list_.resize(entries);
  link_list_.resize(touched_links_.size());
  at_.assign(entry_start_.begin(), entry_start_.end() - 1);
  for (std::size_t i = 0; i < entries; ++i)
    entry_list_[at_[static_cast<std::size_t>(entry_component_[i])]++] = i;
  at_.assign(link_start_.begin(), link_start_.end() - 1);
  for (std::size_t k = 0; k < touched_links_.size(); ++k)
    link_list_[at_[static_cast<std::size_t>(link_component_[k])]++] = touched_links_[k];
  for (std::int32_t root : roots_) component_[root] = -1;
  for (std::int32_t link : changed_links_) changed_[link] = 0;
  changed_links_.clear();

  // Selective update: a component none of whose links gained or lost an entry since the last
  // solve keeps its rates; the others are solved on their own (the same solve either way).
  for (std::size_t c = 0; c < components; ++c) {
    if (!dirty_[c]) continue;
    ++component_solves_;
    unfixed_.assign(entry_list_.begin() + static_cast<std::ptrdiff_t>(entry_start_[c]),
                    entry_list_.begin() + static_cast<std::ptrdiff_t>(entry_start_[c + 1]));
    solve({link_list_.data() + link_start_[c], link_start_[c + 1] - link_start_[c]});
  }
  for (std::int32_t link : touched_links_) touched_[link] = 0;

  double next = std::numeric_limits<double>::infinity();
  for (ActiveFlow& flow : flows_) {
    flow.finish_in = std::max(0.0, flow.remaining) / flow.rate;
    next = std::min(next, flow.finish_in);
  }
  next_finish_in_ = next;
  return now_ + next;
}

// Progressive filling over one component: the link with the smallest fair share fixes the rate
// of its flows.
void FlowNetwork::solve(std::span<const std::int32_t> links) {
  std::vector<std::size_t>& unfixed = unfixed_;
  while (!unfixed.empty()) {
    double share = std::numeric_limits<double>::infinity();
    for (std::int32_t link : links) {
      if (unfixed_count_[link] > 0)
        share = std::min(share, capacity_left_[link] / static_cast<double>(unfixed_count_[link]));
    }
    const double threshold = share * (1.0 + kShareTolerance);
    for (std::int32_t link : links) {
      touched_[link] =
          unfixed_count_[link] > 0 &&
                  capacity_left_[link] / static_cast<double>(unfixed_count_[link]) <= threshold
              ? 2
              : 1;
    }
    std::size_t kept = 0;
    for (std::size_t index : unfixed) {
      const ActiveFlow& flow = flows_[index];
      bool fixed = false;
      if (flow.block >= 0) {
        fixed = !split(index, share);
      } else {
        for (int i = 0; i < flow.size && !fixed; ++i)
          fixed = touched_[flow.links[static_cast<std::size_t>(i)]] == 2;
        if (fixed) fix(index, share);
      }
      if (!fixed) unfixed[kept++] = index;
    }
    unfixed.resize(kept);
  }
}

void FlowNetwork::fix(std::size_t index, double share) {
  ActiveFlow& flow = flows_[index];
  flow.rate = share;
  for (int i = 0; i < flow.size; ++i) {
    const std::int32_t link = flow.links[static_cast<std::size_t>(i)];
    capacity_left_[link] = std::max(0.0, capacity_left_[link] - share * flow.count);
    unfixed_count_[link] -= flow.count;
  }
}

void FlowNetwork::fix_block(const ActiveBlock& block, double share) {
  auto take = [&](std::int32_t link, std::int64_t flows) {
    capacity_left_[link] = std::max(0.0, capacity_left_[link] - share * static_cast<double>(flows));
    unfixed_count_[link] -= flows;
  };
  for (const BlockEnd& e : block.srcs) take(e.link, e.weight);
  for (const BlockEnd& e : block.dsts) take(e.link, e.weight);
  for (int i = 0; i < block.mid_size; ++i)
    take(block.mid[static_cast<std::size_t>(i)], block.pairs);
}

// A block in a round of progressive filling: a flow src -> dst of it is fixed when its source's
// link, its destination's link or a link between is a bottleneck (marked 2). All or none of its
// flows: fixed at `share` as one. Some: the block splits into the flows from bottlenecked
// sources, those from the others into bottlenecked destinations (both fixed now) and the rest
// (still unfixed), each again a block whose flows share a rate; the links' counts are unchanged.
// Returns whether the entry at `index` holds flows still unfixed.
bool FlowNetwork::split(std::size_t index, double share) {
  const auto slot = static_cast<std::size_t>(flows_[index].block);
  auto marked = [&](const BlockEnd& e) { return touched_[e.link] == 2; };
  const ActiveBlock& block = blocks_[slot];
  bool all = false;
  for (int i = 0; i < block.mid_size && !all; ++i)
    all = touched_[block.mid[static_cast<std::size_t>(i)]] == 2;
  const auto src_marked =
      static_cast<std::size_t>(std::count_if(block.srcs.begin(), block.srcs.end(), marked));
  const auto dst_marked =
      static_cast<std::size_t>(std::count_if(block.dsts.begin(), block.dsts.end(), marked));
  if (all || src_marked == block.srcs.size() || dst_marked == block.dsts.size()) {
    flows_[index].rate = share;
    fix_block(block, share);
    return false;
  }
  if (src_marked == 0 && dst_marked == 0) return true;

  ActiveBlock whole = std::move(blocks_[slot]);
  std::vector<BlockEnd> src_bottleneck, src_free, dst_bottleneck, dst_free;
  for (const BlockEnd& e : whole.srcs) (marked(e) ? src_bottleneck : src_free).push_back(e);
  for (const BlockEnd& e : whole.dsts) (marked(e) ? dst_bottleneck : dst_free).push_back(e);
  auto part = [&](std::vector<BlockEnd> srcs, std::vector<BlockEnd> dsts) {
    ActiveBlock p{std::move(srcs), std::move(dsts), whole.mid, whole.mid_size, whole.exclude, 0,
                  whole.root};
    weigh(p);
    return p;
  };
  ActiveBlock rest = part(src_free, dst_free);
  std::vector<ActiveBlock> fixed;
  fixed.push_back(part(std::move(src_bottleneck), whole.dsts));
  fixed.push_back(part(std::move(src_free), std::move(dst_bottleneck)));
  const bool unfixed = rest.pairs > 0;
  const ActiveFlow entry = flows_[index];
  std::int64_t parts = 0;
  if (unfixed) {
    blocks_[slot] = std::move(rest);
    ++parts;
  }
  for (ActiveBlock& p : fixed) {
    if (p.pairs == 0) continue;
    fix_block(p, share);
    if (parts++ == 0) {
      blocks_[slot] = std::move(p);
      flows_[index].rate = share;
    } else {
      ActiveFlow copy = entry;
      copy.rate = share;
      copy.block = new_block(std::move(p));
      flows_.push_back(copy);
    }
  }
  root_parts_[static_cast<std::size_t>(whole.root)] += parts - 1;
  mark_changed(flows_[index]);  // the parts' component is solved again next time
  return unfixed;
}

void FlowNetwork::finish(double now, std::vector<std::int32_t>& owners) {
  advance_to(now);
  const double threshold = next_finish_in_ * (1.0 + kShareTolerance);
  std::size_t kept = 0;
  for (ActiveFlow& flow : flows_) {
    if (flow.finish_in > threshold) {
      flows_[kept++] = flow;
      continue;
    }
    mark_changed(flow);
    if (flow.block < 0) {
      owners.push_back(flow.owner);
    } else {  // a block, or a part of one: its owner is done with the last part
      const auto slot = static_cast<std::size_t>(flow.block);
      const auto root = static_cast<std::size_t>(blocks_[slot].root);
      blocks_[slot] = {};
      free_blocks_.push_back(flow.block);
      if (--root_parts_[root] == 0) {
        owners.push_back(flow.owner);
        free_roots_.push_back(static_cast<std::int32_t>(root));
      }
    }
  }
  flows_.resize(kept);
}

}  // namespace podsim
