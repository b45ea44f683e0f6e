"""Result rows as rich tables, with the units of each column in its heading."""

from typing import Any

from rich.table import Table


def rows_table(title: str, columns: list[tuple[str, str, str]], rows: list[dict]) -> Table:
    """A table of result rows: (heading, key, format) per column; columns no row has are
    left out."""
    table = Table(title=title)
    shown = [c for c in columns if any(c[1] in row for row in rows)]
    for heading, _, _ in shown:
        table.add_column(heading, justify="right")
    for row in rows:
        table.add_row(*[cell(row.get(key), fmt) for _, key, fmt in shown])
    return table


def cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "days":
        return f"{value / 86400:,.1f}"
    if fmt == "min":
        return f"{value / 60:,.1f}"
    if fmt == "gb":
        return f"{value / 1e9:,.1f}"
    return fmt.format(value)
