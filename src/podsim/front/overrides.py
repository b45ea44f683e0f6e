"""`--set KEY=VALUE`: a scenario's keys overridden from the command line.

KEY is a dotted path into the scenario ("train.tp", "cluster.scale_out_bandwidth",
"noise.seed"); VALUE is read as a TOML value (4, 1.5, true, "1f1b", [1, 2]) and, when it is
not one, as a string (so `--set train.schedule=1f1b` and `--set cluster.scale_out_latency=5us`
work unquoted). The edited document is checked by the same schema as a file; an error names the
--set that caused it.
"""

import tomllib
from os import PathLike
from pathlib import Path
from typing import Any

from podsim.errors import SpecError, shown
from podsim.front.api import builtin_scenarios
from podsim.front.scenario import Scenario, scenario_from_document

MAX_SETS = 100


def parse_value(text: str) -> Any:
    """A TOML value, or the text itself as a string when it is not one."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return text


def parse_set(text: str) -> tuple[list[str], Any]:
    """KEY=VALUE as (the key's parts, the value)."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts) or not value.strip():
        raise SpecError(
            f"--set = {shown(text)} is not allowed: KEY=VALUE with a dotted key, "
            "e.g. --set train.tp=4 or --set train.schedule=1f1b"
        )
    return [p.strip() for p in parts], parse_value(value.strip())


def scenario_document(scenario: "str | PathLike[str]") -> tuple[dict[str, Any], str]:
    """The TOML document of a scenario file or built-in name, and its source label."""
    if Path(scenario).is_file():
        try:
            text = Path(scenario).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            message = f"{scenario}: cannot be read as a UTF-8 scenario file: {error}"
            raise SpecError(message) from error
        source = str(scenario)
    else:
        builtins = builtin_scenarios()
        if str(scenario) not in builtins:
            raise SpecError(
                f"scenario {str(scenario)!r} is neither a file nor a built-in scenario; "
                f"built-in: {', '.join(builtins)}"
            )
        text, source = builtins[str(scenario)], f"built-in {scenario}"
    try:
        return tomllib.loads(text), source
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as error:
        raise SpecError(f"{source}: not valid TOML: {shown(str(error), 200)}") from None


def with_overrides(scenario: "str | PathLike[str]", sets: list[str]) -> Scenario:
    """The scenario with each `KEY=VALUE` of `sets` applied in order, then checked."""
    if len(sets) > MAX_SETS:
        raise SpecError(f"--set is given {len(sets)} times; at most {MAX_SETS}")
    document, source = scenario_document(scenario)
    return overridden(document, source, [(text, *parse_set(text)) for text in sets])


def overridden(
    document: dict[str, Any],
    source: str,
    parsed: list[tuple[str, list[str], Any]],
    flag: str = "--set",
) -> Scenario:
    """The scenario of `document` (edited in place) with each (text, key parts, value) of
    `parsed` applied in order, then checked; an error names the override (its text)."""
    for text, parts, value in parsed:
        table = document
        for depth, part in enumerate(parts[:-1]):
            node = table.setdefault(part, {})
            if not isinstance(node, dict):
                where = ".".join(parts[: depth + 1])
                raise SpecError(
                    f"{flag} {text}: {where} is {shown(node)}, not a table, in {source}"
                )
            table = node
        table[parts[-1]] = value
    label = f"{source} with {flag} " + ", ".join(text for text, _, _ in parsed)
    try:
        return scenario_from_document(document, label)
    except SpecError as error:
        message = str(error).removeprefix(f"{label}: ")
        named = [text for text, parts, _ in parsed if ".".join(parts) in message]
        culprit = named[-1] if named else ", ".join(text for text, _, _ in parsed)
        raise SpecError(f"{flag} {culprit}: {message} (in {source})") from error
