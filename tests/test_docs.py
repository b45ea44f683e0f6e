"""Docs that stay true: generated pages equal what the code generates today."""

from pathlib import Path

from podsim.front.reference_page import PAGE, reference_markdown
from podsim.front.schema import reference

ROOT = Path(__file__).resolve().parents[1]


def test_the_scenario_reference_page_is_up_to_date():
    committed = (ROOT / PAGE).read_text(encoding="utf-8")
    assert committed == reference_markdown(), (
        f"{PAGE} is stale: regenerate it with `PYTHONPATH=src python tools/gen_docs.py`"
    )


def test_the_reference_page_lists_every_key():
    page = reference_markdown()
    keys = [row["key"] for row in reference()]
    assert len(keys) > 100
    tables = [key for key in keys if "." not in key]
    assert tables == ["cluster", "model", "train", "serve", "noise", "failures"]
    assert [key for key in tables if f"## [{key}]" not in page] == []
    assert [key for key in keys if "." in key and f"| `{key}` |" not in page] == []
