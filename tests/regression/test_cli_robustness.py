"""The `podsim` command on inputs that podsim 0.1.0 mishandled when it was fuzzed (robustness
findings 2, 3, 6, 10 and 15-19): every case is a one-line error that names the option or field
and value, or a correct result; never a traceback, a hang or gigabytes of memory. The inputs
are copies of the reproducers (the project does not depend on where they came from)."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scenario_texts import SMALL_TRAINING

from podsim.engine.core import MAX_MONTE_CARLO_OPS
from podsim.front.cli import main
from podsim.front.cli.collective import parse_sizes
from podsim.front.cli.output import dumps, finite_json
from podsim.front.cli.train import parse_scale

BASE = SMALL_TRAINING

# fp8_mfu_over_1.toml: FP8 GEMMs on one H100; MFU against the dense BF16 peak is above 1.
FP8_OVER_1 = """\
[cluster]
preset = "dgx-h100"
devices = 1

[model]
name = "wide"
layers = 1
hidden = 8192
heads = 64
ffn_hidden = 98304
vocab = 1024

[train]
seq_len = 2048
global_batch = 16
micro_batch = 16
precision = "fp8"
"""

# nofit.toml: llama3-8b without any parallelism does not fit in 80 GB.
NOFIT = """\
[cluster]
preset = "dgx-h100"
devices = 8

[model]
preset = "llama3-8b"

[train]
seq_len = 4096
global_batch = 16
tp = 1
pp = 1
"""


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("podsim: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def scenario(tmp_path):
    def write(text: str, name: str = "s.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- 6: strict JSON ---------------------------------------------------------------------------


def test_the_json_writer_never_writes_infinity_or_nan():
    value = {"a": math.inf, "b": [math.nan, -math.inf, 1.5], "c": (1, 2), "d": None}
    assert finite_json(value) == {"a": None, "b": [None, None, 1.5], "c": [1, 2], "d": None}
    text = dumps(value)
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["b"] == [None, None, 1.5]


def test_the_json_writer_keeps_finite_numbers_bit_for_bit():
    import numpy as np

    values = [0.1 + 0.2, 1e-300, 2**53 + 1, np.float64(1 / 3), np.int64(7), True]
    assert json.loads(dumps(values)) == [0.1 + 0.2, 1e-300, 2**53 + 1, 1 / 3, 7, True]


def test_every_verb_writes_strict_json(capsys, scenario):
    path = scenario(BASE + '\n[failures]\ndevice_mtbf = "50000 h"\nruns = 5\n')
    for argv in (
        ["train", path, "--json"],
        ["collective", "--chip", "h100-sxm", "--op", "all-reduce", "--size", "1M", "--json"],
        ["chips", "--json"],
        ["clusters", "--json"],
        ["models", "--json"],
    ):
        code, out, _ = run(capsys, *argv)
        assert code == 0
        json.loads(out, parse_constant=pytest.fail)


# --- 3: MFU against a named peak --------------------------------------------------------------


def test_fp8_mfu_says_which_peak_and_never_exceeds_the_precision_peak(capsys, scenario):
    code, out, _ = run(capsys, "train", scenario(FP8_OVER_1), "--json")
    data = json.loads(out)
    assert code == 0
    assert data["mfu_peak_precision"] == "bf16"
    assert data["mfu_peak_flops_per_s"] == 989e12  # H100 SXM dense BF16
    assert data["gemm_precision"] == "fp8"
    assert data["precision_peak_flops_per_s"] == 1979e12
    # FP8 GEMMs at up to 0.70 x 1979 TFLOP/s: above the BF16 peak, below the FP8 one.
    assert 1.0 < data["mfu"] < 1979 / 989 * 0.70
    assert data["mfu_precision_peak"] == pytest.approx(data["mfu"] * 989 / 1979, rel=1e-12)
    assert 0 < data["mfu_precision_peak"] <= data["hfu_precision_peak"] < 1.0


def test_the_table_labels_the_peaks(capsys, scenario):
    code, out, _ = run(capsys, "train", scenario(FP8_OVER_1))
    assert code == 0
    assert "MFU / HFU (vs dense BF16 peak)" in out
    assert "MFU / HFU (vs dense FP8 peak)" in out


def test_a_bf16_plan_reports_the_same_mfu_against_both(capsys, scenario):
    data = json.loads(run(capsys, "train", scenario(BASE), "--json")[1])
    assert data["gemm_precision"] == "bf16" and data["mfu_precision_peak"] == data["mfu"]


# --- 2: a job that never finishes -------------------------------------------------------------


@pytest.mark.parametrize("runs", ["", "runs = 1\n"])
def test_a_job_that_never_finishes_is_refused_at_once(capsys, scenario, runs):
    # failures_mc_unbounded.toml, failures_mc_1run.toml: 16 devices of 1 h MTBF fail every
    # 225 s; a restart takes 10 min.
    text = BASE.replace("tokens = 1e12", "tokens = 2e14")
    path = scenario(text + f'\n[failures]\ndevice_mtbf = "1 h"\n{runs}')
    start = time.monotonic()
    line = one_line_error(capsys, "train", path, "--json")
    assert time.monotonic() - start < 10
    assert line.startswith(f"podsim: error: {path}: never finishes: the job fails every 3.75 min")
    assert "a restart takes 10 min" in line


def test_expected_goodput_negative_is_refused_as_never_finishing(capsys, scenario):
    # expected_goodput_negative.toml: a 1 min device MTBF on 16 devices.
    text = BASE.replace("tokens = 1e12", "tokens = 1e10")
    path = scenario(text + '\n[failures]\ndevice_mtbf = "1 min"\nrestart = "10 min"\nruns = 10\n')
    line = one_line_error(capsys, "train", path, "--json")
    assert "never finishes: the job fails every 3.75 s on average (16 devices)" in line


def test_goodput_and_expected_goodput_stay_in_0_1(capsys, scenario):
    # goodput_above_1.toml: no checkpoint cost, almost no failures: goodput came out
    # 1.0000000000076.
    text = """\
[cluster]
devices = 16
chip = {id = "mychip", name = "My chip", vendor = "acme", peak_flops = {bf16 = "500 TFLOP/s", \
fp8 = "1000 TFLOP/s"}, hbm_bytes = "96 GB", hbm_bandwidth = "3 TB/s", scale_up_bandwidth = \
"400 GB/s", scale_up_latency = "2 us", domain_size = 4, scale_out_bandwidth = "400 Gb/s", \
scale_out_latency = "5 us", tdp_watts = 700}
pod_size = 8
oversubscription = 2
launch_latency = "5 us"
scale_out_efficiency = 0.9

[model]
preset = "megatron-1.7b"
layers = 8

[train]
seq_len = 2048
global_batch = 16
micro_batch = 2
tp = 2
pp = 2
tokens = 10000000000.0
recompute = "full"
zero = 2

[noise]
seed = 1
compute_cv = 0.05
link_latency_p99 = "20 us"
straggler_fraction = 0.1
straggler_slowdown = 1.5
steps = 5

[failures]
checkpoint_write = 0
runs = 10
"""
    code, out, _ = run(capsys, "train", scenario(text), "--json")
    data = json.loads(out)
    assert code == 0
    assert 0 < data["goodput"] <= 1.0
    assert 0 <= data["long_run"]["expected_goodput"] <= 1.0


# --- 10: sizes too large are refused at once, with the estimate --------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("global_batch = 32", "global_batch = 100000000"), "1,200,000,002 ops"),  # _huge
        (("global_batch = 32", "global_batch = 1000000"), "12,000,002 ops"),  # _1e6
    ],
)
def test_huge_global_batches_are_refused_with_the_estimate(capsys, scenario, change, expected):
    start = time.monotonic()
    line = one_line_error(capsys, "train", scenario(BASE.replace(*change)), "--json")
    assert time.monotonic() - start < 5
    assert expected in line and "at most" in line


def test_a_noise_monte_carlo_too_large_is_refused_with_the_estimate(capsys, scenario):
    # noise_steps_huge.toml asks 1e12 steps (the schema bounds steps); within its bound, steps x
    # ops can still be too much for one Monte Carlo.
    text = BASE.replace("global_batch = 32", "global_batch = 512")
    path = scenario(text + "\n[noise]\ncompute_cv = 0.1\nsteps = 100000\n")
    line = one_line_error(capsys, "train", path, "--json")
    assert "noise.steps = 100,000 steps of" in line
    assert f"at most {MAX_MONTE_CARLO_OPS:,.3g}" in line


def test_a_size_range_with_millions_of_points_is_refused(capsys):
    line = one_line_error(
        capsys, "collective", "--chip", "h100-sxm", "--op", "all-reduce", "--size", "8:1G:1.0000001"
    )
    assert "gives about 187,149,748 sizes; at most 1,000" in line


def test_a_collective_on_40m_devices_is_refused_at_once(capsys):
    start = time.monotonic()
    line = one_line_error(
        capsys, "collective", "--chip", "h100-sxm", "--devices", "40000000", "--op",
        "all-reduce", "--size", "1G",
    )  # fmt: skip
    assert time.monotonic() - start < 5
    assert "40,000,000 ops; podsim simulates at most 16,000,000" in line


def test_a_trace_too_large_is_refused_before_the_run(capsys, scenario, tmp_path):
    # 131,072 microbatches x 2 passes x 3 ops x 2 stages x 8 ranks: 12.6M ops, over 2M.
    text = BASE.replace("global_batch = 32", "global_batch = 131072")
    start = time.monotonic()
    line = one_line_error(capsys, "train", scenario(text), "--trace", tmp_path / "t.json")
    assert time.monotonic() - start < 5
    assert "the trace would hold 12,582,928 ops" in line and "--trace-ranks" in line
    assert not (tmp_path / "t.json").exists()


def test_trace_ranks_trace_a_subset(capsys, scenario, tmp_path):
    trace = tmp_path / "t.json"
    code, _, err = run(capsys, "train", scenario(BASE), "--trace", trace, "--trace-ranks", "8:10")
    assert code == 0, err
    events = json.loads(trace.read_text())["traceEvents"]
    assert {e["pid"] for e in events} == {8, 9}
    line = one_line_error(
        capsys, "train", scenario(BASE), "--trace", trace, "--trace-ranks", "9:99"
    )
    assert "--trace-ranks = '9:99' is not allowed" in line


# --- 15, 16: option values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("8:1G:abc", "FACTOR 'abc' is not a number > 1"),
        ("0.5", "--size = '0.5' is not allowed: a whole number of bytes >= 1"),
        ("1G:8", "need MIN <= MAX"),
        ("8:1G:1:2", "SIZE or MIN:MAX[:FACTOR]"),
    ],
)
def test_bad_sizes_are_one_line_errors(capsys, size, expected):
    line = one_line_error(
        capsys, "collective", "--chip", "h100-sxm", "--op", "all-reduce", "--size", size
    )
    assert expected in line


def test_size_ranges_are_whole_bytes():
    assert parse_sizes("8:64") == [8, 16, 32, 64]
    assert parse_sizes("8:64:1.5") == [8, 12, 18, 27, 40, 60]


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        ("inf", "'inf' is not a device count"),
        ("16:1e30", "over 64 cluster sizes; at most 64"),
        ("16,0", "'0' is not a device count"),
        ("abc", "'abc' is not a device count"),
        ("", "'' is not a device count"),
        ("32:16", "need 0 < MIN <= MAX"),
    ],
)
def test_bad_scales_are_one_line_errors(capsys, scenario, scale, expected):
    line = one_line_error(capsys, "train", scenario(BASE), "--scale", scale)
    assert f"--scale = {scale!r} is not allowed" in line or "cluster sizes" in line
    assert expected in line


def test_scale_parses_ranges_and_lists():
    assert parse_scale("16:64") == [16, 32, 64]
    assert parse_scale("16:256:4") == [16, 64, 256]
    assert parse_scale("16,48") == [16, 48]


def test_scale_honours_strict(capsys, scenario):
    path = scenario(NOFIT)
    for extra in ([], ["--scale", "8"]):
        line = one_line_error(capsys, "train", path, "--strict", "--json", *extra)
        assert "the plan needs 150.0 GB per device; h100-sxm has 80 GB" in line


def test_scale_refuses_trace(capsys, scenario, tmp_path):
    line = one_line_error(
        capsys, "train", scenario(BASE), "--scale", "16", "--trace", tmp_path / "s.json"
    )
    assert "--trace traces one step: it cannot be combined with --scale" in line
    assert not (tmp_path / "s.json").exists()


def test_a_one_device_collective_is_refused(capsys):
    # collective --devices 1 --op broadcast reported a busbw of 214,748 GB/s.
    line = one_line_error(
        capsys, "collective", "--chip", "h100-sxm", "--devices", "1", "--op", "broadcast",
        "--size", "1G", "--json",
    )  # fmt: skip
    assert "--devices = 1 is not allowed: a collective needs at least 2 devices" in line


# --- 17: trace files ----------------------------------------------------------------------------


def test_trace_paths_are_checked_before_the_run(capsys, scenario, tmp_path):
    path = scenario(BASE)
    (tmp_path / "adir").mkdir()
    (tmp_path / "target.txt").write_text("target")
    (tmp_path / "link.json").symlink_to(tmp_path / "target.txt")
    (tmp_path / "dangling.json").symlink_to(tmp_path / "elsewhere.json")
    cases = {
        tmp_path / "adir": "is a directory",
        tmp_path / "nodir" / "t.json": "does not exist",
        "/dev/full": "is not a regular file",
        tmp_path / "link.json": "is a symbolic link",
        tmp_path / "dangling.json": "is a symbolic link",
        "": "--trace = '' is not allowed",
    }
    for target, expected in cases.items():
        line = one_line_error(capsys, "train", path, "--trace", target)
        assert expected in line, (target, line)
    assert (tmp_path / "target.txt").read_text() == "target"
    assert not (tmp_path / "elsewhere.json").exists()


def test_a_trace_replaces_an_existing_file_whole_and_gz_is_case_insensitive(
    capsys, scenario, tmp_path
):
    import gzip

    keep = tmp_path / "keep.json"
    keep.write_text("precious")
    assert run(capsys, "train", scenario(BASE), "--trace", keep)[0] == 0
    assert json.loads(keep.read_text())["traceEvents"]
    packed = tmp_path / "t.json.GZ"
    assert run(capsys, "train", scenario(BASE), "--trace", packed)[0] == 0
    assert json.loads(gzip.decompress(packed.read_bytes()))["traceEvents"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json", "s.toml", "t.json.GZ"]


def _subprocess(*argv, **kwargs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-m", "podsim.front.cli", *map(str, argv)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_a_write_error_leaves_the_old_trace_and_says_why(scenario, tmp_path):
    import resource

    good = tmp_path / "good.json"
    good.write_text('{"traceEvents": []}')

    def limit():  # a file size limit of 100 kB, as a full disk would stop the write
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    process = _subprocess("train", scenario(BASE), "--trace", good, preexec_fn=limit)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    expected = f"podsim: error: could not write the trace to {str(good)!r}: File too large"
    assert err.decode().strip() == expected
    assert good.read_text() == '{"traceEvents": []}'
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- 19: Ctrl-C and broken pipes ----------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_ctrl_c_prints_one_line_and_exits_130(scenario):
    # A noise Monte Carlo of ~1e9 ops (20,000 steps of 49,168, near the most one may simulate)
    # runs for many seconds: interrupt it once it runs (past Python's start-up and imports,
    # about 0.3 s of CPU).
    text = BASE.replace("global_batch = 32", "global_batch = 512")
    path = scenario(text + "\n[noise]\ncompute_cv = 0.1\nsteps = 20000\n")
    process = _subprocess("train", path, "--json")
    deadline = time.monotonic() + 30
    while _cpu_seconds(process.pid) < 0.6 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 130, err
    assert err.decode().strip().splitlines() == ["podsim: interrupted"]
    assert out == b""


def test_a_broken_pipe_exits_quietly():
    process = _subprocess("chips", "--json")
    process.stdout.close()  # nobody reads: the first write fails with EPIPE
    process.stdout = None
    _, err = process.communicate(timeout=60)
    assert err == b""
    assert process.returncode == 141
