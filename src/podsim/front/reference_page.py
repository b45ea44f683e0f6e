"""docs/scenario-reference.md, generated from the scenario schema (podsim.front.schema): every
key with what it takes (type and bounds), its unit, its default and its doc. `podsim scenarios
--reference` prints it; tests/test_docs.py checks that the committed page equals it."""

from podsim.front.schema import SCENARIO, reference

PAGE = "docs/scenario-reference.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if text else ""


def reference_markdown() -> str:
    """The scenario reference page (Markdown), one table per top-level table."""
    lines = [
        "# Scenario reference",
        "",
        "<!-- Generated from src/podsim/front/schema.py by `podsim scenarios --reference`"
        " (or `python tools/gen_docs.py`); do not edit: tests/test_docs.py checks it. -->",
        "",
        "Every key a scenario file takes. Quantities are numbers in SI units (s, B, B/s,"
        ' FLOP/s) or unit strings ("2 us", "80 GB", "400 Gb/s"); keys left out take'
        " their default (required: the key must be given when its table is; none: no value"
        " unless given). Unknown keys are an error.",
        "",
    ]
    rows = reference()
    for table in SCENARIO.fields:
        lines += [f"## [{table.name}]", "", _cell(table.doc), ""]
        lines += ["| key | allowed | unit | default | doc |", "| --- | --- | --- | --- | --- |"]
        prefix = table.name + "."
        for row in rows:
            if row["key"].startswith(prefix):
                default = {"": "required", "None": "none"}.get(row["default"], row["default"])
                cells = (f"`{row['key']}`", row["allowed"], row["unit"], default, row["doc"])
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)
