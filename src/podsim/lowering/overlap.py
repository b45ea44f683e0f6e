"""What a software stack ([stack], podsim.plans.stack) changes in a step's templates: passes
split layer by layer so that weight gathers and gradient reductions interleave with the layers
that need or produce them, and collective bytes scaled by the library's efficiency.

A split pass runs its layers as equal compute pieces (the pass's time over its layers; the
embedding and the output head are spread over them). Weight gathers run on the data-parallel
stream in the order the framework issues them, gradient reductions on a reduction stream.
"""

from dataclasses import dataclass

from podsim.lowering.layout import COMPUTE, DP_STREAM, Template, TemplateOp
from podsim.lowering.program import Collective, Kind
from podsim.plans.stack import UNBOUNDED, Stack

# Tensor- and context-parallel collectives that overlap compute run on a stream of their own;
# so do the gradient reductions of split passes (DeepSpeed's reduction stream, FSDP2's
# reduce-scatter stream), beside the weight gathers on the data-parallel stream.
OVERLAP_STREAM, REDUCE_STREAM = 8, 9
# Pieces a pass is split into per layer, by ZeRO-3 gather granularity: the chunk at once, each
# layer, or each weight module of a layer (DeepSpeed's hooks fetch per nn.Module: the QKV and
# output projections and the MLP's two matrices of a Megatron transformer layer).
PIECES_PER_LAYER = {"chunk": 0, "layer": 1, "module": 4}


@dataclass(frozen=True)
class Transfer:
    """A weight gather or gradient reduction of a whole pass over one group; a split pass runs
    it in equal pieces, one per layer."""

    role: str
    op: Collective
    nbytes: float
    name: str

    def piece(self, i: int, pieces: int, deps: list[int]) -> TemplateOp:
        stream = DP_STREAM if self.op == Collective.ALL_GATHER else REDUCE_STREAM
        op = TemplateOp(f"{self.name} {i}", Kind.COLLECTIVE, stream, deps=deps)
        op.nbytes, op.role, op.collective = self.nbytes / pieces, self.role, self.op
        return op


def split_pass(
    t: Template,
    name: str,
    duration: float,
    pieces: int,
    deps: list[int],
    gathers: tuple[Transfer, ...] = (),
    prefetch: int = UNBOUNDED,
    reductions: tuple[Transfer, ...] = (),
) -> tuple[int, list[int]]:
    """A pass as `pieces` layer pieces on the compute stream. Each piece waits for its share of
    the `gathers`, which may start once the piece `prefetch` + 1 before it has finished
    (prefetch 0: gather, then compute; UNBOUNDED: all at once). Each reduction runs in pieces,
    after the piece that produced its gradients. Returns (the last piece, the reductions)."""
    computes: list[int] = []
    gathered: list[list[int]] = []
    reduced: list[int] = []
    for i in range(pieces):
        ahead = pieces if prefetch == UNBOUNDED else min(pieces, i + prefetch + 1)
        while gathers and len(gathered) < ahead:
            j = len(gathered)
            after = j - prefetch - 1  # the piece whose end lets gather j start
            wait = [computes[after]] if prefetch != UNBOUNDED and after >= 0 else []
            gathered.append([t.add(g.piece(j, pieces, wait)) for g in gathers])
        need = (list(deps) if i == 0 else []) + (gathered[i] if gathers else [])
        piece = TemplateOp(
            f"{name} layer {i}", Kind.COMPUTE, COMPUTE, duration=duration / pieces, deps=need
        )
        computes.append(t.add(piece))
        reduced += [t.add(r.piece(i, pieces, [computes[-1]])) for r in reductions]
    return computes[-1], reduced


def scale_collectives(templates: list[Template], stack: Stack) -> None:
    """Collectives at the library's efficiency: their bytes over it (their latency terms
    stay), so each takes bytes / (bandwidth x efficiency) to move its data."""
    if stack.collective_efficiency == 1.0:
        return
    for template in templates:
        for op in template.collectives():  # an all-to-all keeps its number of messages
            op.nbytes /= stack.collective_efficiency
            op.message_bytes /= stack.collective_efficiency
