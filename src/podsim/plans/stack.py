"""Software stacks: what the training framework and its collective library do with a plan.

A plan says how the work is split; the stack says how the software runs it: which
communications overlap compute, how ZeRO-3 / FSDP gathers parameters, the framework's fixed
cost per layer, the collective library's efficiency and the kernels' efficiencies. A scenario's
`[stack]` table names a preset and overrides any of its settings; the sources of each preset are
in docs/training.md ("Software stacks"). The default, `megatron-core`, is what podsim modelled
before stacks existed, so results without a [stack] table do not change.
"""

import json
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any

from podsim.errors import SpecError
from podsim.fields import (
    Boolean,
    Choice,
    Integer,
    OneOf,
    Quantity,
    Table,
    TableOf,
    auto,
    fraction,
)
from podsim.specs.chips import KERNEL_CLASSES, Chip

LIBRARIES = ("nccl", "hccl", "rccl")
ZERO3_GRANULARITY = ("chunk", "layer", "module")
UNBOUNDED = -1  # zero3_prefetch: gathers may run any distance ahead of the compute using them


def _efficiencies() -> TableOf:
    """Kernel efficiency overrides: a kernel class for every chip (`gemm = 0.6`), or a chip id
    with a table of classes (`"a100-sxm-80gb" = { gemm = 0.6, attention = 0.3 }`); FP8 GEMMs
    take the `_fp8` classes, as in the chip catalog."""
    value = fraction("efficiency", "a fraction of the peak", low_open=True)
    per_chip = TableOf("chip", "classes of one chip", value=value, keys=KERNEL_CLASSES)
    return TableOf(
        "kernel_efficiency",
        "kernel-class efficiencies replacing the chip's: a class (all chips) or a chip id "
        "with a table of classes",
        {},
        value=OneOf("efficiency", "", options=(value, per_chip)),
    )


STACK_FIELDS = Table(
    "stack",
    "the software stack: a preset, then overrides of its settings (defaults shown: megatron-core)",
    fields=(
        Choice(
            "preset",
            "the framework and its defaults",
            "megatron-core",
            choices=("megatron-core", "deepspeed-2021", "fsdp2", "mindspeed"),
        ),
        Boolean(
            "overlap_grad_reduce", "gradient reduction overlaps backward, layer by layer", False
        ),
        Boolean("overlap_param_gather", "ZeRO-1/2 weight all-gather overlaps the forward", False),
        Boolean("overlap_tp_comm", "tensor-parallel collectives overlap compute", False),
        Boolean("overlap_cp_comm", "context-parallel key/value exchange overlaps compute", False),
        auto(
            Boolean(
                "overlap_ep_comm",
                'expert all-to-alls overlap compute; "auto": under DualPipe only',
                "auto",
            )
        ),
        Quantity(
            "layer_overhead",
            "framework time per layer per pass (hooks, launches) that no kernel covers",
            0.0,
            kind="time",
            high=1.0,
        ),
        Choice("collective_library", "the collective library (a label)", "nccl", choices=LIBRARIES),
        fraction(
            "collective_efficiency",
            "fraction of podsim's collective bandwidth the library reaches",
            1.0,
            low_open=True,
        ),
        Choice(
            "zero3_granularity",
            'ZeRO-3 gathers per "chunk" (a pipeline chunk\'s weights at once), "layer" or '
            '"module" (each of a layer\'s 4 weight matrices)',
            "chunk",
            choices=ZERO3_GRANULARITY,
        ),
        Integer(
            "zero3_prefetch",
            "ZeRO-3 gathers issued ahead of the compute that uses them (-1: unbounded)",
            UNBOUNDED,
            low=-1,
            high=10_000,
        ),
        Boolean("zero3_regather", "ZeRO-3 gathers the weights again in backward", True),
        _efficiencies(),
    ),
)
_KEYS = STACK_FIELDS.keys


@dataclass(frozen=True)
class Stack:
    """A software stack's settings (SI units). Defaults: the megatron-core preset."""

    preset: str = "megatron-core"
    overlap_grad_reduce: bool = False
    overlap_param_gather: bool = False
    overlap_tp_comm: bool = False
    overlap_cp_comm: bool = False
    overlap_ep_comm: bool | str = "auto"
    layer_overhead: float = 0.0  # s per layer per pass
    collective_library: str = "nccl"
    collective_efficiency: float = 1.0
    zero3_granularity: str = "chunk"
    zero3_prefetch: int = UNBOUNDED
    zero3_regather: bool = True
    # ((class or chip id, efficiency or ((class, efficiency), ...)), ...): hashable
    kernel_efficiency: tuple = ()

    def __post_init__(self) -> None:
        if isinstance(self.kernel_efficiency, dict):  # as the Python API may give it
            object.__setattr__(self, "kernel_efficiency", _frozen(self.kernel_efficiency))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "kernel_efficiency":
                value = _as_dict(value)
                _check_classes(value)
            _KEYS[f.name].check(value, f"stack.{f.name}")

    def overlaps_ep(self, dualpipe: bool) -> bool:
        """Whether expert all-to-alls run on their own stream, overlapping compute."""
        return dualpipe if self.overlap_ep_comm == "auto" else bool(self.overlap_ep_comm)

    def chip(self, chip: Chip) -> Chip:
        """The chip with this stack's kernel efficiencies in place of its own (classes for every
        chip first, then the chip's own entry); the same chip when there are none."""
        table = _as_dict(self.kernel_efficiency)
        if not table:
            return chip
        merged = dict(chip.kernel_efficiency)
        merged |= {k: v for k, v in table.items() if not isinstance(v, dict)}
        merged |= table.get(chip.id, {}) if isinstance(table.get(chip.id), dict) else {}
        return replace(chip, kernel_efficiency=MappingProxyType(merged))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["kernel_efficiency"] = _as_dict(self.kernel_efficiency)
        out["layer_overhead_s"] = out.pop("layer_overhead")
        return out


def _check_classes(table: dict[str, Any]) -> None:
    """A number in kernel_efficiency must be under a kernel class (a table, under a chip id)."""
    for key, value in table.items():
        if not isinstance(value, dict) and key not in KERNEL_CLASSES:
            raise SpecError(
                f"stack.kernel_efficiency.{key} = {value!r} is not allowed: a number goes under "
                f"a kernel class ({', '.join(KERNEL_CLASSES)}), a table under a chip id"
            )


def _frozen(table: dict[str, Any]) -> tuple:
    return tuple(sorted((k, _frozen(v) if isinstance(v, dict) else v) for k, v in table.items()))


def _as_dict(items: tuple) -> dict[str, Any]:
    return {k: _as_dict(v) if isinstance(v, tuple) else v for k, v in items}


# Each preset's settings beyond the defaults above; docs/training.md gives their sources.
PRESETS: dict[str, dict[str, Any]] = {
    "megatron-core": {},
    "deepspeed-2021": {
        "overlap_grad_reduce": True,
        "zero3_granularity": "module",
        "zero3_prefetch": 1,
        "zero3_regather": True,
        # CALIBRATED on DeepSpeed issue #1174 / PR #1188 (not on a validation row): see
        # podsim.front.stack_calibration and tools/calibrate.py deepspeed-2021
        "collective_efficiency": 0.080,
    },
    "fsdp2": {
        "overlap_grad_reduce": True,
        "overlap_param_gather": True,
        "zero3_granularity": "layer",
        "zero3_prefetch": 1,
        "zero3_regather": True,
    },
    "mindspeed": {
        "overlap_grad_reduce": True,
        "overlap_param_gather": True,
        "overlap_tp_comm": True,
        "overlap_cp_comm": True,
        "collective_library": "hccl",
    },
}


def preset(name: str) -> Stack:
    """A preset by name (SpecError naming the allowed ones)."""
    _KEYS["preset"].check(name, "stack.preset")
    return Stack(preset=name, **PRESETS[name])


MEGATRON_CORE = preset("megatron-core")


def stack_from_table(table: dict[str, Any] | None) -> Stack:
    """A stack from a scenario's [stack] table: the preset, then the keys given."""
    values = STACK_FIELDS.check(table or {}, "stack")
    base = preset(values.pop("preset", "megatron-core"))
    if "kernel_efficiency" in values:
        values["kernel_efficiency"] = _frozen(values["kernel_efficiency"])
    try:
        return replace(base, **values)
    except TypeError as error:  # cannot happen: the schema lists the fields
        raise SpecError(f"stack: {error}") from error


def stack_label(settings: dict[str, Any]) -> str:
    """A stack (as Stack.to_dict) in words: its preset, and the settings that differ from it."""
    name = settings.get("preset", "megatron-core")
    base = preset(name).to_dict()
    differ = [k for k in base if k != "preset" and settings.get(k) != base[k]]
    changed = [f"{k}={json.dumps(settings.get(k))}" for k in differ]
    return name + (f" ({', '.join(changed)})" if changed else "")
