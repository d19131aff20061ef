"""THINGS images and THINGSplus categories, for users who have the OSF downloads (not reachable here).

The THINGS image archives are zips encrypted with a public password (stated on OSF, set in the
config); members are per-concept folders (`object_images/<concept>/<file>.jpg`), sometimes inside
further zips. Python's zipfile decrypts ZipCrypto in pure Python, well over an order of magnitude
slower than Info-ZIP `unzip -P` (hours rather than minutes for THINGS), so `unzip` decrypts when it is
on the PATH, and zipfile is the fallback. Either way, every member
name is checked first (from the central directory, which is not encrypted), and each image is copied
into place by this module, never written by the archive.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

import pandas as pd

from taxvlm.io import atomic_dir, write_tsv
from taxvlm.progress import Progress

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
THINGSPLUS_COLUMNS = ["category", "uniqueID", "Word"]
_LINK = 0o120000  # S_IFLNK in a member's Unix mode (external_attr >> 16)


def extract_things_images(zip_paths: Sequence[Path], out_dir: Path, password: str) -> None:
    """Write every image of the archives (THINGS ships A-C, D-K, ...) to `out_dir/<concept>/<file>`.

    All archives go into one folder that appears only once every archive has been read. A member
    name with an absolute, empty, `.` or `..` part (which could write outside `out_dir`), a link
    member, or an image that two members would both write refuses the whole extraction.
    """
    with atomic_dir(out_dir) as tmp, Progress(desc="THINGS unzip", unit="image") as bar:
        extraction = _Extraction(tmp, password, shutil.which("unzip"), bar)
        for zip_path in zip_paths:
            if extraction.extract(Path(zip_path), str(zip_path)) == 0:
                raise FileNotFoundError(f"{zip_path}: no <concept>/<image> members found")


def safe_member(name: str, source: str) -> PurePosixPath:
    """The member's path, refused when any part could leave the output folder."""
    path = name.rstrip("/")
    parts = path.split("/")
    if name.startswith("/") or "\\" in name or ":" in parts[0] or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{source}: unsafe member name {name!r}")
    return PurePosixPath(path)


@dataclass
class _Extraction:
    out_dir: Path
    password: str
    unzip: str | None  # Info-ZIP unzip, or None for Python's zipfile
    bar: Progress
    written: dict[str, str] = field(default_factory=dict)  # `<concept>/<file>` → the member that wrote it

    def extract(self, zip_file: Path, source: str) -> int:
        """Extract the images of one archive (recursing into nested zips); return how many."""
        with zipfile.ZipFile(zip_file) as archive:
            members = self._members(archive, source)
            if self.unzip is None:
                return self._place(members, source, lambda info: archive.open(info, pwd=self.password.encode()))
        with tempfile.TemporaryDirectory(dir=self.out_dir.parent) as scratch:
            self._run_unzip(zip_file, Path(scratch))
            return self._place(members, source, lambda info: open(Path(scratch) / info.filename, "rb"))

    def _members(self, archive: zipfile.ZipFile, source: str) -> list[tuple[PurePosixPath, zipfile.ZipInfo]]:
        """Checked names of the images and nested zips, in archive order; images are claimed here."""
        kept = []
        for info in archive.infolist():
            path = safe_member(info.filename, source)
            if (info.external_attr >> 16) & 0o170000 == _LINK:
                raise ValueError(f"{source}: member {info.filename!r} is a link")
            if info.is_dir() or "__MACOSX" in path.parts or path.name.startswith("."):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES and len(path.parts) >= 2:
                key = f"{path.parent.name}/{path.name}"
                if key in self.written:
                    raise ValueError(f"{source}: duplicate image {key!r} ({info.filename!r}; also {self.written[key]!r})")
                self.written[key] = f"{source}!{info.filename}"
            elif path.suffix.lower() != ".zip":
                continue
            kept.append((path, info))
        return kept

    def _place(
        self, members: list[tuple[PurePosixPath, zipfile.ZipInfo]], source: str,
        opener: Callable[[zipfile.ZipInfo], IO[bytes]],
    ) -> int:
        """Copy each image into place and recurse into nested zips (spooled to disk, never to memory)."""
        count = 0
        for path, info in members:
            with opener(info) as member:
                if path.suffix.lower() == ".zip":
                    with tempfile.NamedTemporaryFile(dir=self.out_dir.parent) as spool:
                        shutil.copyfileobj(member, spool, 1 << 20)
                        spool.flush()
                        count += self.extract(Path(spool.name), f"{source}!{info.filename}")
                    continue
                target = self.out_dir / path.parent.name / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "xb") as handle:
                    shutil.copyfileobj(member, handle, 1 << 20)
            count += 1
            self.bar.update()
        return count

    def _run_unzip(self, zip_file: Path, scratch: Path) -> None:
        """Decrypt the whole archive into `scratch` with Info-ZIP (names already checked; no prompts)."""
        cmd = [str(self.unzip), "-qq", "-o", "-P", self.password, str(zip_file), "-d", str(scratch)]
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode not in (0, 1):  # 1: warnings only
            raise RuntimeError(f"unzip {zip_file} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")


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
