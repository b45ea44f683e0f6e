"""Docs that stay true: generated pages and blocks equal what the code generates today (the
slow training cases of docs/validation.md are checked in tests/validation/test_published.py)."""

from pathlib import Path

from podsim.front.doc_tables import (
    block,
    blocks_in,
    deepep_blocks,
    nccl_tests_block,
    with_block,
)
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
    assert tables == ["cluster", "model", "train", "serve", "stack", "noise", "failures"]
    assert [key for key in tables if f"## [{key}]" not in page] == []
    assert [key for key in keys if "." in key and f"| `{key}` |" not in page] == []


VALIDATION = ROOT / "docs/validation.md"


def test_validation_page_marks_its_generated_tables():
    assert blocks_in(VALIDATION.read_text(encoding="utf-8")) == [
        "validation-calibration",
        "validation-held-out",
        "deepep-low-latency",
        "deepep-normal",
        "nccl-tests-dgx-h100",
        "nccl-tests-dgx-h100-small",
        "deepseek-v3-phases",
        "serving-validation",
        "validation-out-of-sample",
        "validation-software-stacks",
        "validation-unfused-attention",
    ]


def test_the_deepep_tables_quote_what_podsim_gives():
    text = VALIDATION.read_text(encoding="utf-8")
    for name, content in deepep_blocks().items():
        assert block(text, name) == content, (
            f"docs/validation.md block {name} is stale: run `PYTHONPATH=src python "
            "tools/gen_docs.py`"
        )


def test_the_nccl_tests_table_quotes_what_podsim_gives():
    text = VALIDATION.read_text(encoding="utf-8")
    for name, content in nccl_tests_block().items():
        assert block(text, name) == content, f"docs/validation.md block {name} is stale"


def test_a_stale_block_is_caught():
    text = VALIDATION.read_text(encoding="utf-8")
    generated = deepep_blocks()["deepep-normal"]
    stale = with_block(text, "deepep-normal", generated.replace("| 16 |", "| 16 | 0 |", 1))
    assert block(stale, "deepep-normal") != generated
    assert with_block(stale, "deepep-normal", generated) == with_block(
        text, "deepep-normal", generated
    )
