"""Input errors of the data stage, and a table reader that names what is missing.

Subclasses of the built-in errors, so callers may catch `ValueError` / `FileNotFoundError`, while
the message always names the offending file, column, field or value.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from taxvlm.io import read_tsv


class DataError(ValueError):
    """Bad content: a missing column, an unknown name, a value out of range."""


class MissingDataError(FileNotFoundError):
    """A file or folder the dataset needs is absent or empty."""


def read_table(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """Read a TSV and check that it has `columns` (extra columns are kept)."""
    if not Path(path).is_file():
        raise MissingDataError(f"table not found: {path}")
    frame = read_tsv(path)
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; has {list(frame.columns)}")
    return frame
