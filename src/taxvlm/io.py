"""Atomic, deterministic file output.

Every file the pipeline writes goes through here so that a killed job never leaves a half-written
file that a later run would trust, and so that the same data always gives the same bytes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


class CorruptResultError(RuntimeError):
    """A result file that cannot be read back (truncated, overwritten, not what its writer wrote)."""


class DiskFullError(OSError):
    """A result could not be written because its file system is full; nothing was left in its place."""


def rebuild_hint(path: str | os.PathLike[str]) -> str:
    """How a user replaces a damaged result: Snakemake reruns the job that writes it."""
    return (f"rebuild it with `snakemake --forcerun {path}` (plus your usual options and targets), "
            "or delete it and run snakemake again")


def corrupt_result(path: str | os.PathLike[str], what: str) -> CorruptResultError:
    return CorruptResultError(f"{path}: {what}; {rebuild_hint(path)}")


# below this much free space a failed write is taken for a full disk (writers such as torch.save
# report ENOSPC as a generic "file write failed")
_FULL_BELOW = 256 * 1024


def _disk_full(err: BaseException, folder: Path) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "No space left on device" in str(err):
        return True
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return isinstance(err, (OSError, RuntimeError)) and not isinstance(err, CorruptResultError) and stats.f_bavail * stats.f_frsize < _FULL_BELOW


def _remove_stale(target: Path) -> None:
    """Temporary files and folders a killed writer of `target` left (SIGKILL runs no `finally`).

    Only one job writes a given output, and Snakemake's lock keeps a second run out, so a sibling
    temporary of the same target is never in use when its target is being written again.
    """
    stale = re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]{{8}}\.tmp")
    with os.scandir(target.parent) as entries:
        for entry in entries:
            if stale.fullmatch(entry.name):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)


def _umask() -> int:
    """The process umask (reading it means setting it; it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    `mkstemp` creates the file 0600; it gets the mode an ordinary `open` would (0666 less the umask)
    before it appears, so collaborators on shared storage can read results as the umask intends.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():
            tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, target)
    except Exception as err:
        if _disk_full(err, target.parent):
            raise DiskFullError(errno.ENOSPC, f"No space left on device while writing {target} "
                                "(nothing was written there); free space, then run snakemake again") from err
        raise
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it replaces `path` only if the block succeeds.

    Built beside the target (same filesystem) so the final step is a rename, not a copy.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; the output is an ordinary folder
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except Exception as err:
        if _disk_full(err, target.parent):
            raise DiskFullError(errno.ENOSPC, f"No space left on device while writing {target}/ "
                                "(nothing was written there); free space, then run snakemake again") from err
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Sorted keys and a trailing newline: byte-identical for equal objects."""
    write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", path)


def read_json(path: str | os.PathLike[str]) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise corrupt_result(path, f"unreadable JSON ({err})") from err


def write_tsv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, lineterminator="\n")


def read_tsv(path: str | os.PathLike[str], *, complete: bool = True) -> pd.DataFrame:
    """Read a pipeline table; strings stay strings (no 'NA' → NaN surprises for names like 'nan').

    A table this pipeline wrote ends with a newline (`write_tsv`); one that does not was cut short
    after it was written, and the error names it and the command that rebuilds it instead of a pandas
    traceback or, worse, a silently shorter table (pandas reads a cut last row's missing fields as "").
    A cut exactly at a line end is not detectable here. `complete=False` (tables users write, which
    may lack the final newline) drops that check.
    """
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise corrupt_result(path, f"unreadable table ({reason})") from err
    if complete:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                raise corrupt_result(path, "empty table (not even a header)")
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                raise corrupt_result(path, "truncated table (its last line is incomplete)")
    return frame


def save_pt(obj: Any, path: str | os.PathLike[str]) -> None:
    """`torch.save` of a result, atomically and with the same bytes on every run: saved through a file
    object, so the archive's inner folder is torch's fixed `archive/`; saved to a path, torch names it
    after the file, here the random temporary name."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def load_pt(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """`torch.load` of a result: a damaged file is named with the command that rebuilds it, not left
    to a traceback deep in torch's unpickler or zip reader."""
    import torch

    try:
        return torch.load(path, **{"map_location": "cpu", "weights_only": True, **kwargs})
    except FileNotFoundError:
        raise
    except Exception as err:  # RuntimeError, EOFError, UnpicklingError, ... for damaged files
        # not torch's own hint (an unpickling error suggests weights_only=False, which is not the fix)
        detail = "" if isinstance(err, pickle.UnpicklingError) else ": " + str(err).strip()[:120].split("\n")[0]
        raise corrupt_result(path, f"unreadable torch file ({type(err).__name__}{detail})") from err


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
