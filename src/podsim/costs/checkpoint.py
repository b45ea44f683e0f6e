"""Checkpoints as hardware: the bytes a checkpoint writes and how long storage takes for them.

A checkpoint holds the model's weights and its optimizer states: mixed-precision Adam keeps
FP32 master weights and two FP32 moments beside the BF16 (or FP16) weights, 2 + 12 = 14 bytes
per parameter (FP8 training keeps BF16 weights too). BLOOM-176B's checkpoints were 2.3 TB
(BigScience chronicles): 13.1 bytes per parameter, 7% below 14 x 176e9. Each byte is written
once, sharded over the writers (every rank writes its own shard of the weights; with ZeRO >= 1
the optimizer states are split over data parallelism too, so every device writes), and the
write runs at the smaller of the storage's aggregate bandwidth and what the writers' NICs carry.

Asynchronous checkpoints snapshot the state (a short stall) and write in the background; the
write steals each writer's NIC from training for shard / NIC bandwidth seconds, and training
waits for that only while its own traffic on the fabric is exposed: the extra stall is that
time times the exposed fabric share of the step (pipeline and data-parallel communication on
the critical path, results.training.Breakdown).
"""

from podsim.plans.training import Plan
from podsim.specs.clusters import Cluster
from podsim.specs.models import Model

WEIGHT_BYTES = 2  # BF16/FP16 weights
OPTIMIZER_BYTES = 12  # FP32 master weights, Adam's first and second moments


def checkpoint_bytes(model: Model, plan: Plan) -> float:
    """Bytes of one checkpoint: weights and optimizer states of every parameter (multi-token
    prediction modules included), once."""
    return float(model.params() + model.mtp_params()) * (WEIGHT_BYTES + OPTIMIZER_BYTES)


def checkpoint_writers(plan: Plan) -> int:
    """Devices that write a shard: all of them with ZeRO >= 1 (optimizer states split over data
    parallelism), else one data-parallel replica."""
    return plan.devices if plan.zero >= 1 else plan.devices // plan.dp


def checkpoint_write_s(model: Model, plan: Plan, cluster: Cluster) -> float:
    """Seconds to write one checkpoint: its bytes over the smaller of the storage bandwidth and
    the writers' scale-out NICs (at the cluster's achieved fraction)."""
    nic = cluster.scale_out_bandwidth * cluster.scale_out_efficiency
    bandwidth = min(cluster.checkpoint_bandwidth, checkpoint_writers(plan) * nic)
    return checkpoint_bytes(model, plan) / bandwidth


def stolen_s(model: Model, plan: Plan, cluster: Cluster, fabric_share: float) -> float:
    """What an asynchronous write adds to training: each writer's shard over its NIC, times
    the share of the step training spends exposed on the fabric (0..1)."""
    nic = cluster.scale_out_bandwidth * cluster.scale_out_efficiency
    shard = checkpoint_bytes(model, plan) / checkpoint_writers(plan)
    return shard / nic * min(max(fabric_share, 0.0), 1.0)
