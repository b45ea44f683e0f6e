"""A sweep's rows out: CSV, JSON or Parquet files (written atomically) and pandas DataFrames.

Columns are every key of the rows in order of first appearance (the swept keys first). pandas
(and pyarrow, for Parquet) are optional: extra `frames`.
"""

import csv
import io
import os
import tempfile
from os import PathLike
from pathlib import Path
from typing import Any

from podsim.errors import SpecError, shown

OUT_SUFFIXES = (".csv", ".json", ".parquet")


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return columns


def rows_frame(rows: list[dict[str, Any]]) -> Any:
    """The rows as a pandas DataFrame (one column per key; missing values NaN or None)."""
    try:
        import pandas
    except ImportError as error:
        raise SpecError("a DataFrame needs pandas: pip install 'podsim[frames]'") from error
    return pandas.DataFrame.from_records(rows, columns=columns_of(rows))


def check_out_path(path: "str | PathLike[str]") -> None:
    """--out must end in .csv, .json or .parquet, in a folder that exists (checked before
    any work); Parquet needs pandas and pyarrow."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in OUT_SUFFIXES:
        raise SpecError(
            f"--out = {shown(str(path))} is not allowed: FILE.csv, FILE.json or FILE.parquet"
        )
    if not target.parent.is_dir():
        raise SpecError(f"--out = {shown(str(path))}: folder {target.parent} does not exist")
    if suffix == ".parquet":
        try:
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError as error:
            raise SpecError(
                f"--out = {shown(str(path))}: Parquet needs pandas and pyarrow: "
                "pip install 'podsim[frames]'"
            ) from error


def rows_bytes(rows: list[dict[str, Any]], suffix: str, document: dict[str, Any]) -> bytes:
    """The rows as CSV, as the JSON document given (strict JSON: a non-finite number is
    null), or as Parquet."""
    if suffix == ".json":
        from podsim.front.cli.output import dumps  # strict JSON, one encoder for every verb

        return (dumps(document) + "\n").encode()
    if suffix == ".parquet":
        buffer = io.BytesIO()
        rows_frame(rows).to_parquet(buffer, index=False)
        return buffer.getvalue()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns_of(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return text.getvalue().encode()


def write_atomically(path: "str | PathLike[str]", data: bytes) -> None:
    """A temporary file in the same folder, then os.replace: readers never see half a file."""
    target = Path(path)
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_rows(
    path: "str | PathLike[str]", rows: list[dict[str, Any]], document: dict[str, Any]
) -> None:
    """Write the rows to `path` (.csv, .json or .parquet, by its suffix) atomically."""
    check_out_path(path)
    write_atomically(path, rows_bytes(rows, Path(path).suffix.lower(), document))
