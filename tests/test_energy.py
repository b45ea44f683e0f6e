"""Energy and cost (podsim.costs.energy): closed forms, the result keys and properties."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import podsim.front.api as api
from podsim.costs.energy import (
    JOULES_PER_MWH,
    cost_usd,
    energy_j,
    per_million_tokens,
    serving_energy,
    training_energy,
)
from podsim.errors import SpecError
from podsim.specs.clusters import (
    DEFAULT_PRICE_PER_DEVICE_HOUR,
    DEFAULT_PUE,
    DEFAULT_SYSTEM_POWER_FACTOR,
    cluster_from_table,
    make_cluster,
    preset_cluster,
)


def test_default_power_is_tdp_times_the_system_factor():
    cluster = make_cluster("h800-sxm", 16)
    assert cluster.device_power_w == pytest.approx(700 * DEFAULT_SYSTEM_POWER_FACTOR)
    assert cluster.pue == DEFAULT_PUE
    assert cluster.price_per_device_hour == DEFAULT_PRICE_PER_DEVICE_HOUR


def test_presets_with_published_system_power():
    assert preset_cluster("cloudmatrix384").device_power_w == pytest.approx(559e3 / 384, rel=1e-3)
    assert preset_cluster("gb200-nvl72").device_power_w == pytest.approx(145e3 / 72, rel=1e-3)


def test_training_closed_form():
    cluster = cluster_from_table(
        {
            "chip": "h100-sxm",
            "devices": 64,
            "power_per_device_w": 1000.0,
            "pue": 1.5,
            "price_per_device_hour": 3.0,
        }
    )
    out = training_energy(cluster, step_time_s=2.0, device_hours=1000.0)
    assert out["energy_per_step_j"] == pytest.approx(1000 * 64 * 2.0 * 1.5)
    assert out["energy_to_train_j"] == pytest.approx(1000 * 1000 * 3600 * 1.5)
    assert out["energy_to_train_mwh"] == pytest.approx(out["energy_to_train_j"] / JOULES_PER_MWH)
    assert out["cost_to_train_usd"] == pytest.approx(3000.0)
    assert "cost_to_train_usd" not in training_energy(cluster, 2.0, None)


def test_serving_closed_form():
    cluster = make_cluster("h800-sxm", 8, power_per_device_w=1200, pue=1.25)
    out = serving_energy(cluster, 10_000.0, 2_000.0)
    assert out["energy_per_million_tokens_j"] == pytest.approx(1200 * 1.25 * 1e6 / 2000)
    assert out["cost_per_million_tokens_usd"] == pytest.approx(2.0 * 1e6 / 2000 / 3600)
    assert out["prefill_energy_per_million_tokens_j"] == pytest.approx(1200 * 1.25 * 100)
    assert "prefill_cost_per_million_tokens_usd" in out
    assert "energy_per_million_tokens_j" not in serving_energy(cluster, 10_000.0, 0.0)
    assert per_million_tokens(cluster, 0.0) == (math.inf, math.inf)


@pytest.mark.parametrize(
    "key, value", [("pue", 0.9), ("power_per_device_w", 0.0), ("price_per_device_hour", -1.0)]
)
def test_bounds(key, value):
    with pytest.raises(SpecError, match=key):
        cluster_from_table({"chip": "h100-sxm", "devices": 8, key: value})


@given(st.floats(0.0, 1e3), st.floats(0.0, 1e3), st.floats(0.0, 1e9), st.integers(1, 10**5))
def test_a_higher_price_never_lowers_the_cost(price, extra, hours, devices):
    assert cost_usd(hours, price + extra) >= cost_usd(hours, price)


@given(st.integers(1, 10**6), st.integers(1, 10**6), st.floats(1e-6, 1e4), st.floats(1.0, 3.0))
def test_more_devices_at_the_same_step_time_raise_energy(a, b, step, pue):
    small, large = sorted((a, b))
    power = 1000.0
    assert energy_j(power, large, step, pue) >= energy_j(power, small, step, pue)
    if large > small:
        assert energy_j(power, large, step, pue) > energy_j(power, small, step, pue)


def test_train_result_keys():
    result = api.train("deepseek-v3-h800").to_dict()
    for key in (
        "power_per_device_w",
        "energy_per_step_j",
        "energy_to_train_j",
        "energy_to_train_mwh",
        "cost_to_train_usd",
    ):
        assert math.isfinite(result[key]) and result[key] > 0, key
    cluster = api.resolve_scenario("deepseek-v3-h800").cluster
    assert result["energy_per_step_j"] == pytest.approx(
        cluster.device_power_w * cluster.devices * result["step_time_s"] * cluster.pue
    )
    assert result["cost_to_train_usd"] == pytest.approx(
        result["device_hours"] * cluster.price_per_device_hour
    )


def test_serve_result_keys():
    result = api.serve("deepseek-r1-decode-h800").to_dict()
    for key in ("power_per_device_w", "energy_per_million_tokens_j", "cost_per_million_tokens_usd"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    tps = result["decode_tokens_per_s_per_device"]
    assert result["cost_per_million_tokens_usd"] == pytest.approx(2.0 * 1e6 / tps / 3600)
