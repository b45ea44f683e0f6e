"""The scenario schema: one table of typed, bounded fields per scenario table.

Each layer declares the fields of what it owns, once, and checks its dataclasses with them at
construction: [cluster] and [cluster.chip] in podsim.specs (clusters, chips), [model] in
podsim.specs.models, [train] in podsim.plans.training, [serve] in podsim.plans.serving, [stack] in
podsim.plans.stack, [noise]
and [failures] in podsim.engine (noise, failures). `SCENARIO.check(document)` refuses unknown
keys anywhere (naming the key and the allowed ones), wrong types and out-of-range values
(naming the key as the user wrote it), and returns the tables with quantities in SI units.
`reference()` lists every key with what it takes, its unit, its default and its doc (for a
generated reference page).
"""

from podsim.engine.failures import FAILURE_FIELDS
from podsim.engine.noise import NOISE_FIELDS
from podsim.fields import Field, Table
from podsim.fields import (
    reference as _reference,
)
from podsim.plans.serving import SERVE_FIELDS
from podsim.plans.stack import STACK_FIELDS
from podsim.plans.training import TRAIN_FIELDS
from podsim.specs.clusters import CLUSTER_FIELDS
from podsim.specs.models import MODEL_FIELDS

SCENARIO = Table(
    "scenario",
    "a scenario file",
    fields=(
        CLUSTER_FIELDS,
        MODEL_FIELDS,
        TRAIN_FIELDS,
        SERVE_FIELDS,
        STACK_FIELDS,
        NOISE_FIELDS,
        FAILURE_FIELDS,
    ),
)
TABLES: dict[str, Field] = SCENARIO.keys


def reference() -> list[dict[str, str]]:
    """Every key of every table ("train.seq_len", "cluster.chip.hbm_bytes", ...) with what it
    takes, its unit, its default and a one-line doc."""
    return _reference(SCENARIO)
