"""Regenerate the generated documentation: docs/scenario-reference.md (from the schema) and
the marked tables of docs/validation.md (DeepEP rows; with --slow, the training cases and the
runs of other software stacks too, which simulate the published runs: a few minutes).

Run from the repository root: `PYTHONPATH=src python tools/gen_docs.py [--slow]`; the tests
(tests/test_docs.py, tests/validation/test_published.py) fail while committed text differs."""

import sys
from pathlib import Path

from podsim.front.doc_tables import (
    A100_ROWS,
    deepep_blocks,
    stack_blocks,
    unfused_blocks,
    validation_blocks,
    with_block,
)
from podsim.front.reference_page import PAGE, reference_markdown
from podsim.front.validation import (
    SOFTWARE_STACKS,
    case_names,
    run_case,
    unfused_attention,
    without_stack,
)

VALIDATION = "docs/validation.md"


def main(argv: list[str]) -> int:
    Path(PAGE).write_text(reference_markdown(), encoding="utf-8")
    print(f"wrote {PAGE}")
    blocks = deepep_blocks()
    if "--slow" in argv:
        blocks |= validation_blocks([run_case(name) for name in case_names()])
        names = case_names(SOFTWARE_STACKS)
        stacks = [run_case(name, SOFTWARE_STACKS) for name in names]
        baseline = [run_case(name, SOFTWARE_STACKS, without_stack) for name in names]
        blocks |= stack_blocks(stacks, baseline)
        a100 = [name for name in case_names() if name.startswith(A100_ROWS)]
        blocks |= unfused_blocks([run_case(name, "", unfused_attention) for name in a100])
    text = Path(VALIDATION).read_text(encoding="utf-8")
    for name, content in blocks.items():
        text = with_block(text, name, content)
    Path(VALIDATION).write_text(text, encoding="utf-8")
    print(f"wrote {VALIDATION}: {', '.join(blocks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
