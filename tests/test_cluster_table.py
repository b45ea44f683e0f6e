"""[cluster] tables of scenario files: catalog chips, presets and users' own chips."""

import tomllib

import pytest

from podsim import SpecError
from podsim.specs.clusters import cluster_from_table

OWN_CHIP = """
[cluster]
devices = 64
domain_size = 16
scale_out_latency = "8 us"
oversubscription = 2

[cluster.chip]
id = "my-npu"
name = "a user's own accelerator"
vendor = "me"
peak_flops = { bf16 = "500 TFLOP/s", int8 = "1 POP/s" }
hbm_bytes = "96 GB"
hbm_bandwidth = "2 TB/s"
scale_up_bandwidth = "300 GB/s"
scale_up_latency = "1.5 us"
domain_size = 16
scale_out_bandwidth = "200 Gb/s"
scale_out_latency = "6 us"
tdp_watts = 500
"""


def test_a_users_own_chip_in_a_scenario_file():
    cluster = cluster_from_table(tomllib.loads(OWN_CHIP)["cluster"])
    assert cluster.chip.id == "my-npu"
    assert cluster.chip.peak("int8") == 1e15
    assert cluster.devices == 64 and cluster.domain_size == 16
    assert cluster.scale_out_bandwidth == 25e9  # 200 Gb/s from the chip
    assert cluster.scale_out_latency == 8e-6  # the cluster's override wins
    assert cluster.oversubscription == 2


def test_catalog_chip_and_preset():
    assert cluster_from_table({"chip": "a100-sxm-80gb", "devices": 64}).chip.hbm_bytes == 80e9
    preset = cluster_from_table({"preset": "cloudmatrix384", "devices": 768})
    assert preset.domain_size == 384 and preset.domains == 2


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"chip": "h100-sxm"}, "cluster.devices is missing"),
        ({"devices": 8}, "cluster.chip is missing"),
        ({"chip": "h100-sxm", "preset": "dgx-h100", "devices": 8}, "not both"),
        ({"chip": "h100-sxm", "devices": 8, "nics": 8}, "unknown key"),
        ({"chip": {"id": "x", "name": "x"}, "devices": 8}, "missing key"),
    ],
)
def test_bad_tables_name_the_field(table, match):
    with pytest.raises(SpecError, match=match):
        cluster_from_table(table)
