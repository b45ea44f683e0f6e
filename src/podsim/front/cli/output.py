"""What every verb writes on stdout with --json: one JSON object, strict JSON only.

Python's json module writes the non-standard tokens Infinity and NaN for non-finite floats,
which other JSON parsers reject. Every verb goes through `print_json` instead: a non-finite
number becomes null, which in podsim's JSON always means "not defined or not finite" (e.g. a
time to train of a run that never finished, a standard error of a single run). numpy scalars
and arrays become numbers and lists; anything else that is not JSON (a date, a path) becomes its
string. The encoder runs with allow_nan=False, so a non-finite number can never slip through.
"""

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from podsim.errors import SpecError


def finite_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (recursively), numpy values as plain
    Python ones, tuples as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(key): finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    if isinstance(value, np.ndarray):
        return finite_json(value.tolist())
    if hasattr(value, "items"):  # a mapping proxy
        return {str(key): finite_json(item) for key, item in value.items()}
    return str(value)


def dumps(value: Any) -> str:
    """Strict JSON text of `value` (see the module docstring)."""
    return json.dumps(finite_json(value), allow_nan=False)


def print_json(value: Any) -> None:
    """Write `value` as one line of strict JSON on stdout."""
    sys.stdout.write(dumps(value) + "\n")
    sys.stdout.flush()


def check_new_file(option: str, path: Path, force: bool) -> None:
    """Refuse to write `option`'s file over a directory, or over a file unless `force`."""
    if path.is_dir():
        raise SpecError(f"{option} {str(path)!r}: is a directory; give a file path")
    if path.exists() and not force:
        raise SpecError(f"{option} {str(path)!r}: the file exists; add --force to overwrite it")
