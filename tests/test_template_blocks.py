"""A step's passes written as one block of copied prototypes (StepBuilder._pass_block) against
the same template written op by op (the path DualPipe, ZeRO-3 and split passes take): equal op
for op (every field, names included), column for column and program for program."""

import dataclasses

import numpy as np
import pytest
from conftest import cluster
from hypothesis import given, settings
from hypothesis import strategies as st
from small_models import SMALL_MOE, small_dense

from podsim import PodsimError
from podsim.lowering.layout import Template, TemplateOp
from podsim.lowering.program import Kind
from podsim.lowering.training import StepBuilder
from podsim.plans.stack import Stack
from podsim.plans.training import Plan


class OneByOne(StepBuilder):
    """Writes every template op by op."""

    def _repeats_passes(self, stage, order) -> bool:
        return False


def lower_both(model, plan, c, v):
    """(block-written, op-by-op) lowerings of one step."""
    return StepBuilder(model, plan, c, v).lower(), OneByOne(model, plan, c, v).lower()


def assert_same(blocks, objects) -> None:
    for fast, slow in zip(blocks.templates, objects.templates, strict=True):
        assert len(fast) == len(slow.ops)
        names = [fast.name(j) for j in range(len(fast))]
        columns = fast.columns()
        assert names == [op.name for op in slow.ops]
        for name, column in slow.columns().items():
            np.testing.assert_array_equal(columns[name], column, err_msg=name)
        # Written out, the block's ops are the objects' (every field, deps included).
        assert [dataclasses.astuple(op) for op in fast.ops] == [
            dataclasses.astuple(op) for op in slow.ops
        ]
    for which in ("symmetric_program", "program"):
        fast, slow = getattr(blocks, which), getattr(objects, which)
        for field in dataclasses.fields(slow):
            np.testing.assert_array_equal(
                getattr(fast, field.name), getattr(slow, field.name), err_msg=field.name
            )


# Plan settings drawn together; virtual stages apply to the interleaved schedule only.
PLANS = st.fixed_dictionaries(
    {
        "tp": st.sampled_from([1, 2]),
        "pp": st.sampled_from([1, 2, 3, 4]),
        "dp": st.sampled_from([1, 2]),
        "cp": st.sampled_from([1, 2]),
        "ep": st.sampled_from([1, 2]),
        "zero": st.integers(0, 2),
        "schedule": st.sampled_from(["gpipe", "1f1b", "interleaved"]),
        "virtual_stages": st.integers(1, 2),
        "global_batch": st.integers(1, 5),  # microbatches per replica, over 2
        "recompute": st.sampled_from(["none", "selective", "full"]),
    }
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    model=st.sampled_from([small_dense(8), SMALL_MOE]),
    drawn=PLANS,
    efficiency=st.sampled_from([1.0, 0.8]),
)
def test_blocks_equal_ops_written_one_by_one(model, drawn, efficiency):
    drawn["global_batch"] *= 2 * drawn["dp"]
    v = drawn["virtual_stages"] if drawn["schedule"] == "interleaved" else 1
    drawn["virtual_stages"] = v if drawn["schedule"] == "interleaved" else 0
    try:
        plan = Plan(
            seq_len=512, micro_batch=1, stack=Stack(collective_efficiency=efficiency), **drawn
        )
        blocks, objects = lower_both(model, plan, cluster(plan.devices, 4), v)
    except PodsimError:
        return  # plans the model or lowering refuses (tests/test_plans_fuzz.py covers them)
    assert all(t._block is not None for t in blocks.templates)  # the block path was taken
    assert_same(blocks, objects)


@pytest.mark.parametrize(
    "settings_",
    [dict(schedule="dualpipe", ep=2), dict(zero=3), dict(zero=1, overlap_grad_reduce=True)],
)
def test_dualpipe_zero3_and_split_passes_are_written_op_by_op(settings_):
    stack = {k: settings_.pop(k) for k in ("overlap_grad_reduce",) if k in settings_}
    plan = Plan(seq_len=512, global_batch=8, micro_batch=1, tp=1, pp=2, dp=2, stack=Stack(**stack))
    plan = dataclasses.replace(plan, **settings_)
    lowered = StepBuilder(SMALL_MOE, plan, cluster(plan.devices, 4), 1).lower()
    assert all(t._block is None for t in lowered.templates)


def test_a_block_comes_first():
    t = Template()
    t.add(TemplateOp("optimizer", Kind.COMPUTE, 0, duration=1.0))
    with pytest.raises(ValueError, match="first"):
        t.add_block(None)


def test_an_interleaved_moe_step_is_written_as_blocks_alike():
    # Every parallelism at once, collectives scaled by the stack, receives both ways.
    plan = Plan(
        seq_len=512,
        global_batch=12,
        micro_batch=1,
        tp=2,
        pp=3,
        dp=2,
        cp=2,
        ep=2,
        zero=1,
        schedule="interleaved",
        virtual_stages=2,
        stack=Stack(collective_efficiency=0.8),
    )
    blocks, objects = lower_both(SMALL_MOE, plan, cluster(plan.devices, 4), 2)
    assert all(t._block is not None for t in blocks.templates)
    assert_same(blocks, objects)
