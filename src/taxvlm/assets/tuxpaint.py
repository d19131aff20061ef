"""Unpack the stamp images of the Debian `tuxpaint-stamps-default` package (no install, no root).

`dpkg-deb -x` where it exists; elsewhere the .deb is read directly (an `ar` archive whose
`data.tar.*` member holds the files), so non-Debian machines work too. Links never survive into the
output: a symbolic link that resolves to a file inside the stamps tree becomes a copy of it, any other
(absolute, or pointing outside once the tree is moved) is dropped with a warning, and the fallback
skips link members of the tar.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from taxvlm.io import atomic_dir

log = logging.getLogger(__name__)

STAMPS = Path("usr/share/tuxpaint/stamps")
AR_MAGIC = b"!<arch>\n"
AR_HEADER_SIZE = 60


def extract_stamps(deb: Path, out_dir: Path) -> None:
    """Write the package's `usr/share/tuxpaint/stamps` tree to `out_dir`, atomically."""
    with atomic_dir(out_dir) as tmp:
        root = tmp / "root"
        if shutil.which("dpkg-deb"):
            _dpkg_extract(deb, root)
        else:
            log.info("dpkg-deb not found; reading %s as an ar archive", deb)
            _extract_data_tar(deb, root, STAMPS)
        if not (root / STAMPS).is_dir() or (root / STAMPS).is_symlink():
            raise FileNotFoundError(f"{deb}: no {STAMPS}/ in the package")
        _resolve_links(root / STAMPS)
        for child in (root / STAMPS).iterdir():
            child.rename(tmp / child.name)
        shutil.rmtree(root)


def _resolve_links(tree: Path) -> None:
    """Replace each symlink under `tree` by a copy of its target when that is a file inside `tree`;
    drop the others (they would point outside the output, or nowhere, after the move)."""
    inside = tree.resolve()
    dropped = []
    entries = (Path(folder) / name for folder, dirs, files in os.walk(tree) for name in dirs + files)
    for link in sorted(p for p in entries if p.is_symlink()):  # os.walk never follows links
        target = link.resolve()
        link.unlink()
        if target.is_relative_to(inside) and target.is_file():
            shutil.copyfile(target, link)
        else:
            dropped.append(str(link.relative_to(tree)))
    if dropped:
        log.warning("dropped %d link(s) that leave the stamps folder: %s", len(dropped), dropped[:5])


def _dpkg_extract(deb: Path, dest: Path) -> None:
    proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dpkg-deb -x {deb} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")


def _extract_data_tar(deb: Path, dest: Path, subtree: Path) -> None:
    """Extract the members of the .deb's `data.tar.*` that lie under `subtree`."""
    with tarfile.open(fileobj=io.BytesIO(_ar_member(deb, "data.tar"))) as tar:
        wanted = [m for m in tar.getmembers()
                  if Path(m.name.removeprefix("./")).is_relative_to(subtree) and not (m.issym() or m.islnk())]
        tar.extractall(dest, members=wanted, filter="data")


def _ar_member(archive: Path, prefix: str) -> bytes:
    """The content of the first member of an `ar` archive whose name starts with `prefix`."""
    with open(archive, "rb") as handle:
        if handle.read(len(AR_MAGIC)) != AR_MAGIC:
            raise ValueError(f"{archive} is not a .deb (ar) archive")
        while header := handle.read(AR_HEADER_SIZE):
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58])
            if name.startswith(prefix):
                return handle.read(size)
            handle.seek(size + size % 2, io.SEEK_CUR)  # members are 2-byte aligned
    raise ValueError(f"{archive} has no {prefix}* member")
