"""Energy and cost in closed form (docs/training.md and docs/serving.md, "Energy and cost").

Power is the cluster's all-in power per device (Cluster.device_power_w: a published system
figure, or the chip's TDP times a system factor) times the data centre's PUE, drawn for the
whole time at that level: an upper bound on the average draw, since devices idle in bubbles
and exposed communication. Cost is device-hours times the price per device-hour.
"""

from typing import Any

from podsim.specs.clusters import Cluster

JOULES_PER_MWH = 3.6e9


def energy_j(power_per_device_w: float, devices: int, seconds: float, pue: float) -> float:
    """Facility energy (J) of `devices` drawing `power_per_device_w` for `seconds`."""
    return power_per_device_w * devices * seconds * pue


def cost_usd(device_hours: float, price_per_device_hour: float) -> float:
    """The price of `device_hours` at `price_per_device_hour`."""
    return device_hours * price_per_device_hour


def training_energy(
    cluster: Cluster, step_time_s: float, device_hours: float | None
) -> dict[str, Any]:
    """A training step's energy and, with device_hours (the run's), the run's energy and cost:
    power_per_device_w, pue, price_per_device_hour, energy_per_step_j, and energy_to_train_j,
    energy_to_train_mwh, cost_to_train_usd."""
    power, pue = cluster.device_power_w, cluster.pue
    out: dict[str, Any] = {
        "power_per_device_w": power,
        "pue": pue,
        "price_per_device_hour": cluster.price_per_device_hour,
        "energy_per_step_j": energy_j(power, cluster.devices, step_time_s, pue),
    }
    if device_hours is not None:
        total = energy_j(power, 1, device_hours * 3600.0, pue)
        out["energy_to_train_j"] = total
        out["energy_to_train_mwh"] = total / JOULES_PER_MWH
        out["cost_to_train_usd"] = cost_usd(device_hours, cluster.price_per_device_hour)
    return out


def per_million_tokens(cluster: Cluster, tokens_per_s_per_device: float) -> tuple[float, float]:
    """(energy in J, cost in USD) of a million tokens at `tokens_per_s_per_device` (inf when
    no token is made)."""
    if not tokens_per_s_per_device > 0:
        return float("inf"), float("inf")
    seconds = 1e6 / tokens_per_s_per_device  # device-seconds per million tokens
    energy = energy_j(cluster.device_power_w, 1, seconds, cluster.pue)
    return energy, cost_usd(seconds / 3600.0, cluster.price_per_device_hour)


def serving_energy(
    cluster: Cluster, prefill_tokens_per_s_per_device: float, decode_tokens_per_s_per_device: float
) -> dict[str, Any]:
    """Energy and cost per million tokens served: of output tokens at the decode rate
    (energy_per_million_tokens_j, cost_per_million_tokens_usd) and of prompt tokens at the
    prefill rate (prefill_...), each on the devices that make them; a rate of 0 (the phase
    did not run) gives no key."""
    out: dict[str, Any] = {
        "power_per_device_w": cluster.device_power_w,
        "pue": cluster.pue,
        "price_per_device_hour": cluster.price_per_device_hour,
    }
    if decode_tokens_per_s_per_device > 0:
        energy, cost = per_million_tokens(cluster, decode_tokens_per_s_per_device)
        out["energy_per_million_tokens_j"] = energy
        out["cost_per_million_tokens_usd"] = cost
    if prefill_tokens_per_s_per_device > 0:
        energy, cost = per_million_tokens(cluster, prefill_tokens_per_s_per_device)
        out["prefill_energy_per_million_tokens_j"] = energy
        out["prefill_cost_per_million_tokens_usd"] = cost
    return out
