"""Where kernel efficiencies come from, in every training result and in `podsim compare`."""

from dataclasses import replace
from types import MappingProxyType

from podsim.costs.kernels import DEFAULT_EFFICIENCY, KernelModel, provenance_summary
from podsim.front.cli import main
from podsim.specs.chips import get_chip


def test_calibrated_entries_only_where_the_catalog_fitted_them():
    h800 = get_chip("h800-sxm")
    fp8 = KernelModel(h800, "fp8").provenance()
    assert fp8 == {
        "gemm": "calibrated",
        "grouped_gemm": "calibrated",
        "attention": "default",
        "memory": "default",
    }
    assert set(KernelModel(h800, "bf16").provenance().values()) == {"default"}
    assert set(KernelModel(get_chip("a100-sxm-80gb"), "bf16").provenance().values()) == {
        "calibrated",
        "default",
    }  # gemm, attention and memory fitted; grouped GEMMs never ran on those rows
    assert set(KernelModel(get_chip("ascend-910b"), "bf16").provenance().values()) == {"default"}


def test_an_entry_without_a_calibrated_source_is_an_estimate():
    chip = replace(
        get_chip("ascend-910b"),
        kernel_efficiency=MappingProxyType({"gemm": 0.6}),
        sources=MappingProxyType({"kernel_efficiency": "vendor GEMM benchmark"}),
    )
    model = KernelModel(chip, "bf16")
    assert model.provenance()["gemm"] == "estimated" and model.efficiency("gemm") == 0.6
    assert model.efficiency("attention") == DEFAULT_EFFICIENCY["attention"]


def test_summary_names_every_kind():
    assert provenance_summary({"gemm": "default", "memory": "default"}) == "default"
    assert (
        provenance_summary({"gemm": "calibrated", "attention": "default", "memory": "estimated"})
        == "calibrated gemm; estimated memory; default attention"
    )


def test_results_and_compare_say_it(capsys):
    assert main(["compare", "deepseek-v3-h800", "--chips", "h800-sxm,ascend-910b"]) == 0
    out = capsys.readouterr().out
    assert "h800-sxm: calibrated gemm, grouped_gemm; default attention, memory" in out
    assert "ascend-910b: default" in out and "not measured on that chip" in out
