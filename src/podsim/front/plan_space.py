"""The plans a search considers (`podsim search`): every combination of some [train] keys'
values, each checked by the same rules as a scenario's plan, and what was pruned for what
reason.

Searched keys and their default values (each default also holds the scenario's own value, so
the scenario's plan is always a candidate): tp: the divisors of the scale-up domain size; pp:
powers of two up to the model's layers; cp: 1; ep: 1 for a dense model, the powers of two that
divide the experts for an MoE one; etp: 1 and tp (MoE only); micro_batch: 1, 2, 4; zero: 0, 1;
recompute: none, selective, full; schedule: 1f1b, interleaved (virtual_stages 2 to 8, each a
candidate of its own), dualpipe. dp is what is left: devices / (tp x pp x cp); the devices, the
global batch and every other key stay the scenario's. `space` replaces a key's values and `fix`
holds a key at one value.
"""

import itertools
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from podsim.errors import SpecError, shown
from podsim.front.overrides import parse_value
from podsim.lowering.autotune import MAX_VIRTUAL_STAGES
from podsim.plans.schedules import check_dualpipe
from podsim.plans.training import RECOMPUTE, Plan, check_plan
from podsim.specs.clusters import Cluster

SEARCH_KEYS = (
    "tp",
    "pp",
    "cp",
    "ep",
    "etp",
    "micro_batch",
    "zero",
    "recompute",
    "schedule",
    "virtual_stages",
)
# Plans enumerated at most (before pruning): at about 1 ms each, two minutes of screening.
MAX_CANDIDATES = 200_000
MAX_VALUES = 64  # values of one key


@dataclass
class Pruned:
    """Candidates refused before screening, counted by reason."""

    counts: Counter = field(default_factory=Counter)

    def add(self, reason: str) -> None:
        self.counts[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _powers(limit: int) -> list[int]:
    return [2**k for k in range(limit.bit_length()) if 2**k <= limit]


def default_space(model, plan: Plan, cluster: Cluster) -> dict[str, list[Any]]:
    """Each searched key's default values (see the module's doc), the scenario's own included."""
    domain = cluster.domain_size
    space: dict[str, list[Any]] = {
        "tp": [d for d in range(1, domain + 1) if domain % d == 0],
        "pp": _powers(model.layers),
        "cp": [1],
        "ep": [1],
        "etp": [0],
        "micro_batch": [1, 2, 4],
        "zero": [0, 1],
        "recompute": list(RECOMPUTE),
        "schedule": ["1f1b", "interleaved", "dualpipe"],
        "virtual_stages": list(range(2, MAX_VIRTUAL_STAGES + 1)),
    }
    if model.experts:
        space["ep"] = [e for e in _powers(model.experts) if model.experts % e == 0]
        space["etp"] = [1, 0]  # 0: the same as tp
    own = {key: getattr(plan, key) for key in SEARCH_KEYS}
    for key, value in own.items():
        if key == "virtual_stages" and value == 0:
            continue  # "auto": the search tries each value itself
        if key == "etp" and not model.experts:
            continue
        if value not in space[key]:
            space[key].append(value)
    return space


def parse_space(texts: Sequence[str], option: str) -> dict[str, list[Any]]:
    """`--space train.KEY=V1,V2` (or `--fix train.KEY=V`) options as {KEY: [values]}."""
    out: dict[str, list[Any]] = {}
    for text in texts:
        key, sep, values = text.partition("=")
        name = key.strip().removeprefix("train.")
        parts = [part.strip() for part in values.split(",")]
        allowed = ", ".join(f"train.{k}" for k in SEARCH_KEYS)
        if not sep or name not in SEARCH_KEYS or not all(parts):
            raise SpecError(
                f"{option} = {shown(text)} is not allowed: KEY=V1,V2,... with KEY one of {allowed}"
            )
        if option == "--fix" and len(parts) != 1:
            raise SpecError(f"{option} = {shown(text)} is not allowed: one value (KEY=V)")
        if name in out:
            raise SpecError(f"{option} = {shown(text)} is not allowed: train.{name} given twice")
        if len(parts) > MAX_VALUES:
            raise SpecError(f"{option} = {shown(text)}: at most {MAX_VALUES} values")
        out[name] = [parse_value(part) for part in parts]
    return out


def search_space(
    model,
    plan: Plan,
    cluster: Cluster,
    space: Mapping[str, Sequence[Any]] | None = None,
    fix: Mapping[str, Any] | None = None,
) -> dict[str, list[Any]]:
    """The values of each searched key: the defaults, replaced by `space`, then `fix`."""
    values = default_space(model, plan, cluster)
    for source in (space or {}), {k: [v] for k, v in (fix or {}).items()}:
        for key, options in source.items():
            if key not in SEARCH_KEYS:
                allowed = ", ".join(SEARCH_KEYS)
                raise SpecError(f"search key {key!r} is not known; allowed: {allowed}")
            # duplicates dropped; values need not be hashable (a TOML list is pruned later)
            values[key] = [v for i, v in enumerate(options) if v not in options[:i]]
    if "schedule" in (fix or {}) and fix["schedule"] != "interleaved":
        values["virtual_stages"] = [0]
    return values


def count(values: Mapping[str, Sequence[Any]]) -> int:
    """Candidates of a space: virtual stages multiply the interleaved schedule only."""
    others = [len(v) for k, v in values.items() if k not in ("schedule", "virtual_stages")]
    schedules = len(_schedule_variants(values))
    total = schedules
    for n in others:
        total *= n
    return total


def _schedule_variants(values: Mapping[str, Sequence[Any]]) -> list[tuple[str, int]]:
    """(schedule, virtual_stages) pairs: the interleaved schedule with each virtual_stages
    value, the others once (their virtual stages follow from the schedule)."""
    variants: list[tuple[str, int]] = []
    for schedule in values["schedule"]:
        if schedule == "interleaved":
            variants += [(schedule, v) for v in values["virtual_stages"]]
        else:
            variants.append((schedule, 0))
    return variants


def reason_of(error: SpecError) -> str:
    """A pruning reason from a plan's error: the field and what is allowed, without the
    values that differ from plan to plan (numbers in parentheses)."""
    text = str(error)
    match = re.match(r"(?:.*: )?(train\.[\w. *]+) = .* is not allowed: (.*)", text)
    if match is None:  # not a field's error: its first clause, numbers left out
        return re.sub(r"\d[\d,.]*", "N", text.split(";")[0])[:120]
    allowed = re.sub(r"\s*\([^)]*\)", "", match.group(2)).split(":")[0]
    return f"{match.group(1)}: {allowed}"


def check_schedule(model, plan: Plan) -> str | None:
    """Why an explicit schedule variant is pointless or cannot run (None if it can): what
    virtual_stage_options would refuse, and duplicates of another candidate."""
    if plan.schedule == "interleaved":
        if plan.pp < 2:
            return "interleaved: needs pp >= 2 (pp = 1 is 1f1b)"
        if plan.virtual_stages < 2:
            return "interleaved: virtual_stages >= 2 (1 is 1f1b)"
        if plan.microbatches % plan.pp:
            return "interleaved: microbatches a multiple of pp"
    if plan.schedule == "dualpipe":
        try:
            check_dualpipe(plan.pp, plan.microbatches)
        except SpecError:
            return "dualpipe: microbatches even and >= 2 x pp"
    if plan.pp * max(plan.virtual_stages, 1) > model.layers:
        return "pp x virtual_stages: at most the model's layers"
    if plan.zero and plan.dp == 1 and plan.expert_dp == 1:
        return "duplicate: ZeRO with dp = 1 shards nothing"
    if plan.etp and plan.etp == plan.tp:
        return "duplicate: etp = tp is etp = 0"
    return None


def candidates(
    model, base: Plan, cluster: Cluster, values: Mapping[str, Sequence[Any]], pruned: Pruned
) -> Iterator[Plan]:
    """Every valid plan of the space, in a fixed order; refused ones are counted in `pruned`."""
    total = count(values)
    if total > MAX_CANDIDATES:
        sizes = " x ".join(f"{k} {len(v)}" for k, v in values.items())
        raise SpecError(
            f"the search space has {total:,} plans ({sizes}); at most {MAX_CANDIDATES:,}: "
            "restrict it with --fix train.KEY=V or --space train.KEY=V1,V2"
        )
    keys = [k for k in SEARCH_KEYS if k not in ("schedule", "virtual_stages")]
    for combo in itertools.product(*(values[k] for k in keys), _schedule_variants(values)):
        chosen = dict(zip(keys, combo[:-1], strict=True))
        chosen["schedule"], chosen["virtual_stages"] = combo[-1]
        plan = _plan(model, base, cluster, chosen, pruned)
        if plan is not None:
            yield plan


def _plan(model, base: Plan, cluster: Cluster, chosen: dict[str, Any], pruned: Pruned):
    if not all(isinstance(chosen[k], int) and chosen[k] >= 1 for k in ("tp", "pp", "cp")):
        pruned.add("train.tp, pp, cp: whole numbers >= 1")
        return None
    split = chosen["tp"] * chosen["pp"] * chosen["cp"]
    if cluster.devices % split:
        pruned.add("train.tp x pp x cp: a divisor of cluster.devices")
        return None
    if not model.experts and chosen["etp"] not in (0, chosen["tp"]):
        pruned.add("train.etp: tp for a dense model")
        return None
    try:
        plan = replace(base, dp=cluster.devices // split, **chosen)
        check_plan(model, plan, cluster)
    except SpecError as error:
        pruned.add(reason_of(error))
        return None
    except (TypeError, ValueError) as error:  # a value of the wrong type in --space
        pruned.add(f"invalid value: {shown(str(error), 80)}")
        return None
    reason = check_schedule(model, plan)
    if reason is not None:
        pruned.add(reason)
        return None
    return plan
