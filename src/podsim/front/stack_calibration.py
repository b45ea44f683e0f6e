"""The one fitted number of the deepspeed-2021 stack: its collective efficiency, from a public
measurement of DeepSpeed's ZeRO-3 of 2021 that is not one of the validation rows.

The measurement (DeepSpeed issue #1174 and pull request #1188, June 2021; DeepSpeed 0.3.16,
PyTorch 1.8, one node of 8 A100s on NVLink, AWS p4d): a 5.1B-parameter BERT (hidden 2,560, 64
layers, FFN 10,240, vocabulary 32,003) ran its forward in about 470 ms under ZeRO-3 against 60 ms
under ZeRO-2, "largely bounded by the parameter gathering". DeepSpeed gathers each nn.Linear's
weight on its own (six per BERT layer) and prefetches the next one while a module computes
(the deepspeed-2021 stack's zero3_granularity = "module", zero3_prefetch = 1); each gather here
takes several times its module's compute (60 ms over 384 modules), so the forward is its
gathers back to back, and the efficiency is the factor on their bandwidth terms that makes
podsim's all-gathers take the 470 ms (their latency terms stay):

    efficiency = sum of bandwidth terms / (470 ms - sum of latency terms)

It absorbs what DeepSpeed of early 2021 added to each gather (a device synchronize before it, a
full-size zero fill, copies of each rank's piece, debug-print norms; the pull request's fixes
brought the forward to 270 ms). Rerun `PYTHONPATH=src python tools/calibrate.py deepspeed-2021
--write` after changing the collective model: it stores the value in podsim.plans.stack.PRESETS.
"""

from podsim.front.collective import collective
from podsim.specs.clusters import make_cluster

HIDDEN, LAYERS, VOCAB = 2560, 64, 32003
FORWARD_ZERO3_S = 0.470  # pull request #1188: "forward computation improved from ~470ms"
PARAM_BYTES = 2  # fp16 weights
# A BERT layer's weight matrices, in h^2 (DeepSpeed gathers each nn.Linear on its own): query,
# key, value and output projections, and the MLP's two matrices.
MODULES = (1, 1, 1, 1, 4, 4)


def forward_gathers() -> tuple[float, float]:
    """(latency terms, bandwidth terms) in seconds of the forward's all-gathers of the measured
    BERT on 8 A100s, at podsim's collective model (latency: the time of a 1-byte gather)."""
    cluster = make_cluster("a100-sxm-80gb", 8)
    latency = collective(cluster, "all-gather", 1.0).time_s

    def bandwidth(nbytes: float) -> float:
        return collective(cluster, "all-gather", nbytes).time_s - latency

    layer = sum(bandwidth(m * HIDDEN**2 * PARAM_BYTES) for m in MODULES)
    count = LAYERS * len(MODULES) + 1
    return count * latency, LAYERS * layer + bandwidth(VOCAB * HIDDEN * PARAM_BYTES)


def deepspeed_2021_efficiency() -> float:
    """The collective efficiency that makes podsim's gathers take the measured forward."""
    latency, bandwidth = forward_gathers()
    return bandwidth / (FORWARD_ZERO3_S - latency)
