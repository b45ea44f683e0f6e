"""Scenario files (TOML): a cluster, optionally a model, a training plan, a serving deployment,
noise and failures.

Top-level tables: [cluster] (required), [model], [train] (needs [model]), [serve], [noise],
[failures]. Unknown keys anywhere are errors that name the key and list the allowed ones.
Quantities are numbers in SI base units or unit strings ("2 us", "10 min", "400 Gb/s").
"""

import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podsim.errors import SpecError, check
from podsim.plans.training import Plan, plan_from_table
from podsim.specs.clusters import Cluster, cluster_from_table
from podsim.units import parse_time

if TYPE_CHECKING:
    from podsim.specs.models import Model

TABLES = ("cluster", "model", "train", "serve", "noise", "failures")
STRING_SOURCE = "<string>"

# A validator takes the field's full name, its raw value and the cluster's device count, and
# returns the value in SI units (or raises SpecError naming the field).
Validator = Callable[[str, Any, int], Any]


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
        _check_int("devices", devices, 1)
        train = None if self.train is None else _rescaled(self.train, devices)
        noise = None if self.noise is None else _noise(self.noise, devices)
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
    try:
        return _build(document, source)
    except SpecError as error:  # the field alone does not say which file it was in
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
        raise SpecError(f"unknown top-level key(s) {unknown}; allowed: {list(TABLES)}")
    tables = {name: _table(name, document.get(name)) for name in TABLES}
    if tables["cluster"] is None:
        raise SpecError("[cluster] is missing: every scenario needs a cluster")
    if tables["train"] is not None and tables["model"] is None:
        raise SpecError("[train] needs a [model] table: the plan trains a model")
    cluster = cluster_from_table(tables["cluster"])
    devices = cluster.devices
    return Scenario(
        cluster=cluster,
        model=None if tables["model"] is None else _model(tables["model"]),
        train=None if tables["train"] is None else plan_from_table(tables["train"], devices),
        serve=tables["serve"],
        noise=None if tables["noise"] is None else _noise(tables["noise"], devices),
        failures=None if tables["failures"] is None else _failures(tables["failures"], devices),
        source=source,
    )


def _table(name: str, value: object) -> dict[str, Any] | None:
    # `train = 3` at the top level parses fine as TOML but is not a table.
    if value is not None and not isinstance(value, dict):
        raise SpecError(f"{name} = {value!r} is not allowed: a table, written [{name}]")
    return value


def _model(table: dict[str, Any]) -> "Model":
    # Imported here so that scenarios without a model never need the model catalog.
    from podsim.specs.models import model_from_table

    return model_from_table(table)


def _rescaled(plan: Plan, devices: int) -> Plan:
    split = plan.tp * plan.pp * plan.cp
    check(devices % split == 0, "devices", devices, f"a multiple of tp * pp * cp ({split})")
    return replace(plan, dp=devices // split)


# --- [noise] and [failures] ------------------------------------------------------------------


def _validated(
    name: str, table: dict[str, Any], keys: dict[str, Validator], devices: int
) -> dict[str, Any]:
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise SpecError(f"{name}: unknown key(s) {unknown}; allowed: {sorted(keys)}")
    return {key: keys[key](f"{name}.{key}", value, devices) for key, value in table.items()}


def _noise(table: dict[str, Any], devices: int) -> dict[str, Any]:
    noise = _validated("noise", table, NOISE_KEYS, devices)
    median, p99 = noise.get("link_latency_median"), noise.get("link_latency_p99")
    if median is not None and p99 is not None:
        check(p99 >= median, "noise.link_latency_p99", p99, f">= link_latency_median ({median})")
    return noise


def _failures(table: dict[str, Any], devices: int) -> dict[str, Any]:
    failures = _validated("failures", table, FAILURE_KEYS, devices)
    # Two spellings of one rate: accepting both would leave it unclear which one wins.
    if "device_mtbf" in failures and "failure_rate_per_device_day" in failures:
        raise SpecError("failures: give device_mtbf or failure_rate_per_device_day, not both")
    return failures


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(field: str, value: object, low: int) -> None:
    check(_is_int(value) and value >= low, field, value, f"an integer >= {low}")


def _number(field: str, value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    check(ok and math.isfinite(value), field, value, "a finite number")
    return float(value)


def _int_at_least(low: int) -> Validator:
    def validate(field: str, value: object, devices: int) -> int:
        _check_int(field, value, low)
        return value

    return validate


def _number_at_least(low: float) -> Validator:
    def validate(field: str, value: object, devices: int) -> float:
        number = _number(field, value)
        check(number >= low, field, value, f"a number >= {low:g}")
        return number

    return validate


def _fraction(field: str, value: object, devices: int) -> float:
    number = _number(field, value)
    check(0 <= number <= 1, field, value, "a fraction in [0, 1]")
    return number


def _time(positive: bool) -> Validator:
    def validate(field: str, value: object, devices: int) -> float:
        seconds = parse_time(field, value)
        ok = seconds > 0 if positive else seconds >= 0
        check(ok, field, value, "a time > 0" if positive else "a time >= 0")
        return seconds

    return validate


def _interval(field: str, value: object, devices: int) -> float | str:
    # "auto" asks for the Young/Daly optimum, computed where the failure rates are known.
    if value == "auto":
        return value
    return _time(positive=True)(field, value, devices)


def _ranks(field: str, value: object, devices: int) -> tuple[int, ...]:
    # A tuple comes back in when with_devices re-checks the ranks against a new device count.
    ok = isinstance(value, list | tuple) and all(_is_int(r) and 0 <= r < devices for r in value)
    check(ok, field, value, f"a list of ranks in [0, {devices - 1}]")
    return tuple(sorted(set(value)))


def _flag(field: str, value: object, devices: int) -> bool:
    check(isinstance(value, bool), field, value, "true or false")
    return value


NOISE_KEYS: dict[str, Validator] = {
    "seed": _int_at_least(0),
    "compute_cv": _number_at_least(0.0),
    "link_latency_p99": _time(positive=False),
    "link_latency_median": _time(positive=False),
    "straggler_fraction": _fraction,
    "straggler_ranks": _ranks,
    "straggler_slowdown": _number_at_least(1.0),
    "straggler_probability": _fraction,
    "steps": _int_at_least(1),
}

FAILURE_KEYS: dict[str, Validator] = {
    "device_mtbf": _time(positive=True),
    "link_mtbf": _time(positive=True),
    "failure_rate_per_device_day": _number_at_least(0.0),
    "checkpoint_interval": _interval,
    "checkpoint_write": _time(positive=False),
    "checkpoint_async": _flag,
    "restart": _time(positive=False),
    "spares": _int_at_least(0),
    "deadline": _time(positive=True),
    "runs": _int_at_least(1),
    "seed": _int_at_least(0),
}
