"""THINGS images and THINGSplus categories, for users who have the OSF downloads (not reachable here).

The THINGS image archives are zips encrypted with a public password (stated on OSF, set in the
config); members are per-concept folders (`object_images/<concept>/<file>.jpg`), sometimes inside
further zips. Python's zipfile decrypts them (slowly, but with no extra tool).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pandas as pd

from taxvlm.io import atomic_dir, write_tsv

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
THINGSPLUS_COLUMNS = ["category", "uniqueID", "Word"]


def extract_things_images(zip_paths: Sequence[Path], out_dir: Path, password: str) -> None:
    """Write every image of the archives (THINGS ships A-C, D-K, ...) to `out_dir/<concept>/<file>`.

    All archives go into one folder that appears only once every archive has been read.
    """
    with atomic_dir(out_dir) as tmp:
        for zip_path in zip_paths:
            with zipfile.ZipFile(zip_path) as archive:
                if _extract_images(archive, tmp, password.encode()) == 0:
                    raise FileNotFoundError(f"{zip_path}: no <concept>/<image> members found")


def _extract_images(archive: zipfile.ZipFile, out_dir: Path, pwd: bytes) -> int:
    """Extract images (recursing into nested zips); return how many were written."""
    count = 0
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        if info.is_dir() or "__MACOSX" in path.parts or path.name.startswith("."):
            continue
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(io.BytesIO(archive.read(info, pwd=pwd))) as inner:
                count += _extract_images(inner, out_dir, pwd)
        elif path.suffix.lower() in IMAGE_SUFFIXES and len(path.parts) >= 2:
            target = out_dir / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info, pwd=pwd))
            count += 1
    return count


def extract_thingsplus_categories(path: Path, out_tsv: Path) -> None:
    """Normalise THINGSplus `category53_longFormat.tsv` (columns category, uniqueID, Word).

    Tolerates a BOM, CRLF, extra columns and stray whitespace; writes the three columns sorted by
    (category, uniqueID) without duplicates, so the table is byte-stable whatever the download.
    """
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in THINGSPLUS_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing THINGSplus column(s) {missing}; has {list(table.columns)}")
    table = table[THINGSPLUS_COLUMNS].apply(lambda column: column.str.strip())
    table = table.drop_duplicates().sort_values(["category", "uniqueID"], kind="stable")
    write_tsv(table.reset_index(drop=True), out_tsv)
