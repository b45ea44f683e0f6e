"""Regenerate the generated documentation: docs/scenario-reference.md (from the schema) and
the marked tables of docs/validation.md (DeepEP rows, the serving cases, also in
docs/serving.md; with --slow, the training cases (in and out of sample), the DeepSeek-V3
phases and the runs of other software stacks too, which simulate the published runs: a few
minutes); with --showcase, the tables of docs/showcase.md (a `podsim showcase --quick` run:
about half a minute).

Run from the repository root: `PYTHONPATH=src python tools/gen_docs.py [--slow] [--showcase]`;
the tests (tests/test_docs.py, tests/validation/test_published.py, tests/test_showcase.py) fail
while committed text differs."""

import sys
import tempfile
from pathlib import Path

from podsim.front.doc_tables import (
    A100_ROWS,
    deepep_blocks,
    nccl_tests_block,
    out_of_sample_block,
    serving_block,
    stack_blocks,
    unfused_blocks,
    v3_phase_block,
    validation_blocks,
    with_block,
)
from podsim.front.reference_page import PAGE, reference_markdown
from podsim.front.serve_validation import serving_cases
from podsim.front.showcase import showcase
from podsim.front.showcase.readme import doc_blocks
from podsim.front.validation import (
    OUT_OF_SAMPLE,
    SOFTWARE_STACKS,
    case_names,
    fused_attention,
    run_case,
    v3_phases,
    without_stack,
)

VALIDATION = "docs/validation.md"
SERVING = "docs/serving.md"
SHOWCASE = "docs/showcase.md"


def write_blocks(page: str, blocks: dict[str, str]) -> None:
    text = Path(page).read_text(encoding="utf-8")
    for name, content in blocks.items():
        text = with_block(text, name, content)
    Path(page).write_text(text, encoding="utf-8")
    print(f"wrote {page}: {', '.join(blocks)}")


def showcase_blocks() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as folder:
        return doc_blocks(showcase(folder, quick=True))


def main(argv: list[str]) -> int:
    Path(PAGE).write_text(reference_markdown(), encoding="utf-8")
    print(f"wrote {PAGE}")
    serving = serving_block(serving_cases())
    blocks = deepep_blocks() | nccl_tests_block() | serving
    if "--slow" in argv:
        in_sample = [run_case(name) for name in case_names()]
        blocks |= validation_blocks(in_sample)
        outside = [run_case(name, OUT_OF_SAMPLE) for name in case_names(OUT_OF_SAMPLE)]
        blocks |= out_of_sample_block(outside, in_sample)
        blocks |= v3_phase_block(v3_phases())
        names = case_names(SOFTWARE_STACKS)
        stacks = [run_case(name, SOFTWARE_STACKS) for name in names]
        baseline = [run_case(name, SOFTWARE_STACKS, without_stack) for name in names]
        blocks |= stack_blocks(stacks, baseline)
        a100 = [name for name in case_names() if name.startswith(A100_ROWS)]
        as_run = [run_case(name) for name in a100]
        blocks |= unfused_blocks(as_run, [run_case(name, "", fused_attention) for name in a100])
    write_blocks(VALIDATION, blocks)
    write_blocks(SERVING, serving)
    if "--showcase" in argv:
        write_blocks(SHOWCASE, showcase_blocks())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
