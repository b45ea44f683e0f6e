"""Fit the two serving efficiencies on DeepSeek's two H800 serving rows, and print them.

The rows (the CALIBRATION set, DeepSeek open-infra-index, day 6 "Inference System Overview",
24-hour production averages of February 2025), as the built-in scenarios give them:

- deepseek-r1-decode-h800 (infer_deepseek_online_h800_decode): 1,850 output tokens/s per
  GPU at 20-22 tokens/s per user (tpot_slo 47.6 ms), EP144, MTP;
- deepseek-r1-prefill-h800 (infer_deepseek_online_h800_prefill): 4,026 uncached prompt
  tokens/s per GPU (73.7k per node including the 56.3% cache hits), EP32.

Each efficiency is fitted on its own row by bisection (decode tokens/s rises with
decode_efficiency, prefill tokens/s with prefill_efficiency); everything else keeps its
value. Rerun after any change to the serving cost model:

    PYTHONPATH=src python tools/calibrate_serving.py

and copy the printed values into DECODE_EFFICIENCY / PREFILL_EFFICIENCY in
src/podsim/plans/serving.py (tests/validation/test_serving_published.py checks they agree).
"""

from podsim.front.serve_validation import CALIBRATION, run_serving_case

LOW, HIGH, STEP = 0.05, 1.0, 1e-4


def fit(name: str, key: str) -> float:
    """The efficiency (3 decimals) whose prediction is nearest the published row."""
    low, high = LOW, HIGH
    target = CALIBRATION[name].published
    while high - low > STEP:
        middle = (low + high) / 2
        if run_serving_case(name, {key: middle}).predicted < target:
            low = middle
        else:
            high = middle
    candidates = {round(low, 3), round(high, 3), round((low + high) / 2, 3)}
    return min(candidates, key=lambda e: abs(run_serving_case(name, {key: e}).error))


def main() -> None:
    for name, key in (
        ("deepseek-r1-decode-h800", "decode_efficiency"),
        ("deepseek-r1-prefill-h800", "prefill_efficiency"),
    ):
        before = run_serving_case(name, {key: 1.0})
        value = fit(name, key)
        after = run_serving_case(name, {key: value})
        print(
            f"{key} = {value} ({name}: published {after.published:,.0f}, "
            f"at 1.0 {before.predicted:,.0f} ({before.error:+.1%}), "
            f"fitted {after.predicted:,.0f} ({after.error:+.1%}))"
        )


if __name__ == "__main__":
    main()
