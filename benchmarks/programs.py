"""Synthetic programs for benchmarks, built with numpy (no Python loop per op)."""

import numpy as np

from podsim.lowering.program import Algorithm, Collective, Kind, Program

TP = 8  # tensor-parallel group: 8 consecutive ranks, one scale-up domain


def layered_program(ranks: int, layers: int, nbytes: float = 32e6) -> Program:
    """Per layer and rank: compute, an all-reduce in its TP group, compute; then one
    all-reduce across the TP groups (data parallel) per rank. 3 * ranks * layers + ranks ops.

    Op (layer l, rank r, slot j) has index l * 3R + j * R + r.
    """
    if ranks % TP:
        raise ValueError(f"ranks = {ranks} must be a multiple of {TP}")
    r = np.arange(ranks, dtype=np.int64)
    base = np.arange(layers, dtype=np.int64)[:, None] * 3 * ranks
    body = 3 * ranks * layers
    n = body + ranks
    kind = np.tile(
        np.repeat(np.array([Kind.COMPUTE, Kind.COLLECTIVE, Kind.COMPUTE], np.int8), ranks), layers
    )
    slot = np.tile(np.repeat(np.arange(3), ranks), layers)
    rank = np.concatenate([np.tile(r, 3 * layers), r]).astype(np.int32)
    jitter = 1 + 0.1 * ((rank[:body] * 7 + np.repeat(np.arange(layers), 3 * ranks)) % 5) / 5
    duration = np.where(kind == Kind.COMPUTE, 1e-3 * jitter, 0.0)
    # deps: slot 1 waits for slot 0 of its layer, slot 2 for slot 1; the DP all-reduce for
    # the last op of its rank.
    ops = (base + np.arange(3)[:, None, None] * ranks + r).transpose(1, 0, 2)  # [l, j, r]
    dep_of = np.full(n, -1, np.int64)
    dep_of[ops[:, 1, :].ravel()] = ops[:, 0, :].ravel()
    dep_of[ops[:, 2, :].ravel()] = ops[:, 1, :].ravel()
    dep_of[body + r] = ops[-1, 2, :]
    has_dep = dep_of >= 0
    groups_tp = (rank // TP).astype(np.int32)
    peer = np.concatenate([np.where(slot == 1, groups_tp[:body], -1), ranks // TP + r % TP]).astype(
        np.int32
    )
    group_ranks = np.concatenate([r, np.argsort(r % TP, kind="stable")]).astype(np.int32)
    group_sizes = [TP] * (ranks // TP) + [ranks // TP] * TP
    is_coll = np.concatenate([slot == 1, np.ones(ranks, bool)])
    return Program(
        rank=rank,
        stream=np.where(is_coll, 1, 0).astype(np.int32),
        kind=np.concatenate([kind, np.full(ranks, Kind.COLLECTIVE, np.int8)]),
        duration=np.concatenate([duration, np.zeros(ranks)]),
        bytes=np.where(is_coll, nbytes, 0.0),
        peer=peer,
        collective=np.where(is_coll, Collective.ALL_REDUCE, -1).astype(np.int8),
        algorithm=np.where(is_coll, Algorithm.AUTO, -1).astype(np.int8),
        repeat=np.ones(n, np.int32),
        dep_offsets=np.concatenate([[0], np.cumsum(has_dep)]).astype(np.int64),
        dep_ops=dep_of[has_dep].astype(np.int32),
        group_offsets=np.concatenate([[0], np.cumsum(group_sizes)]).astype(np.int64),
        group_ranks=group_ranks,
    )
