"""The same scenario on another chip, changing only what the chip brings (`podsim compare`).

What moves with the chip: its compute peaks, kernel efficiencies, memory (capacity and
bandwidth) and its own scale-up links (bandwidth and latency per device, and their wiring: a
switch unless the chip stays the same on the same domain). What is kept: the
device count, the scale-up domain size, pods, the scale-out fabric (bandwidth, latency,
oversubscription) and every efficiency of the cluster table, unless the chip cannot do it: a
domain larger than the chip's own scale-up domain shrinks to it. The plan keeps its precision
when the chip has a dense peak for it, else falls back to BF16 (every chip has one). Each
change is reported as one line ("scale-up 450 -> 200 GB/s").
"""

from dataclasses import dataclass, replace

from podsim.front.scenario import Scenario
from podsim.specs.chips import Chip, get_chip
from podsim.specs.clusters import Cluster, make_cluster

FALLBACK_PRECISION = "bf16"


@dataclass(frozen=True)
class ChipSwap:
    """A scenario moved onto another chip, with what changed (lines for people) and the
    precision the plan runs at (`precision_fallback`: the scenario's was not supported)."""

    scenario: Scenario
    changes: tuple[str, ...]
    precision: str | None
    precision_fallback: bool


def _gbs(value: float) -> str:
    return f"{value / 1e9:,.0f} GB/s"


def _us(value: float) -> str:
    return f"{value * 1e6:,.2g} us"


def _pod(old: Cluster, domain: int) -> int:
    """The old pod size if it is still whole domains, else one pod of the whole cluster."""
    if old.pod_size % domain == 0:
        return old.pod_size
    return -(-old.devices // domain) * domain


def _wiring(old: Cluster, chip_id: str, domain: int, changes: list[str]) -> dict:
    """The scale-up wiring (switch, full mesh, torus) is the chip's system's: the same chip on
    the same domain keeps it, another chip brings its own (a switch)."""
    if old.scale_up_topology == "switch":
        return {}
    if chip_id == old.chip.id and domain == old.domain_size:
        wiring = {
            "scale_up_topology": old.scale_up_topology,
            "scale_up_link_bandwidth": old.scale_up_link_bandwidth,
            "torus_dims": old.torus_dims,
        }
        return {k: v for k, v in wiring.items() if v is not None}
    changes.append(f"scale-up {old.scale_up_topology} -> switch ({chip_id}'s own links)")
    return {}


def _reduction(old: Cluster, chip_id: str, domain: int, changes: list[str]) -> dict:
    """In-switch reduction (NVLS) belongs to the chip's system like its wiring: the same chip on
    the same domain keeps it, another chip's switch is taken not to reduce."""
    if not old.in_network_reduction:
        return {}
    if chip_id == old.chip.id and domain == old.domain_size:
        return {
            "in_network_reduction": True,
            "nvls_efficiency": old.nvls_efficiency,
            "nvls_latency": old.nvls_latency,
        }
    changes.append(f"in-switch reduction off ({chip_id}'s own scale-up)")
    return {}


def _protocol(old: Cluster, chip: Chip, changes: list[str]) -> dict:
    """The rings' protocol belongs to the collective library: a chip of the same vendor keeps
    it, another vendor's runs its own library, modelled as simple (docs/engine.md)."""
    if old.protocol == "simple":
        return {}
    if chip.vendor == old.chip.vendor:
        return {"protocol": old.protocol}
    changes.append(f"protocol {old.protocol} -> simple ({chip.id}'s own collective library)")
    return {}


def swap_chip(scenario: Scenario, chip_id: str) -> ChipSwap:
    """`scenario` on `chip_id`, keeping the fabric (see the module docstring)."""
    chip = get_chip(chip_id)
    old = scenario.cluster
    changes = [f"chip {old.chip.id} -> {chip.id}"] if old.chip.id != chip.id else []
    domain = old.domain_size
    if domain > chip.domain_size:
        changes.append(f"scale-up domain {domain} -> {chip.domain_size} ({chip.id}'s largest)")
        domain = chip.domain_size
    kept = {
        "domain_size": domain,
        "pod_size": _pod(old, domain),
        "scale_out_bandwidth": old.scale_out_bandwidth,
        "scale_out_latency": old.scale_out_latency,
        "oversubscription": old.oversubscription,
        "launch_latency": old.launch_latency,
        "scale_up_efficiency": old.scale_up_efficiency,
        "scale_out_efficiency": old.scale_out_efficiency,
        "message_overhead": old.message_overhead,
        "nic_message_rate": old.nic_message_rate,
        "forward_efficiency": old.forward_efficiency,
    }
    if old.name:
        kept["name"] = old.name
    kept.update(_wiring(old, chip.id, domain, changes))
    kept.update(_reduction(old, chip.id, domain, changes))
    kept.update(_protocol(old, chip, changes))
    cluster = make_cluster(chip, old.devices, **kept)
    if cluster.scale_up_bandwidth != old.scale_up_bandwidth:
        changes.append(
            f"scale-up {_gbs(old.scale_up_bandwidth)} -> {_gbs(cluster.scale_up_bandwidth)}"
        )
    if cluster.scale_up_latency != old.scale_up_latency:
        changes.append(
            f"scale-up latency {_us(old.scale_up_latency)} -> {_us(cluster.scale_up_latency)}"
        )
    if chip.hbm_bytes != old.chip.hbm_bytes:
        changes.append(f"HBM {old.chip.hbm_bytes / 1e9:,.0f} -> {chip.hbm_bytes / 1e9:,.0f} GB")
    plan, precision, fallback = scenario.train, None, False
    if plan is not None:
        precision = plan.precision
        if precision not in chip.peak_flops:
            changes.append(
                f"precision {precision} -> {FALLBACK_PRECISION} ({chip.id} has no {precision} peak)"
            )
            precision, fallback = FALLBACK_PRECISION, True
            plan = replace(plan, precision=precision)
    moved = replace(scenario, cluster=cluster, train=plan)
    return ChipSwap(moved, tuple(changes), precision, fallback)
