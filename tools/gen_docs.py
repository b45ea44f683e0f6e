"""Regenerate the generated documentation: docs/scenario-reference.md (from the schema).

Run from the repository root: `PYTHONPATH=src python tools/gen_docs.py`; tests/test_docs.py
fails while a committed page differs from what this writes."""

from pathlib import Path

from podsim.front.reference_page import PAGE, reference_markdown

if __name__ == "__main__":
    Path(PAGE).write_text(reference_markdown(), encoding="utf-8")
    print(f"wrote {PAGE}")
