"""Regenerate the generated documentation: docs/scenario-reference.md (from the schema) and
the marked tables of docs/validation.md (DeepEP rows, the serving cases, also in
docs/serving.md; with --slow, the training cases, the DeepSeek-V3 phases and the runs of other
software stacks too, which simulate the published runs: a few minutes).

Run from the repository root: `PYTHONPATH=src python tools/gen_docs.py [--slow]`; the tests
(tests/test_docs.py, tests/validation/test_published.py) fail while committed text differs."""

import sys
from pathlib import Path

from podsim.front.doc_tables import (
    A100_ROWS,
    deepep_blocks,
    serving_block,
    stack_blocks,
    unfused_blocks,
    v3_phase_block,
    validation_blocks,
    with_block,
)
from podsim.front.reference_page import PAGE, reference_markdown
from podsim.front.serve_validation import serving_cases
from podsim.front.validation import (
    SOFTWARE_STACKS,
    case_names,
    run_case,
    unfused_attention,
    v3_phases,
    without_stack,
)

VALIDATION = "docs/validation.md"
SERVING = "docs/serving.md"


def main(argv: list[str]) -> int:
    Path(PAGE).write_text(reference_markdown(), encoding="utf-8")
    print(f"wrote {PAGE}")
    serving = serving_block(serving_cases())
    blocks = deepep_blocks() | serving
    if "--slow" in argv:
        blocks |= validation_blocks([run_case(name) for name in case_names()])
        blocks |= v3_phase_block(v3_phases())
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
    page = Path(SERVING).read_text(encoding="utf-8")
    for name, content in serving.items():
        page = with_block(page, name, content)
    Path(SERVING).write_text(page, encoding="utf-8")
    print(f"wrote {SERVING}: {', '.join(serving)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
