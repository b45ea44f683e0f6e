"""Fit the deepspeed-2021 stack's collective efficiency on DeepSpeed's own published ZeRO-3
measurement (issue #1174 / pull request #1188; see podsim.front.stack_calibration), and print it.

    PYTHONPATH=src python tools/calibrate_deepspeed2021.py

Copy the printed value into PRESETS["deepspeed-2021"] in src/podsim/plans/stack.py; a test
(tests/test_stack.py) fails while they differ.
"""

from podsim.front.stack_calibration import deepspeed_2021_efficiency, forward_gathers

if __name__ == "__main__":
    latency, bandwidth = forward_gathers()
    print(
        f"forward all-gathers at podsim's model: {latency * 1e3:.2f} ms latency terms, "
        f"{bandwidth * 1e3:.2f} ms bandwidth terms"
    )
    print(f"collective_efficiency = {deepspeed_2021_efficiency():.3f}")
