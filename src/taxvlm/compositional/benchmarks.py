"""Loaders of the compositional benchmarks, each in its own published file format, → one items table
(`benchmark`, `image_id` = the image's path as the benchmark names it, `caption`, `negative`, `type`)
that `taxvlm.compositional.evaluation` scores.

| format | file | per item | `type` |
|---|---|---|---|
| `sugarcrepe` | `{type}.json`: `{id: {filename, caption, negative_caption}}` | one pair | file key (`swap_att`) |
| `aro_relation` | `visual_genome_relation.json`: `[{image_path, true_caption, false_caption, relation_name}]` | one pair | `vg_relation` |
| `aro_attribution` | `visual_genome_attribution.json`: `[{image_path, true_caption, false_caption}]` | one pair | `vg_attribution` |
| `aro_order` | Karpathy test split `[{image, caption: [..]}]` (COCO, Flickr30k) | each caption × perturbation | `order_{perturbation}` |
| `valse` | `{piece}.json`: `{id: {image_file, caption, foil}}` | one pair | file key (`existence`) |
| `vlchecklist` | `[[image, {POS: [..], NEG: [..]}]]` | POS[i] vs NEG[i] | file key (`Attribute/vg/color`) |

ARO's order task ranks the true caption against four perturbations at once; here each perturbation is
its own pair (the SugarCrepe-style score), seeded per caption: `shuffle_trigrams` and
`shuffle_within_trigrams` always, `shuffle_nouns_and_adj` / `shuffle_allbut_nouns_and_adj` when a
`Lexicon` tags the words (the workflow builds one from WordNet, as for the hard negatives). ARO reports VG-Relation as
a macro average over relations: `relation_name` is kept for that.

Every file is checked against its sha256 (when the config pins one) before it is parsed; a wrong
hash or a missing key fails with the file and the key (column) named.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from taxvlm.compositional.negatives import ADJ, NOUN, Lexicon, edit_spans
from taxvlm.data.errors import DataError
from taxvlm.io import sha256_file
from taxvlm.seeding import rng

COLUMNS = ["benchmark", "image_id", "caption", "negative", "type"]
ORDER_PERTURBATIONS = ("shuffle_trigrams", "shuffle_within_trigrams")
TAGGED_PERTURBATIONS = ("shuffle_nouns_and_adj", "shuffle_allbut_nouns_and_adj")  # need a `Lexicon`


def verify_file(path: Path, sha256: str | None) -> None:
    """Fail unless `path` exists and (when pinned) has the expected sha256."""
    if not Path(path).is_file():
        raise DataError(f"benchmark file not found: {path}")
    if sha256 and (actual := sha256_file(path)) != sha256.lower():
        raise DataError(f"{path}: sha256 {actual} does not match the config's {sha256}")


def _require(path: Path, key: Any, item: Any, columns: tuple[str, ...]) -> None:
    if not isinstance(item, dict):
        raise DataError(f"{path}: item {key!r} is a {type(item).__name__}, expected an object")
    missing = [c for c in columns if c not in item]
    if missing:
        raise DataError(f"{path}: item {key!r} has no column {missing[0]!r}; it has {sorted(item)}")


def _keyed_pairs(path: Path, kind: str, image: str, caption: str, negative: str) -> list[dict[str, str]]:
    """`{id: {image, caption, negative}}` files (SugarCrepe, VALSE)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object of items, got a {type(data).__name__}")
    rows = []
    for key, item in data.items():
        _require(path, key, item, (image, caption, negative))
        rows.append(dict(image_id=item[image], caption=item[caption], negative=item[negative], type=kind))
    return rows


def _listed(path: Path) -> list[Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of items, got a {type(data).__name__}")
    return data


def _aro_pairs(path: Path, kind: str, extra: tuple[str, ...] = ()) -> list[dict[str, str]]:
    rows = []
    for i, item in enumerate(_listed(path)):
        _require(path, i, item, ("image_path", "true_caption", "false_caption", *extra))
        row = dict(image_id=item["image_path"], caption=item["true_caption"], negative=item["false_caption"], type=kind)
        rows.append(row | {k: item[k] for k in extra})
    return rows


def _vlchecklist(path: Path, kind: str) -> list[dict[str, str]]:
    rows = []
    for i, item in enumerate(_listed(path)):
        if not (isinstance(item, list) and len(item) == 2):
            raise DataError(f"{path}: item {i} is not an [image, {{POS, NEG}}] pair")
        _require(path, i, item[1], ("POS", "NEG"))
        for positive, negative in zip(item[1]["POS"], item[1]["NEG"]):
            rows.append(dict(image_id=item[0], caption=positive, negative=negative, type=kind))
    return rows


def perturb(caption: str, perturbation: str, seed: int, lexicon: Lexicon | None = None) -> str:
    """One of ARO's word-order perturbations, seeded by the caption. The two that move nouns and
    adjectives (or everything else) tag words with `lexicon` (taxvlm.compositional.negatives)."""
    gen = rng(seed, "aro-order", perturbation, caption)
    if perturbation in TAGGED_PERTURBATIONS:
        if lexicon is None:
            raise ValueError(f"ARO order perturbation {perturbation!r} needs a lexicon (a tagger)")
        tokens = lexicon.tag(caption)
        moving = [
            i for i, t in enumerate(tokens) if (t.pos in (NOUN, ADJ)) == (perturbation == TAGGED_PERTURBATIONS[0])
        ]
        order = gen.permutation(len(moving))
        return edit_spans(
            caption, [(tokens[i].start, tokens[i].end, tokens[moving[j]].text) for i, j in zip(moving, order)]
        )
    words = caption.split()
    trigrams = [words[i : i + 3] for i in range(0, len(words), 3)]
    if perturbation == "shuffle_trigrams":
        return " ".join(w for i in gen.permutation(len(trigrams)) for w in trigrams[i])
    if perturbation == "shuffle_within_trigrams":
        return " ".join(w for t in trigrams for w in (t[i] for i in gen.permutation(len(t))))
    known = [*ORDER_PERTURBATIONS, *TAGGED_PERTURBATIONS]
    raise ValueError(f"ARO order perturbation {perturbation!r}; known: {known}")


def _aro_order(path: Path, seed: int, lexicon: Lexicon | None) -> list[dict[str, str]]:
    names = ORDER_PERTURBATIONS + (TAGGED_PERTURBATIONS if lexicon is not None else ())
    rows = []
    for i, item in enumerate(_listed(path)):
        _require(path, i, item, ("image", "caption"))
        captions = item["caption"] if isinstance(item["caption"], list) else [item["caption"]]
        for caption in captions:
            for name in names:
                negative = perturb(caption, name, seed, lexicon)
                rows.append(dict(image_id=item["image"], caption=caption, negative=negative, type=f"order_{name}"))
    return rows


LOADERS: dict[str, Callable[[Path, str, int, Lexicon | None], list[dict[str, str]]]] = {
    "sugarcrepe": lambda p, k, s, x: _keyed_pairs(p, k, "filename", "caption", "negative_caption"),
    "valse": lambda p, k, s, x: _keyed_pairs(p, k, "image_file", "caption", "foil"),
    "vlchecklist": lambda p, k, s, x: _vlchecklist(p, k),
    "aro_relation": lambda p, k, s, x: _aro_pairs(p, "vg_relation", ("relation_name",)),
    "aro_attribution": lambda p, k, s, x: _aro_pairs(p, "vg_attribution"),
    "aro_order": lambda p, k, s, x: _aro_order(p, s, x),
}


def load_benchmark(
    name: str,
    fmt: str,
    files: dict[str, Path],
    sha256: dict[str, str | None],
    seed: int = 0,
    lexicon: Lexicon | None = None,
) -> pd.DataFrame:
    """The items of one benchmark from its files (file key → path), each verified first; `lexicon`
    (ARO order only) adds ARO's two tagged perturbations."""
    if fmt not in LOADERS:
        raise DataError(f"benchmark {name!r}: unknown format {fmt!r}; known: {sorted(LOADERS)}")
    rows = []
    for key, path in sorted(files.items()):
        verify_file(path, sha256.get(key))
        rows += LOADERS[fmt](Path(path), key, seed, lexicon)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame.insert(0, "benchmark", name)
    return frame
