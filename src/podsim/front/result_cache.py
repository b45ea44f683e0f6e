"""Results cached by what produced them, in this process and optionally on disk.

A key is a hash of the resolved scenario document, the network model and the podsim code that
runs it (its version and a fingerprint of the installed package's files: size and modification
time of every module and of the C++ extension), so a changed podsim never reuses an old result.
On disk, each entry is one JSON file named by its key in the cache folder, written atomically;
a file that cannot be read is treated as missing.
"""

import functools
import hashlib
import json
import math
from os import PathLike
from pathlib import Path
from typing import Any

from podsim.errors import SpecError, shown
from podsim.version import __version__


@functools.cache
def code_fingerprint() -> str:
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".so", ".pyd", ".toml") and path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def result_key(document: dict[str, Any], network: str) -> str:
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(f"{text}\n{network}\n{code_fingerprint()}".encode()).hexdigest()


def _finite(value: Any) -> Any:
    """JSON cannot hold inf or NaN: keep them as tagged strings and restore them on reading."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    return value


def _restored(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"__float__"}:
        return float(value["__float__"])
    return value


class ResultCache:
    """Rows by key: a dict in this process, backed by `folder` when one is given."""

    def __init__(
        self,
        folder: "str | PathLike[str] | None" = None,
        memory: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.memory = {} if memory is None else memory
        self.folder = None if folder is None else Path(folder)
        if self.folder is not None:
            if self.folder.exists() and not self.folder.is_dir():
                raise SpecError(f"--cache = {shown(str(folder))} is a file, not a folder")
            self.folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict[str, Any] | None:
        if key in self.memory:
            return self.memory[key]
        if self.folder is None:
            return None
        try:
            stored = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        row = {name: _restored(value) for name, value in stored.items()}
        self.memory[key] = row
        return row

    def put(self, key: str, row: dict[str, Any]) -> None:
        """Keep `row`, on disk too unless its file is there already."""
        self.memory[key] = row
        if self.folder is not None and not (self.folder / f"{key}.json").is_file():
            from podsim.front.sweep_output import write_atomically

            text = json.dumps({name: _finite(value) for name, value in row.items()})
            write_atomically(self.folder / f"{key}.json", text.encode())
