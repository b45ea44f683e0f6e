"""Scenario files (TOML): a cluster, optionally a model, a training plan, a serving deployment,
noise and failures.

Top-level tables: [cluster] (required), [model], [train] (needs [model]), [serve], [stack]
(the software running [train]), [noise], [failures]. Unknown keys anywhere are errors that name
the key and list the allowed ones.
Quantities are numbers in SI base units or unit strings ("2 us", "10 min", "400 Gb/s").
"""

import re
import tomllib
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podsim.errors import SpecError, check, shown
from podsim.front.schema import SCENARIO, TABLES
from podsim.plans.stack import stack_from_table
from podsim.plans.training import Plan, plan_from_table
from podsim.specs.clusters import DEVICES, Cluster, cluster_from_table

if TYPE_CHECKING:
    from podsim.specs.models import Model

STRING_SOURCE = "<string>"


@dataclass(frozen=True)
class Scenario:
    """One scenario, every table parsed and validated; `source` is the file it came from.

    serve, noise and failures are kept as tables (noise and failures with quantities in SI
    units) until the parts of podsim that consume them define richer types.
    """

    cluster: Cluster
    model: "Model | None" = None
    train: Plan | None = None
    serve: dict[str, Any] | None = None
    noise: dict[str, Any] | None = None
    failures: dict[str, Any] | None = None
    source: str = STRING_SOURCE

    def with_devices(self, devices: int) -> "Scenario":
        """The same scenario on `devices` devices: the plan keeps tp, pp, cp and global_batch
        and takes dp = devices / (tp * pp * cp): one line per point of a scale sweep at a
        fixed global batch (strong scaling)."""
        DEVICES.check(devices, "devices")
        train = None if self.train is None else _rescaled(self.train, devices)
        noise = None if self.noise is None else noise_on(self.noise, devices)
        return replace(self, cluster=self.cluster.with_devices(devices), train=train, noise=noise)


def load_scenario(path: str | PathLike[str]) -> Scenario:
    """A scenario from a TOML file; errors name the file and the field (or line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot be read as a UTF-8 scenario file: {error}") from error
    return parse_scenario(text, source=str(path))


def parse_scenario(text: str, source: str = STRING_SOURCE) -> Scenario:
    """A scenario from TOML text; `source` names it in error messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{source}, line {_line(error)}: not valid TOML: {error}") from error
    except RecursionError:
        raise SpecError(f"{source}: not valid TOML: nested too deeply") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise SpecError(f"{source}: not valid TOML: {shown(str(error), 200)}") from None
    try:
        return _build(document, source)
    except SpecError as error:  # the field alone does not say which file it was in
        raise SpecError(f"{source}: {error}") from error


def scenario_from_document(document: dict[str, Any], source: str = STRING_SOURCE) -> Scenario:
    """A scenario from an already parsed TOML document (e.g. one edited by `--set`)."""
    try:
        return _build(document, source)
    except SpecError as error:
        raise SpecError(f"{source}: {error}") from error


def _line(error: tomllib.TOMLDecodeError) -> int | str:
    # Python 3.14 adds error.lineno; older versions only put "(at line N, column M)" in the text.
    if getattr(error, "lineno", None) is not None:
        return error.lineno
    match = re.search(r"at line (\d+)", str(error))
    return int(match.group(1)) if match else "?"


def _build(document: dict[str, Any], source: str) -> Scenario:
    unknown = sorted(set(document) - set(TABLES))
    if unknown:
        names = ", ".join(shown(k, 40) for k in unknown)
        raise SpecError(f"unknown top-level key(s) [{names}]; allowed: {list(TABLES)}")
    tables = SCENARIO.check(document, "")
    if "cluster" not in tables:
        raise SpecError("[cluster] is missing: every scenario needs a cluster")
    if "train" in tables and "model" not in tables:
        raise SpecError("[train] needs a [model] table: the plan trains a model")
    if "stack" in tables and "train" not in tables:
        raise SpecError("[stack] needs a [train] table: it says how the training plan runs")
    cluster = cluster_from_table(tables["cluster"])
    devices = cluster.devices
    noise, failures = tables.get("noise"), tables.get("failures")
    return Scenario(
        cluster=cluster,
        model=None if "model" not in tables else _model(tables["model"]),
        train=None if "train" not in tables else _plan(tables, devices),
        serve=tables.get("serve"),
        noise=None if noise is None else noise_on(noise, devices),
        failures=None if failures is None else _failures(failures),
        source=source,
    )


def _plan(tables: dict[str, Any], devices: int) -> Plan:
    """The [train] plan, run by the [stack] software (megatron-core when there is none)."""
    plan = plan_from_table(tables["train"], devices)
    if "stack" not in tables:
        return plan
    return replace(plan, stack=stack_from_table(tables["stack"]))


def _model(table: dict[str, Any]) -> "Model":
    # Imported here so that scenarios without a model never need the model catalog.
    from podsim.specs.models import model_from_table

    return model_from_table(table)


def _rescaled(plan: Plan, devices: int) -> Plan:
    split = plan.tp * plan.pp * plan.cp
    check(devices % split == 0, "devices", devices, f"a multiple of tp * pp * cp ({split})")
    return replace(plan, dp=devices // split)


def noise_on(noise: dict[str, Any], devices: int) -> dict[str, Any]:
    """A checked [noise] table (SI units) for a cluster of `devices`: its straggler ranks must
    be ranks of that cluster (checked again whenever the cluster is resized)."""
    noise = TABLES["noise"].check(noise, "noise")
    ranks = noise.get("straggler_ranks")
    if ranks is not None:
        check(
            all(r < devices for r in ranks),
            "noise.straggler_ranks",
            list(ranks),
            f"ranks of the cluster of {devices} devices, in [0, {devices - 1}]",
        )
        noise["straggler_ranks"] = tuple(sorted(set(ranks)))
    median, p99 = noise.get("link_latency_median"), noise.get("link_latency_p99")
    if median is not None and p99 is not None:
        check(p99 >= median, "noise.link_latency_p99", p99, f">= link_latency_median ({median})")
    return noise


def _failures(failures: dict[str, Any]) -> dict[str, Any]:
    # Two spellings of one rate: accepting both would leave it unclear which one wins.
    if "device_mtbf" in failures and "failure_rate_per_device_day" in failures:
        raise SpecError("failures: give device_mtbf or failure_rate_per_device_day, not both")
    return failures
