"""Tables the docs quote, generated from the code so that no page quotes a number the code no
longer gives. A page marks each generated block:

    <!-- generated: NAME (tools/gen_docs.py) -->
    ...
    <!-- end generated: NAME -->

`tools/gen_docs.py` rewrites the blocks; tests check that the committed text equals the
generated one (the DeepEP tables in tests/test_docs.py, the slow training cases in
tests/validation/test_published.py).
"""

import re
from collections.abc import Iterable

from podsim.front import deepep, nccl_tests
from podsim.front.serve_validation import ServingCase
from podsim.front.validation import (
    V3_PUBLISHED_PHASES,
    Case,
    in_sample,
    mape,
    out_of_sample_bound,
)
from podsim.units import format_size

HELD_OUT_LABELS = {
    "megatron_sc21_t2_174p6B_384gpu": "174.6B, 384 GPUs (pp 12, dp 4), batch 1,536",
    "megatron_sc21_t2_174p6B_768gpu": "174.6B, 768 GPUs (dp 8)",
    "megatron_sc21_t2_174p6B_1536gpu": "174.6B, 1,536 GPUs (dp 16)",
    "megatron_sc21_t2_529p6B_560gpu": "529.6B, 560 GPUs (pp 35, dp 2), batch 2,240",
    "megatron_sc21_t2_529p6B_1120gpu": "529.6B, 1,120 GPUs (dp 4)",
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {re.escape(name)} \(tools/gen_docs\.py\) -->\n)(.*?)"
        rf"(<!-- end generated: {re.escape(name)} -->)",
        re.DOTALL,
    )


def blocks_in(text: str) -> list[str]:
    """Names of the generated blocks of a page, in order."""
    return re.findall(r"<!-- generated: (\S+) \(tools/gen_docs\.py\) -->", text)


def block(text: str, name: str) -> str:
    """The committed content of block `name` (ValueError if the page lacks it)."""
    match = _block(name).search(text)
    if match is None:
        raise ValueError(f"no generated block {name!r}")
    return match.group(2)


def with_block(text: str, name: str, content: str) -> str:
    """`text` with block `name` replaced by `content`."""
    block(text, name)  # it must exist
    return _block(name).sub(lambda m: m.group(1) + content + m.group(3), text)


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |\n"


def validation_blocks(cases: list[Case]) -> dict[str, str]:
    """docs/validation.md's training cases: the calibration table with its MAPE and worst
    row, and the held-out table with the MAPE over all cases."""
    fitted = [c for c in cases if in_sample(c)]
    held = [c for c in cases if not in_sample(c)]
    order = {name: i for i, name in enumerate(HELD_OUT_LABELS)}
    held.sort(key=lambda c: order.get(c.name, len(order)))
    fitted.sort(key=lambda c: _calibration_order(c.name))
    calib = _row(("case", "metric", "published", "predicted", "error"))
    calib += _row(("---",) * 5)
    for c in fitted:
        calib += _row(
            (c.name, c.metric, f"{c.published:,.4g}", f"{c.predicted:,.4g}", f"{c.error:+.1%}")
        )
    worst = max(fitted, key=lambda c: abs(c.error))
    calib += f"\nMAPE {mape(fitted):.1%}, worst row {abs(worst.error):.1%} ({worst.name}).\n"
    out = _row(("case", "published TFLOP/s per GPU", "predicted", "error")) + _row(("---",) * 4)
    for c in held:
        label = HELD_OUT_LABELS.get(c.name, c.name)
        out += _row((label, f"{c.published:,.4g}", f"{c.predicted:,.1f}", f"{c.error:+.1%}"))
    out += f"\nMAPE over all {len(cases)} cases: {mape(cases):.1%}.\n"
    return {"validation-calibration": calib, "validation-held-out": out}


def out_of_sample_block(cases: list[Case], in_sample: list[Case]) -> dict[str, str]:
    """docs/validation.md's out-of-sample training runs, each with its bound, and the
    in-sample against the out-of-sample MAPE."""
    text = _row(("case", "published", "podsim", "error", "bound")) + _row(("---",) * 5)
    for c in cases:
        cells = (c.name, f"{c.published:,.0f}", f"{c.predicted:,.0f}", f"{c.error:+.1%}")
        text += _row((*cells, f"{out_of_sample_bound(c.name):.0%}"))
    worst = max(cases, key=lambda c: abs(c.error))
    text += f"\nIn sample (calibration and held out, {len(in_sample)} rows): MAPE "
    text += f"{mape(in_sample):.1%}. Out of sample ({len(cases)} rows): MAPE {mape(cases):.1%}, "
    text += f"worst {worst.error:+.1%} ({worst.name}).\n"
    return {"validation-out-of-sample": text}


def stack_blocks(cases: list[Case], baseline: list[Case]) -> dict[str, str]:
    """docs/validation.md's runs of other software stacks: published, podsim with the run's
    [stack] and without it (megatron-core), with both errors."""
    head = ("case", "published", "with its stack", "error", "megatron-core", "error")
    text = _row(head) + _row(("---",) * 6)
    before = {c.name: c for c in baseline}
    for c in cases:
        b = before[c.name]
        cells = (c.name, f"{c.published:,.4g}", f"{c.predicted:,.1f}", f"{c.error:+.1%}")
        text += _row((*cells, f"{b.predicted:,.1f}", f"{b.error:+.1%}"))
    text += f"\nMAPE {mape(cases):.1%} with each run's stack, "
    text += f"{mape(baseline):.1%} with megatron-core.\n"
    return {"validation-software-stacks": text}


A100_ROWS = ("megatron_sc21_t1_", "korthikanti22_")  # the rows the A100 efficiencies fit


def unfused_blocks(cases: list[Case], fused: list[Case]) -> dict[str, str]:
    """docs/validation.md's A100 calibration rows as they ran (unfused attention,
    train.flash_attention = false) and, at the same efficiencies, with fused attention."""
    text = _row(("case", "published", "unfused, as run", "error", "fused", "error"))
    text += _row(("---",) * 6)
    by_name = {c.name: c for c in fused}
    for c in sorted(cases, key=lambda c: _calibration_order(c.name)):
        f = by_name[c.name]
        text += _row(
            (
                c.name,
                f"{c.published:,.4g}",
                f"{c.predicted:,.4g}",
                f"{c.error:+.1%}",
                f"{f.predicted:,.4g}",
                f"{f.error:+.1%}",
            )
        )
    text += f"\nMAPE {mape(cases):.1%} as run, {mape(fused):.1%} with fused attention.\n"
    return {"validation-unfused-attention": text}


def _calibration_order(name: str) -> tuple[int, float]:
    """Korthikanti's rows first, then SC'21 Table 1, each by model size."""
    size = re.search(r"_(\d+)p?(\d*)B", name) or re.search(r"_(\d+)()T", name)
    number = float(f"{size.group(1)}.{size.group(2) or 0}") if size else 0.0
    if name.endswith("T"):
        number *= 1000
    return (0 if name.startswith("korthikanti") else 1, number)


def deepep_blocks() -> dict[str, str]:
    """docs/validation.md's DeepEP tables: low-latency kernels (us), normal kernels (GB/s)."""
    head = ("EP", "dispatch published", "podsim", "error", "combine published", "podsim", "error")
    out = {}
    for name, rows, scale, unit_digits in (
        ("deepep-low-latency", deepep.low_latency_rows(), 1e6, 1),
        ("deepep-normal", deepep.normal_rows(), 1e-9, 1),
    ):
        text = _row(head) + _row(("---",) * 7)
        by_ep: dict[int, dict[str, deepep.Row]] = {}
        for r in rows:
            by_ep.setdefault(r.ep, {})[r.phase] = r
        for ep, phases in by_ep.items():
            label = f"{ep} (NVLink)" if name == "deepep-normal" and ep == 8 else str(ep)
            cells = [label]
            for phase in ("dispatch", "combine"):
                r = phases[phase]
                cells += [
                    f"{r.published * scale:,.0f}",
                    f"{r.predicted * scale:,.{unit_digits}f}",
                    f"{r.error:+.1%}",
                ]
            text += _row(cells)
        out[name] = text
    return out


def nccl_tests_block() -> dict[str, str]:
    """docs/validation.md's nccl-tests tables: all-reduce busbw on one DGX H100 by size, and
    the times of the small sizes against the published 13-20 us band."""
    head = ("size", "busbw published (GB/s)", "podsim (GB/s)", "error", "podsim's algorithm")
    text = _row(head) + _row(("---",) * 5)
    for r in nccl_tests.rows():
        text += _row(
            (
                format_size(r.size_bytes),
                f"{r.published_busbw / 1e9:,.1f}",
                f"{r.predicted_busbw / 1e9:,.1f}",
                f"{r.error:+.1%}",
                f"{r.algorithm} ({r.protocol})",
            )
        )
    low, high = nccl_tests.small_band()
    band = f"{low * 1e6:.0f}-{high * 1e6:.0f}"
    small = _row(("size", "time published (us)", "podsim (us)", "off the band", "algorithm"))
    small += _row(("---",) * 5)
    for r in nccl_tests.small_rows():
        small += _row(
            (
                format_size(r.size_bytes),
                band,
                f"{r.time_s * 1e6:,.1f}",
                f"{r.error(low, high):+.1%}",
                f"{r.algorithm} ({r.protocol})",
            )
        )
    return {"nccl-tests-dgx-h100": text, "nccl-tests-dgx-h100-small": small}


V3_PHASE_LABELS = {
    "F": "F: lone forward chunks",
    "B": "B: lone backward chunks (input gradients)",
    "W": "W: weight-gradient chunks",
    "F&B": "F&B: overlapped forward and backward chunks",
    "optimizer": "optimizer",
    "idle": "bubble (and waits for other stages)",
}


def v3_phase_block(phases: dict[str, float]) -> dict[str, str]:
    """docs/validation.md's DeepSeek-V3 phase table: published (ISCA'25 Table 4) and podsim's
    middle pipeline rank (podsim.front.validation.v3_phases)."""
    text = _row(("phase", "published", "podsim", "difference")) + _row(("---",) * 4)
    for key, label in V3_PHASE_LABELS.items():
        published, ours = V3_PUBLISHED_PHASES[key], phases[key]
        cells = (label, f"{published:.2f} s", f"{ours:.2f} s", f"{ours - published:+.2f} s")
        text += _row(cells)
    total = (sum(V3_PUBLISHED_PHASES.values()), sum(phases.values()))
    text += _row(
        ("step", f"{total[0]:.2f} s", f"{total[1]:.2f} s", f"{total[1] - total[0]:+.2f} s")
    )
    return {"deepseek-v3-phases": text}


def serving_block(rows: list[tuple[ServingCase, Case, Case]]) -> dict[str, str]:
    """docs/validation.md's and docs/serving.md's serving table: each case as podsim gives it
    (calibrated efficiencies) and at efficiency 1, with mean absolute errors by kind."""
    head = ("case", "kind", "metric (per device)", "published", "podsim", "error")
    text = _row((*head, "at efficiency 1", "error")) + _row(("---",) * 8)
    for case, r, peak in rows:
        metric = "decode tok/s" if case.metric.startswith("decode") else "prefill tok/s"
        text += _row(
            (
                case.label,
                case.kind,
                metric,
                f"{r.published:,.0f}",
                f"{r.predicted:,.0f}",
                f"{r.error:+.1%}",
                f"{peak.predicted:,.0f}",
                f"{peak.error:+.1%}",
            )
        )
    text += "\n"
    for kind in ("calibration", "out-of-sample"):
        picked = [(r, p) for c, r, p in rows if c.kind == kind]
        text += (
            f"{kind}: mean absolute error {mape([r for r, _ in picked]):.1%} "
            f"({mape([p for _, p in picked]):.1%} at efficiency 1), worst "
            f"{max(abs(r.error) for r, _ in picked):.1%}.\n"
        )
    return {"serving-validation": text}
