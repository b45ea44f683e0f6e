"""Where a token's expert copies land: the shape of an expert-parallel all-to-all.

A token is routed to top_k of the model's experts, spread evenly over the ep ranks of its
expert-parallel group, `per_domain` of them in each scale-up domain (node). Under node-limited
routing (DeepSeek-V3: at most max_routed_nodes = 4 nodes per token) the token's experts lie in
that many nodes. Assumption: within the allowed nodes, the top_k experts are a uniformly random
set (balanced load, as auxiliary-loss-free balancing aims for), so the number of distinct
ranks and nodes a token reaches is hypergeometric.
"""

from dataclasses import dataclass
from math import prod


@dataclass(frozen=True)
class Routing:
    ranks: float  # distinct ranks a token is sent to (one copy each)
    nodes: float  # distinct nodes (scale-up domains) among them

    @property
    def fanout(self) -> float:
        """Ranks per node copy: what node-forwarding saves on the fabric."""
        return self.ranks / self.nodes


def _missed(pool: int, held: int, k: int) -> float:
    """P(none of the `held` experts among k drawn from `pool` without replacement)."""
    return prod((pool - held - i) / (pool - i) for i in range(k)) if held < pool else 0.0


def routing(experts: int, top_k: int, ep: int, per_domain: int, max_nodes: int = 0) -> Routing:
    """Expected distinct ranks and nodes per token (module docstring)."""
    per_domain = max(1, min(per_domain, ep))
    nodes = max(1, ep // per_domain)
    allowed = min(max_nodes, nodes) if max_nodes else nodes
    per_node = experts // nodes
    pool = allowed * per_node
    k = min(top_k, pool)
    hit_nodes = allowed * (1 - _missed(pool, per_node, k))
    hit_ranks = allowed * per_domain * (1 - _missed(pool, experts // ep, k))
    return Routing(max(hit_ranks, 1.0), max(hit_nodes, 1.0))
