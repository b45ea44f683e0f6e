"""Published serving figures reproduced (docs/validation.md, docs/serving.md).

CALIBRATION: DeepSeek's two H800 production rows (open-infra-index day 6); decode_efficiency
and prefill_efficiency were fitted on them, one each, by `tools/calibrate.py serving`, so they
must come within 20% (they come within 1%). OUT-OF-SAMPLE: CloudMatrix-Infer on CloudMatrix384
(arXiv 2506.12708), SGLang on H100 (LMSYS 2025-05-05) and DeepSeek's prefill profile; nothing
was fitted on them. Their bound, 45%, is generous on purpose and says how far podsim's serving
figures may be trusted across chips, software and load (benchmarks against a production
average); each error is printed (pytest -s) and listed in the docs.
"""

from pathlib import Path

import pytest

from podsim.front.api import resolve_scenario
from podsim.front.doc_tables import block, serving_block
from podsim.front.serve import server_of, with_serve
from podsim.front.serve_validation import CASES, PEAK, serving_cases
from podsim.plans.serving import DECODE_EFFICIENCY, PREFILL_EFFICIENCY

CALIBRATION_BOUND = 0.20
OUT_OF_SAMPLE_BOUND = 0.45
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rows():
    out = serving_cases()
    for case, r, peak in out:
        print(
            f"{case.kind} {case.name}: published {r.published:,.0f}, podsim {r.predicted:,.0f} "
            f"({r.error:+.1%}), at efficiency 1 {peak.predicted:,.0f} ({peak.error:+.1%})"
        )
    return out


def test_calibration_rows_within_twenty_percent(rows):
    calibration = [r for c, r, _ in rows if c.kind == "calibration"]
    assert len(calibration) == 2
    assert all(abs(r.error) <= CALIBRATION_BOUND for r in calibration)
    # Without the fitted efficiencies the step model alone overshoots both (the reason for them).
    peaks = [p for c, _, p in rows if c.kind == "calibration"]
    assert all(p.error > CALIBRATION_BOUND for p in peaks)


def test_out_of_sample_rows_within_the_generous_bound(rows):
    held = [(c, r) for c, r, _ in rows if c.kind == "out-of-sample"]
    assert len(held) == 5
    worst_case, worst = max(held, key=lambda cr: abs(cr[1].error))
    assert abs(worst.error) <= OUT_OF_SAMPLE_BOUND, f"{worst_case.name}: {worst.error:+.1%}"


def test_decode_efficiency_transfers_to_other_deployments(rows):
    # Fitted on DeepSeek's H800 decode only, it brings CloudMatrix384 and SGLang's decode
    # within 10%, where the step model alone is 40% over.
    decode = [r for c, r, _ in rows if c.kind == "out-of-sample" and "decode" in c.name]
    assert len(decode) == 2
    assert all(abs(r.error) <= 0.10 for r in decode)


def test_defaults_are_the_fit():
    # `tools/calibrate.py serving` (podsim.front.calibration) reproduces the plan defaults.
    from podsim.front.calibration import serving_efficiency

    assert serving_efficiency("deepseek-r1-decode-h800", "decode_efficiency") == DECODE_EFFICIENCY
    assert (
        serving_efficiency("deepseek-r1-prefill-h800", "prefill_efficiency") == PREFILL_EFFICIENCY
    )


def test_decode_step_is_what_the_published_user_speed_implies():
    # 20-22 tokens/s per user at 1.85 tokens per step (MTP) is an 84-93 ms step; the step
    # model alone (efficiency 1) at the batch that fits in memory gives it within 5% of 88 ms.
    scenario = with_serve(resolve_scenario("deepseek-r1-decode-h800"), **PEAK)
    server = server_of(scenario)
    point = server.decode_at(server.max_batch())
    assert point.step.time_s == pytest.approx(1.85 / 21, rel=0.05)
    # ... and the calibrated deployment runs at the published per-user speed.
    from podsim.front.api import serve

    result = serve("deepseek-r1-decode-h800")
    assert 20.0 <= 1 / result.tpot_s <= 22.0


def test_cases_are_built_in_scenarios():
    names = {c.name for c in CASES}
    assert all(resolve_scenario(name).serve is not None for name in names)


def test_docs_quote_these_cases(rows):
    expected = serving_block(rows)["serving-validation"]
    for page in ("docs/validation.md", "docs/serving.md"):
        text = (ROOT / page).read_text(encoding="utf-8")
        assert block(text, "serving-validation") == expected, (
            f"{page} block serving-validation is stale: run `PYTHONPATH=src python "
            "tools/gen_docs.py`"
        )
    serving = (ROOT / "docs/serving.md").read_text(encoding="utf-8")
    assert f"decode_efficiency = {DECODE_EFFICIENCY}" in serving
    assert f"prefill_efficiency = {PREFILL_EFFICIENCY}" in serving
