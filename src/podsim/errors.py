"""The exceptions podsim raises; every one names what was wrong and what is allowed."""


class PodsimError(Exception):
    """Base class of podsim's errors."""


class SpecError(PodsimError, ValueError):
    """A chip, cluster, model, plan or scenario field has a value that is not allowed."""


class ProgramError(PodsimError, ValueError):
    """A program handed to the engine is malformed (bad index, mismatched collective, ...)."""


class DeadlockError(PodsimError, RuntimeError):
    """A program can never finish: some op waits for something that never happens."""


class DependencyError(PodsimError, ImportError):
    """An optional dependency a feature needs is not installed (the message says how to)."""


MAX_SHOWN = 80  # characters of a value an error message repeats


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """repr(value) for an error message, shortened: a megabyte value is not echoed back."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an integer of over 4,300 digits, a deep nesting
        text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = f"{text[: limit - 20]}... ({len(text):,} characters)"
    return text


def check(condition: bool, field: str, value: object, allowed: str) -> None:
    """Raise SpecError naming the field, its value and what is allowed, unless condition holds."""
    if not condition:
        raise SpecError(f"{field} = {shown(value)} is not allowed: {allowed}")
