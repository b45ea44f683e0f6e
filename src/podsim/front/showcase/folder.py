"""The report folder: scenario files, per-run JSON in the CLI's --json shapes, and the list of
what was written."""

from pathlib import Path
from typing import Any

from podsim.errors import SpecError
from podsim.front.showcase.documents import Document, toml_text


class Report:
    """Writes files under `root` (scenarios/, runs/), each whole or not at all."""

    def __init__(self, root: Path) -> None:
        if root.exists() and not root.is_dir():
            raise SpecError(f"--out = {str(root)!r} is not allowed: a file is there, not a folder")
        self.root = root
        for sub in ("scenarios", "runs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.files: list[str] = []

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
        self.files.append(relative)
        return path

    def scenario(self, stem: str, document: Document, comments: list[str]) -> Path:
        """scenarios/STEM.toml."""
        return self.write(f"scenarios/{stem}.toml", toml_text(document, comments))

    def write_json(self, relative: str, value: Any) -> str:
        """Strict JSON, as --json prints it (non-finite numbers as null); returns `relative`."""
        from podsim.front.cli.output import dumps  # one encoder for every verb (not at import:
        # the CLI package imports the showcase)

        self.write(relative, dumps(value) + "\n")
        return relative

    def run_json(self, stem: str, value: Any) -> str:
        """runs/STEM.json; returns its relative path."""
        return self.write_json(f"runs/{stem}.json", value)


def compare_row(
    chip: str, result: dict[str, Any], changes: list[str], precision: str, fallback: bool
) -> dict[str, Any]:
    """One row of `podsim compare --json`: the chip, the run's keys, what changed."""
    return {
        "chip": chip,
        **result,
        "changes": changes,
        "precision": precision,
        "precision_fallback": fallback,
    }
