"""The shipped chip catalog and cluster presets: they load, every value is sourced, spot
values match the public figures, and bad inputs fail with a SpecError naming the field."""

import math

import pytest

from podsim.errors import SpecError
from podsim.specs.chips import Chip, catalog, chip_from_dict, get_chip
from podsim.specs.clusters import make_cluster, preset_cluster, presets

NUMERIC_FIELDS = (
    "peak_flops",
    "hbm_bytes",
    "hbm_bandwidth",
    "scale_up_bandwidth",
    "scale_up_latency",
    "domain_size",
    "scale_out_bandwidth",
    "scale_out_latency",
    "tdp_watts",
)

REQUIRED_CHIPS = (
    "a100-sxm-80gb",
    "h100-sxm",
    "h800-sxm",
    "h20",
    "h200-sxm",
    "b200",
    "gb200",
    "mi300x",
    "tpu-v5p",
    "ascend-910b",
    "ascend-910c",
)

REQUIRED_PRESETS = (
    "dgx-a100",
    "dgx-h100",
    "hgx-h800",
    "hgx-h100-roce",
    "gb200-nvl72",
    "atlas-800t-a2",
    "cloudmatrix384",
)

CHIP_IDS = sorted(catalog())
PRESET_IDS = sorted(presets())


def _valid_table(**changes):
    """A complete chip table in TOML style, with some keys changed or added."""
    table = {
        "name": "Test chip",
        "vendor": "Test",
        "peak_flops": {"bf16": "100 TFLOP/s"},
        "hbm_bytes": "16 GB",
        "hbm_bandwidth": "1 TB/s",
        "scale_up_bandwidth": "100 GB/s",
        "scale_up_latency": "2 us",
        "domain_size": 8,
        "scale_out_bandwidth": "100 Gb/s",
        "scale_out_latency": "5 us",
        "tdp_watts": 300,
    }
    table.update(changes)
    return table


# --- the catalog -----------------------------------------------------------------------


def test_catalog_has_the_required_chips():
    missing = sorted(set(REQUIRED_CHIPS) - set(catalog()))
    assert not missing, f"catalog lacks {missing}"


@pytest.mark.parametrize("chip_id", CHIP_IDS)
def test_chip_loads_with_consistent_fields(chip_id):
    chip = catalog()[chip_id]
    assert isinstance(chip, Chip)
    assert chip.id == chip_id
    assert chip.name and chip.vendor
    assert {"bf16", "fp16"} <= set(chip.peak_flops), "bf16 and fp16 peaks are required"
    # Catalog plausibility: accelerators of this era lie in these ranges (SI units).
    assert 1e14 <= chip.peak("bf16") <= 1e16
    assert 1e10 <= chip.hbm_bytes <= 1e12
    assert 1e12 <= chip.hbm_bandwidth <= 2e13
    assert 1e-7 <= chip.scale_up_latency <= 1e-4
    assert 1e-7 <= chip.scale_out_latency <= 1e-4
    assert 100 <= chip.tdp_watts <= 2000
    # Per direction, the scale-up fabric is faster than the NIC, and the NIC is at most
    # 800 Gb/s (100 GB/s).
    assert chip.scale_out_bandwidth < chip.scale_up_bandwidth
    assert chip.scale_out_bandwidth <= 100e9
    # fp8 and int8 run at 1x to 2x the bf16 rate (datasheet rounding allows 0.2%).
    for precision in ("fp8", "int8"):
        if precision in chip.peak_flops:
            ratio = chip.peak(precision) / chip.peak("bf16")
            assert 1.0 <= ratio <= 2.0 * 1.002, (precision, ratio)
    assert all(0 < e <= 1 for e in chip.kernel_efficiency.values())
    if chip.kernel_efficiency:  # calibrated values say so in their source
        assert "CALIBRATED" in chip.sources["kernel_efficiency"]


@pytest.mark.parametrize("chip_id", CHIP_IDS)
def test_every_numeric_field_has_a_source(chip_id):
    chip = catalog()[chip_id]
    for name in NUMERIC_FIELDS:
        source = chip.sources.get(name)
        assert isinstance(source, str) and len(source.strip()) >= 10, (
            f"{chip_id}: no source for {name}"
        )
    assert set(chip.sources) <= set(Chip.__dataclass_fields__), "source for an unknown field"


@pytest.mark.parametrize("chip_id", CHIP_IDS)
def test_notes_name_the_estimates(chip_id):
    chip = catalog()[chip_id]
    assert len(chip.notes) >= 80
    estimated = [k for k, v in chip.sources.items() if "ESTIMATE" in v or "ASSUM" in v]
    if estimated:
        assert "ESTIMATE" in chip.notes.upper() or "ASSUM" in chip.notes.upper(), (
            f"{chip_id}: sources mark {estimated} as estimates but notes do not say so"
        )


def test_h100_spot_values():
    h100 = catalog()["h100-sxm"]
    assert h100.peak("bf16") == pytest.approx(989e12, rel=0.01)
    assert h100.peak("fp16") == pytest.approx(h100.peak("bf16"))
    assert h100.peak("fp8") == pytest.approx(2 * h100.peak("bf16"), rel=0.002)
    assert h100.scale_up_bandwidth == pytest.approx(450e9)  # 900 GB/s bidirectional
    assert h100.scale_out_bandwidth == pytest.approx(50e9)  # 400 Gb/s
    assert h100.hbm_bandwidth == pytest.approx(3.35e12)
    assert h100.domain_size == 8


def test_h800_is_h100_with_cut_nvlink():
    h800, h100 = catalog()["h800-sxm"], catalog()["h100-sxm"]
    assert h800.scale_up_bandwidth == pytest.approx(200e9)
    assert h800.peak("bf16") == pytest.approx(h100.peak("bf16"))
    assert h800.scale_up_latency == pytest.approx(3.33e-6)
    assert h800.scale_out_latency == pytest.approx(3.7e-6)


def test_a100_spot_values():
    a100 = catalog()["a100-sxm-80gb"]
    assert a100.hbm_bandwidth == pytest.approx(2.039e12)
    assert a100.peak("bf16") == pytest.approx(312e12)
    assert a100.peak("int8") == pytest.approx(624e12)
    assert "fp8" not in a100.peak_flops  # Ampere has no FP8
    assert a100.scale_out_bandwidth == pytest.approx(25e9)  # 200 Gb/s HDR


def test_other_spot_values():
    chips = catalog()
    assert chips["h200-sxm"].hbm_bytes == pytest.approx(141e9)
    assert chips["gb200"].domain_size == 72
    assert chips["gb200"].scale_up_bandwidth == pytest.approx(900e9)
    assert chips["b200"].hbm_bytes == pytest.approx(180e9)
    assert chips["mi300x"].peak("bf16") == pytest.approx(1307.4e12)
    assert chips["tpu-v5p"].scale_up_bandwidth == pytest.approx(600e9)
    assert chips["ascend-910c"].domain_size == 384
    assert chips["ascend-910c"].peak("bf16") == pytest.approx(2 * chips["ascend-910b"].peak("bf16"))
    assert "fp8" not in chips["ascend-910c"].peak_flops  # no native FP8


def test_the_chips_added_with_scale_up_topologies():
    # Datasheet figures (chips.toml sources): dense peaks, memory, per-direction scale-up.
    chips = catalog()
    gb300, mi325x, mi355x = chips["gb300"], chips["mi325x"], chips["mi355x"]
    tpu_v4, nvl = chips["tpu-v4"], chips["h100-nvl"]
    assert gb300.peak("fp4") == pytest.approx(1080e15 / 72) and gb300.domain_size == 72
    assert gb300.scale_out_bandwidth == pytest.approx(100e9)  # ConnectX-8, 800 Gb/s
    assert mi325x.peak("bf16") == chips["mi300x"].peak("bf16") and mi325x.hbm_bytes == 256e9
    assert mi355x.peak("fp8") == pytest.approx(5033.2e12) and mi355x.tdp_watts == 1400
    assert mi355x.scale_up_bandwidth == pytest.approx(7 * 153.6e9 / 2)
    assert tpu_v4.hbm_bytes == 32 * 2**30 and tpu_v4.peak("bf16") == 275e12
    assert nvl.peak("bf16") == pytest.approx(1671e12 / 2) and nvl.domain_size == 2
    # The 910C is two dies; every other chip one.
    assert chips["ascend-910c"].dies == 2 and chips["ascend-910c"].die_link_bandwidth > 0
    assert all(c.dies == 1 for cid, c in chips.items() if cid != "ascend-910c")


def test_get_chip_by_id_and_by_table():
    assert get_chip("h100-sxm") is catalog()["h100-sxm"]
    custom = get_chip({"id": "mine", **_valid_table()})
    assert custom.id == "mine"
    assert custom.scale_out_bandwidth == pytest.approx(12.5e9)


# --- the presets -----------------------------------------------------------------------


def test_presets_include_the_required_ones():
    missing = sorted(set(REQUIRED_PRESETS) - set(presets()))
    assert not missing, f"presets lack {missing}"


@pytest.mark.parametrize("preset_id", PRESET_IDS)
def test_preset_builds(preset_id):
    table = presets()[preset_id]
    assert table["chip"] in catalog()
    assert len(table["description"]) >= 40
    assert isinstance(table["sources"], dict) and table["sources"]
    cluster = preset_cluster(preset_id)
    assert cluster.name == preset_id
    assert cluster.chip.id == table["chip"]
    assert cluster.devices == table["devices"]
    assert cluster.pod_size % cluster.domain_size == 0
    assert cluster.oversubscription >= 1
    assert cluster.scale_out_bandwidth < cluster.scale_up_bandwidth


@pytest.mark.parametrize("preset_id", PRESET_IDS)
def test_preset_overrides_are_sourced(preset_id):
    table = presets()[preset_id]
    overrides = set(table) - {"chip", "devices", "description", "sources"}
    unsourced = sorted(overrides - set(table["sources"]))
    assert not unsourced, f"{preset_id}: no source for {unsourced}"


@pytest.mark.parametrize("preset_id", PRESET_IDS)
def test_preset_resizes(preset_id):
    big = preset_cluster(preset_id, devices=presets()[preset_id]["devices"] * 4)
    assert big.pod_size % big.domain_size == 0
    assert big.domains == -(-big.devices // big.domain_size)


def test_cloudmatrix384_is_one_ub_domain():
    cluster = preset_cluster("cloudmatrix384")
    assert cluster.chip.id == "ascend-910c"
    assert cluster.devices == 384
    assert cluster.domain_size == 384
    assert cluster.domains == 1
    assert cluster.scale_up_bandwidth == pytest.approx(392e9)


def test_llama3_roce_pods():
    cluster = preset_cluster("hgx-h100-roce", devices=16384)
    assert cluster.pod_size == 3072
    assert cluster.oversubscription == 7
    assert cluster.scale_out_bandwidth == pytest.approx(50e9)
    assert cluster.scale_out_latency == pytest.approx(5.6e-6)


def test_gb200_nvl72_domain():
    cluster = preset_cluster("gb200-nvl72")
    assert cluster.devices == cluster.domain_size == 72


def test_hgx_h800_matches_deepseek():
    cluster = preset_cluster("hgx-h800", devices=2048)
    assert cluster.scale_up_bandwidth == pytest.approx(200e9)
    assert cluster.scale_out_bandwidth == pytest.approx(50e9)
    assert cluster.domains == 256


def test_preset_override_wins():
    cluster = preset_cluster("dgx-h100", devices=16, scale_out_bandwidth="200 Gb/s")
    assert cluster.scale_out_bandwidth == pytest.approx(25e9)
    assert cluster.devices == 16


# --- bad inputs ------------------------------------------------------------------------


def test_unknown_chip_id():
    with pytest.raises(SpecError, match="chip") as info:
        get_chip("h9000")
    assert "h9000" in str(info.value)
    with pytest.raises(SpecError, match="h9000"):
        make_cluster("h9000", 8)


def test_unknown_chip_key():
    with pytest.raises(SpecError, match="tdp_wats"):
        chip_from_dict("typo", _valid_table(tdp_wats=300))


def test_missing_chip_key():
    table = _valid_table()
    del table["hbm_bandwidth"]
    with pytest.raises(SpecError, match="hbm_bandwidth"):
        chip_from_dict("incomplete", table)


@pytest.mark.parametrize("field", ["hbm_bandwidth", "scale_up_bandwidth", "scale_out_bandwidth"])
def test_negative_chip_bandwidth(field):
    with pytest.raises(SpecError, match=field):
        chip_from_dict("neg", _valid_table(**{field: "-100 GB/s"}))


def test_negative_peak_flops():
    with pytest.raises(SpecError, match="peak_flops"):
        chip_from_dict("neg", _valid_table(peak_flops={"bf16": "-1 TFLOP/s"}))


def test_bad_unit():
    with pytest.raises(SpecError, match="hbm_bytes"):
        chip_from_dict("unit", _valid_table(hbm_bytes="80 parsecs"))


def test_negative_cluster_bandwidth():
    with pytest.raises(SpecError, match="scale_out_bandwidth"):
        make_cluster("h100-sxm", 16, scale_out_bandwidth="-400 Gb/s")
    with pytest.raises(SpecError, match="scale_up_bandwidth"):
        preset_cluster("dgx-h100", scale_up_bandwidth=-1.0)


@pytest.mark.parametrize("devices", [0, -8])
def test_bad_device_count(devices):
    with pytest.raises(SpecError, match="devices"):
        make_cluster("h100-sxm", devices)


def test_pod_size_not_multiple_of_domain():
    with pytest.raises(SpecError, match="pod_size"):
        make_cluster("h100-sxm", 64, pod_size=12)
    with pytest.raises(SpecError, match="pod_size"):
        preset_cluster("gb200-nvl72", devices=144, pod_size=100)


def test_oversubscription_below_one():
    with pytest.raises(SpecError, match="oversubscription"):
        make_cluster("h100-sxm", 64, oversubscription=0.5)


def test_unknown_cluster_override():
    with pytest.raises(SpecError, match="nic_speed"):
        make_cluster("h100-sxm", 8, nic_speed="400 Gb/s")
    with pytest.raises(SpecError, match="nic_speed"):
        preset_cluster("dgx-h100", nic_speed="400 Gb/s")


def test_unknown_preset():
    with pytest.raises(SpecError, match="dgx-z100"):
        preset_cluster("dgx-z100")


def test_catalog_values_are_finite():
    for chip in catalog().values():
        for name in NUMERIC_FIELDS:
            value = getattr(chip, name)
            values = value.values() if name == "peak_flops" else [value]
            assert all(math.isfinite(v) and v > 0 for v in values), (chip.id, name)
