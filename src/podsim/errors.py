"""The exceptions podsim raises; every one names what was wrong and what is allowed."""


class PodsimError(Exception):
    """Base class of podsim's errors."""


class SpecError(PodsimError, ValueError):
    """A chip, cluster, model, plan or scenario field has a value that is not allowed."""


class ProgramError(PodsimError, ValueError):
    """A program handed to the engine is malformed (bad index, mismatched collective, ...)."""


class DeadlockError(PodsimError, RuntimeError):
    """A program can never finish: some op waits for something that never happens."""


def check(condition: bool, field: str, value: object, allowed: str) -> None:
    """Raise SpecError naming the field, its value and what is allowed, unless condition holds."""
    if not condition:
        raise SpecError(f"{field} = {value!r} is not allowed: {allowed}")
