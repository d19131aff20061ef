"""Input errors of the data stage, and a table reader that names what is missing.

Subclasses of the built-in errors, so callers may catch `ValueError` / `FileNotFoundError`, while
the message always names the offending file, column, field or value.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from taxvlm.io import read_tsv


class DataError(ValueError):
    """Bad content: a missing column, an unknown name, a value out of range."""


class MissingDataError(FileNotFoundError):
    """A file or folder the dataset needs is absent or empty."""


def nfc(text: str) -> str:
    """Unicode NFC: an NFD folder name and an NFC table cell that look identical compare equal."""
    return unicodedata.normalize("NFC", text)


def read_table(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """Read a TSV and check that it has `columns` (extra columns are kept); every cell in NFC."""
    if not Path(path).is_file():
        raise MissingDataError(f"table not found: {path}")
    frame = read_tsv(path, complete=False)  # users' tables may lack a final newline
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; has {list(frame.columns)}")
    return frame.apply(lambda column: column.map(nfc)) if len(frame) else frame


def require_cells(frame: pd.DataFrame, columns: Iterable[str], path: Path) -> None:
    """Blank cells in `columns` are an error naming the file, line and column: a blank hypernym would
    otherwise become a category named `""` and fail much later without a location."""
    for column in columns:
        blank = frame.index[frame[column].str.strip() == ""]
        if len(blank):
            line = int(blank[0]) + 2  # the header is line 1
            raise DataError(f"{path}: line {line}: empty {column!r} cell")
