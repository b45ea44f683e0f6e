"""One MoE layer's kernels on one rank, as Megatron-Core and DeepSeek run them.

Per microbatch and MoE layer (forward; backward in podsim.costs.layers):

* router: the gating GEMM (kept in BF16 by FP8 training, DeepSeek-V3 report section 3.3.1),
  the score function (softmax or sigmoid), group-limited routing (group scores and a top-k
  over groups) and the top-k over experts, each a memory-bound pass over tokens x experts.
* token-count exchange: before a dispatch every rank learns how many tokens it receives; the
  host waits for those counts to size the receive buffers (Megatron-Core's all-to-all
  dispatcher and DeepEP's normal kernels both synchronise the CPU here), which costs a latency.
* permute and unpermute: memory-bound copies of every routed token copy into expert order and
  back (with the weighted sum of the combine); FP8 training permutes the dispatch side in FP8.
* experts: grouped GEMMs over the experts the rank holds. Their shapes follow the tokens each
  expert receives: few tokens per expert make small-M GEMMs that tile quantization and the
  weight reads (the roofline) slow down.
* load imbalance: tokens per expert are drawn from the router with a stated spread; the busiest
  expert rank sets the pace of the layer (the combine waits for it), and a capacity factor caps
  each expert's load and drops the rest.
"""

import math
from dataclasses import dataclass
from statistics import NormalDist

from podsim.costs.kernels import KernelModel

SCORE_BYTES = 4  # router logits and scores in FP32
HOST_SYNC_S = 20e-6  # ESTIMATE: a device-to-host copy of the counts and the launch stall after it
_NORMAL = NormalDist()


def expected_max_normal(n: int) -> float:
    """E[max of n standard normal draws], Blom's approximation (0 for n = 1)."""
    if n <= 1:
        return 0.0
    return _NORMAL.inv_cdf((n - 0.375) / (n + 0.25))


@dataclass(frozen=True)
class Routing:
    """What one expert rank processes in one MoE layer for one microbatch.

    tokens: tokens entering the layer on this rank; sent: the copies it sends; copies_mean:
    routed token copies an expert rank receives on average; copies: what the busiest rank
    receives (after any capacity drop); local_experts: experts per rank; dropped: the
    fraction of routed copies dropped.
    """

    tokens: float
    sent: float
    copies_mean: float
    copies: float
    local_experts: float
    dropped: float

    @property
    def imbalance(self) -> float:
        """The busiest rank's load over the mean (>= 1 without drops)."""
        return self.copies / self.copies_mean if self.copies_mean else 1.0


def routing(model, tokens: float, ep: int, etp: int, cv: float, capacity: float) -> Routing:
    """The load of the busiest of ep expert ranks. Each rank of an etp x ep group brings
    `tokens` tokens; each sends top_k copies of each; an expert receives on average mu copies.
    An expert's load varies with the router's spread cv and the multinomial draw (1/sqrt(mu));
    a rank's load is the sum over its experts, and the busiest of ep ranks is mu_rank
    (1 + cv_rank z(ep)) with z the expected maximum of ep standard normals. With a capacity
    factor c an expert keeps at most c mu copies."""
    local = model.experts / ep
    copies_mean = etp * tokens * model.top_k  # per rank: ep ranks share ep x etp x tokens x k
    mu = copies_mean / local
    expert_cv = math.sqrt(cv * cv + (1.0 / mu if mu > 0 else 0.0))
    rank_cv = expert_cv / math.sqrt(local)
    factor = 1.0 + rank_cv * expected_max_normal(ep)
    dropped = 0.0
    if capacity:
        factor = min(factor, capacity)
        dropped = dropped_fraction(expert_cv, capacity)
    sent = tokens * model.top_k
    return Routing(tokens, sent, copies_mean, copies_mean * factor, local, dropped)


def dropped_fraction(cv: float, capacity: float) -> float:
    """Share of copies over an expert's capacity c mu when its load is normal(mu, cv mu):
    E[max(0, X - c mu)] / mu = cv (phi(a) - a (1 - Phi(a))), a = (c - 1) / cv."""
    if cv <= 0:
        return 0.0
    a = (capacity - 1.0) / cv
    return cv * (_NORMAL.pdf(a) - a * (1.0 - _NORMAL.cdf(a)))


def router_forward(model, tokens: float, k: KernelModel) -> float:
    """Gating GEMM (BF16) and the memory-bound score, group-limited and top-k passes."""
    experts = model.experts
    gemm = k.gemm(tokens, experts, model.hidden, precision="bf16")
    scores = tokens * experts * SCORE_BYTES
    passes = [2 * scores]  # score function: read logits, write scores
    if model.expert_groups:  # group scores, top groups and the mask over experts
        passes.append(2 * scores)
    passes.append(scores + tokens * model.top_k * 2 * SCORE_BYTES)  # top-k: indices and weights
    return gemm + sum(k.memory(nbytes) for nbytes in passes)


def count_exchange(latency: float) -> float:
    """The token-count all-to-all (a few bytes per expert: latency-bound) and the host sync."""
    return latency + HOST_SYNC_S


def permute_bytes(
    route: Routing, hidden: int, dispatch_bytes: float, combine_bytes: float
) -> float:
    """Bytes moved by permute (forward) and unpermute: gather the routed copies into send
    order and the received ones into expert order (read and write each, dispatch precision),
    then the reverse and the weighted sum into each token (combine precision)."""
    sent, received = route.sent, route.copies
    dispatch = 2 * (sent + received) * hidden * dispatch_bytes
    combine = (2 * received + sent + route.tokens) * hidden * combine_bytes
    return dispatch + combine


def experts_forward(model, route: Routing, etp: int, k: KernelModel) -> float:
    """The routed experts of the busiest rank: grouped GEMMs of copies / local experts rows
    each, the expert width split over etp (gate and up fused for SwiGLU)."""
    width = model.expert_ffn_hidden / etp
    matrices = 2 if model.mlp == "swiglu" else 1
    activation = (matrices + 1) * route.copies * width * k.activation_bytes
    return experts_gemms(model, route, etp, k) + k.memory(activation)


def experts_gemms(model, route: Routing, etp: int, k: KernelModel) -> float:
    """The grouped GEMMs alone of experts_forward (a weight-gradient pass runs one of the same
    FLOPs per GEMM)."""
    width, h = model.expert_ffn_hidden / etp, model.hidden
    per_expert = route.copies / route.local_experts
    matrices = 2 if model.mlp == "swiglu" else 1
    count = route.local_experts
    gemm = k.gemm(per_expert, matrices * width, h, "grouped_gemm", count)
    gemm += k.gemm(per_expert, h, width, "grouped_gemm", count)
    return gemm
