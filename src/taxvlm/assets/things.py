"""THINGS images and THINGSplus categories, for users who have the OSF downloads (not reachable here).

The THINGS image archives are zips encrypted with a public password (stated on OSF, set in the
config); members are per-concept folders (`object_images/<concept>/<file>.jpg`), sometimes inside
further zips. Python's zipfile decrypts them (slowly, but with no extra tool).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pandas as pd

from taxvlm.io import atomic_dir, write_tsv
from taxvlm.progress import Progress

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
THINGSPLUS_COLUMNS = ["category", "uniqueID", "Word"]


def extract_things_images(zip_paths: Sequence[Path], out_dir: Path, password: str) -> None:
    """Write every image of the archives (THINGS ships A-C, D-K, ...) to `out_dir/<concept>/<file>`.

    All archives go into one folder that appears only once every archive has been read. A member
    name with an absolute, empty, `.` or `..` part (which could write outside `out_dir`) or an image
    that two members would both write refuses the whole extraction.
    """
    with atomic_dir(out_dir) as tmp, Progress(desc="THINGS unzip", unit="image") as bar:
        written: dict[str, str] = {}
        for zip_path in zip_paths:
            with zipfile.ZipFile(zip_path) as archive:
                if _extract_images(archive, str(zip_path), tmp, password.encode(), written, bar) == 0:
                    raise FileNotFoundError(f"{zip_path}: no <concept>/<image> members found")


def safe_member(name: str, source: str) -> PurePosixPath:
    """The member's path, refused when any part could leave the output folder."""
    path = name.rstrip("/")
    parts = path.split("/")
    if name.startswith("/") or "\\" in name or ":" in parts[0] or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{source}: unsafe member name {name!r}")
    return PurePosixPath(path)


def _extract_images(
    archive: zipfile.ZipFile, source: str, out_dir: Path, pwd: bytes, written: dict[str, str], bar: Progress
) -> int:
    """Extract images, streaming (nested zips are spooled to a temporary file, never held in memory);
    return how many were written. `written` maps `<concept>/<file>` to the member that wrote it."""
    count = 0
    for info in archive.infolist():
        path = safe_member(info.filename, source)
        if info.is_dir() or "__MACOSX" in path.parts or path.name.startswith("."):
            continue
        if path.suffix.lower() == ".zip":
            with tempfile.TemporaryFile(dir=out_dir.parent) as spool:
                with archive.open(info, pwd=pwd) as member:
                    shutil.copyfileobj(member, spool, 1 << 20)
                with zipfile.ZipFile(spool) as inner:
                    count += _extract_images(inner, f"{source}!{info.filename}", out_dir, pwd, written, bar)
        elif path.suffix.lower() in IMAGE_SUFFIXES and len(path.parts) >= 2:
            key = f"{path.parent.name}/{path.name}"
            if key in written:
                raise ValueError(f"{source}: duplicate image {key!r} ({info.filename!r}; also {written[key]!r})")
            written[key] = f"{source}!{info.filename}"
            target = out_dir / key
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info, pwd=pwd) as member, open(target, "xb") as handle:
                shutil.copyfileobj(member, handle, 1 << 20)
            count += 1
            bar.update()
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
