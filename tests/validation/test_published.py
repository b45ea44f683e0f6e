"""Published training runs reproduced, each within its bound, and the mean absolute
percentage error within 7%: Megatron-LM SC'21 Table 1 and Korthikanti et al. 2022 Tables 3
and 5 (the A100 kernel efficiencies were fitted once on these 14 rows), Megatron-LM SC'21
Table 2 (5 rows, not fitted on) and DeepSeek-V3 on 2,048 H800s (ISCA'25 Table 4; the H800 FP8
GEMM efficiencies were fitted on it by `tools/calibrate.py h800`). Out-of-sample runs (MoE on
H800, GB200, GB300 and B200) are held to their own, wider bounds and reported apart. Errors
are listed in docs/validation.md.
"""

from importlib import resources
from pathlib import Path

import pytest

from podsim.front.doc_tables import (
    block,
    out_of_sample_block,
    v3_phase_block,
    validation_blocks,
)
from podsim.front.scenario import parse_scenario
from podsim.front.validation import (
    OUT_OF_SAMPLE,
    V3_PUBLISHED_PHASES,
    case_names,
    mape,
    out_of_sample_bound,
    run_case,
    v3_phases,
)

# Tightened from 20% / 10% when the unfused score passes were counted kernel by kernel (worst
# row 11.9%, MAPE 4.5% over the 20 rows).
ROW_BOUND = 0.15
MAPE_BOUND = 0.07


@pytest.fixture(scope="module")
def cases(published_cases):
    return published_cases


def test_every_published_row_is_reproduced(cases):
    assert len(cases) == 20
    worst = max(cases.values(), key=lambda c: abs(c.error))
    assert abs(worst.error) <= ROW_BOUND, f"{worst.name}: {worst.error:+.1%}"


def test_mean_absolute_percentage_error(cases):
    assert mape(list(cases.values())) <= MAPE_BOUND


@pytest.mark.parametrize("name", ["megatron_sc21_t1_1p7B", "korthikanti22_22B"])
def test_small_runs_within_six_percent(cases, name):
    # Runs without pipeline parallelism isolate the kernel model. The 1.7B run (hidden 2,304),
    # whose unfused score passes weigh most against its GEMMs, was 12% slow while the backward
    # over the scores was costed as 2.5x the forward; counted as Megatron-LM's kernels move
    # them (docs/training.md, "Unfused attention") it is within 2%, the 22B run within 4%.
    assert abs(cases[name].error) <= 0.06


def test_rows_not_fitted_on_within_eight_percent(cases):
    # Table 2's weak scaling at a fixed batch: more data parallelism, fewer microbatches each.
    # Run unfused (as they ran) at the efficiencies fitted on unfused Table 1 rows, they come
    # out 2-7% fast, like Table 1's large runs (4-9% fast, bound 10%, before the unfused
    # passes were counted kernel by kernel; within 4% when the A100's attention efficiency of
    # 0.12 absorbed the unfused core).
    held_out = [c for name, c in cases.items() if name.startswith("megatron_sc21_t2")]
    assert len(held_out) == 5
    assert all(0 < c.error <= 0.08 for c in held_out)


def test_deepseek_v3_fits_and_keeps_its_published_step():
    # The calibration row: within 2% of 19.926 s, and the plan that trained fits in 80 GB.
    from podsim.front.api import train
    from podsim.front.scenario import load_scenario
    from podsim.front.validation import resources

    folder = resources.files("podsim").joinpath("data/validation")
    result = train(load_scenario(str(folder.joinpath("deepseek_v3_2048_h800.toml"))))
    assert abs(result.step_time_s / 19.926 - 1) < 0.02
    assert result.fits_in_memory and result.memory_per_device_bytes < 80e9


def test_deepseek_v3_phases_against_isca25_table_4():
    # Only the step time is fitted. A middle rank's compute (F + B + W + F&B: 17.55 s
    # published) within 10%, its idle time (2.06 s) within 30%; docs/validation.md quotes both.
    phases = v3_phases()
    compute = sum(phases[k] for k in ("F", "B", "W", "F&B"))
    published = sum(V3_PUBLISHED_PHASES[k] for k in ("F", "B", "W", "F&B"))
    assert abs(compute / published - 1) < 0.10
    assert abs(phases["idle"] / V3_PUBLISHED_PHASES["idle"] - 1) < 0.30
    page = (Path(__file__).resolve().parents[2] / "docs/validation.md").read_text("utf-8")
    assert block(page, "deepseek-v3-phases") == v3_phase_block(phases)["deepseek-v3-phases"]


def test_out_of_sample_runs_within_their_bounds(cases):
    # Nothing was fitted on these; each bound says how far podsim may be trusted on the row's
    # family (OUT_OF_SAMPLE_FAMILIES, docs/validation.md), 25% unless the page says otherwise.
    outside = [run_case(name, OUT_OF_SAMPLE) for name in case_names(OUT_OF_SAMPLE)]
    assert len(outside) >= 7
    over = [c for c in outside if abs(c.error) > out_of_sample_bound(c.name)]
    assert over == [], [(c.name, f"{c.error:+.1%}") for c in over]
    assert all(out_of_sample_bound(c.name) <= 0.50 for c in outside)
    page = (Path(__file__).resolve().parents[2] / "docs/validation.md").read_text("utf-8")
    generated = out_of_sample_block(outside, list(cases.values()))
    assert block(page, "validation-out-of-sample") == generated["validation-out-of-sample"], (
        "docs/validation.md block validation-out-of-sample is stale: run `PYTHONPATH=src "
        "python tools/gen_docs.py --slow`"
    )


def test_docs_validation_tables_quote_these_cases(cases):
    """docs/validation.md's generated tables equal what these cases give today."""
    page = (Path(__file__).resolve().parents[2] / "docs/validation.md").read_text("utf-8")
    for name, content in validation_blocks(list(cases.values())).items():
        assert block(page, name) == content, (
            f"docs/validation.md block {name} is stale: run `PYTHONPATH=src python "
            "tools/gen_docs.py --slow`"
        )


def test_the_fit_before_dualpipe_was_published_gives_the_documented_step():
    # docs/training.md and docs/validation.md: at the FP8 GEMM scale fitted on the DualPipe
    # approximation (0.814: gemm_fp8 0.570, grouped_gemm_fp8 0.448) the published schedule
    # gives 18.62 s, and the refit (`tools/calibrate.py h800`) lands at 0.714.
    from podsim.front.calibration import H800_TOLERANCE, h800_step_time

    folder = resources.files("podsim").joinpath("data/validation")
    text = folder.joinpath("deepseek_v3_2048_h800.toml").read_text(encoding="utf-8")
    scenario = parse_scenario(text)
    assert h800_step_time(scenario, 0.814) == pytest.approx(18.62, abs=0.005)
    assert abs(h800_step_time(scenario, 0.714) / 19.926 - 1) < H800_TOLERANCE
