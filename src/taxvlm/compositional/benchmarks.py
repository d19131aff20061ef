"""Loaders of the compositional benchmarks, each in its own published file format, → one items table
(`benchmark`, `item`, `image_id` = the image's path as the benchmark names it, `caption`, `negative`,
`type`) that `taxvlm.compositional.evaluation` scores. An `item` is one decision: its true caption
against every negative of its rows (one row for a pair; ARO's order task ranks a caption against four
perturbations at once, so four rows share an item).

| format | file | per item | `type` |
|---|---|---|---|
| `sugarcrepe` | `{type}.json`: `{id: {filename, caption, negative_caption}}` | one pair | file key (`swap_att`) |
| `aro_relation` | `visual_genome_relation.json`: `[{image_path, true_caption, false_caption, relation_name, bbox_*}]` | one pair | `vg_relation` |
| `aro_attribution` | `visual_genome_attribution.json`: `[{image_path, true_caption, false_caption, bbox_*}]` | one pair | `vg_attribution` |
| `aro_order` | Karpathy test split `[{image, caption: [..]}]` (COCO, Flickr30k) | each caption vs its perturbations | `order` |
| `valse` | `{piece}.json`: `{id: {image_file, caption, foil}}` | one pair | file key (`existence`) |
| `vlchecklist` | `[[image, {POS: [..], NEG: [..]}]]` | POS[i] vs NEG[i] | file key (`Attribute/vg/color`) |

ARO's order task, as its code scores it: every caption of the split against its perturbations
(`perturbation` column), all cleaned by ARO's `pre_caption` (lower case, `.!"()*#:;~` removed, 30 words);
the item is correct when the caption has the highest score, a tie going to the caption (ARO takes
`np.argmax` over `[caption, *perturbations]`): `ties_win` is True on these rows. The perturbations are
seeded per caption: `shuffle_trigrams` and `shuffle_within_trigrams` always (on word and punctuation
tokens, a regular expression standing in for nltk's `word_tokenize`, whose tokenizer data is not
fetchable here); `shuffle_nouns_and_adj` (nouns among nouns, adjectives among adjectives) and
`shuffle_allbut_nouns_and_adj` when a `Lexicon` tags the words (the workflow builds one from WordNet,
as for the hard negatives; ARO uses spaCy). Without a lexicon an item has only the two trigram
perturbations, which is not ARO's task: the workflow always passes one. ARO reports VG-Relation as a
macro average over relations: `relation_name` is kept for that. ARO crops each Visual Genome image to
the item's box before encoding it: `bbox_x`, `bbox_y`, `bbox_w`, `bbox_h` are kept (`CROP_COLUMNS`) and
the scorers crop (`taxvlm.compositional.evaluation.image_views`).

Every file is checked against its sha256 (when the config pins one) before it is parsed; a wrong
hash or a missing key fails with the file and the key (column) named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from taxvlm.compositional.negatives import ADJ, NOUN, Lexicon, edit_spans
from taxvlm.data.errors import DataError
from taxvlm.io import sha256_file
from taxvlm.seeding import rng

COLUMNS = ["benchmark", "item", "image_id", "caption", "negative", "type"]
ORDER_PERTURBATIONS = ("shuffle_trigrams", "shuffle_within_trigrams")
TAGGED_PERTURBATIONS = ("shuffle_nouns_and_adj", "shuffle_allbut_nouns_and_adj")  # need a `Lexicon`
CROP_COLUMNS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")  # ARO's VG sets: the region scored
ORDER_MAX_WORDS = 30  # ARO's `max_words` for COCO / Flickr30k order
_ARO_PUNCTUATION = re.compile(r"[.!\"()*#:;~]")
_TOKEN = re.compile(r"[^\W_]+(?:-[^\W_]+)*|'\w+|[^\w\s]")


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


def _read_json(path: Path) -> Any:
    """The parsed file; a download that is not JSON (an HTML error or confirmation page) names the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a JSON file ({err})") from None


def _keyed_pairs(path: Path, kind: str, image: str, caption: str, negative: str) -> list[dict[str, str]]:
    """`{id: {image, caption, negative}}` files (SugarCrepe, VALSE)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object of items, got a {type(data).__name__}")
    rows = []
    for key, item in data.items():
        _require(path, key, item, (image, caption, negative))
        rows.append(
            dict(item=str(key), image_id=item[image], caption=item[caption], negative=item[negative], type=kind)
        )
    return rows


def _listed(path: Path) -> list[Any]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of items, got a {type(data).__name__}")
    return data


def _aro_pairs(path: Path, kind: str, extra: tuple[str, ...] = ()) -> list[dict[str, str]]:
    rows = []
    for i, item in enumerate(_listed(path)):
        _require(path, i, item, ("image_path", "true_caption", "false_caption", *CROP_COLUMNS, *extra))
        row = dict(
            item=str(i),
            image_id=item["image_path"],
            caption=item["true_caption"],
            negative=item["false_caption"],
            type=kind,
        )
        rows.append(row | {k: item[k] for k in (*CROP_COLUMNS, *extra)})
    return rows


def _vlchecklist(path: Path, kind: str) -> list[dict[str, str]]:
    rows = []
    for i, item in enumerate(_listed(path)):
        if not (isinstance(item, list) and len(item) == 2):
            raise DataError(f"{path}: item {i} is not an [image, {{POS, NEG}}] pair")
        _require(path, i, item[1], ("POS", "NEG"))
        for j, (positive, negative) in enumerate(zip(item[1]["POS"], item[1]["NEG"])):
            rows.append(dict(item=f"{i}/{j}", image_id=item[0], caption=positive, negative=negative, type=kind))
    return rows


def aro_text(caption: str, max_words: int = ORDER_MAX_WORDS) -> str:
    """ARO's `pre_caption`: lower case, its punctuation set replaced by spaces, runs of spaces
    collapsed, at most `max_words` words; applied to a caption and to each of its perturbations."""
    return " ".join(_ARO_PUNCTUATION.sub(" ", caption.lower()).split()[:max_words])


def _tagged_shuffle(caption: str, perturbation: str, gen: Any, lexicon: Lexicon) -> str:
    """Nouns among nouns and adjectives among adjectives, or every other word among themselves."""
    tokens = lexicon.tag(caption)
    if perturbation == TAGGED_PERTURBATIONS[0]:
        groups = [[i for i, t in enumerate(tokens) if t.pos == pos] for pos in (NOUN, ADJ)]
    else:
        groups = [[i for i, t in enumerate(tokens) if t.pos not in (NOUN, ADJ)]]
    edits = []
    for slots in groups:
        order = gen.permutation(len(slots))
        edits += [(tokens[i].start, tokens[i].end, tokens[slots[j]].text) for i, j in zip(slots, order)]
    return edit_spans(caption, edits)


def perturb(caption: str, perturbation: str, seed: int, lexicon: Lexicon | None = None) -> str:
    """One of ARO's word-order perturbations of the raw caption, seeded by the caption. The two that
    move nouns and adjectives (or everything else) tag words with `lexicon`
    (taxvlm.compositional.negatives); the trigram ones split words and punctuation as nltk does."""
    gen = rng(seed, "aro-order", perturbation, caption)
    if perturbation in TAGGED_PERTURBATIONS:
        if lexicon is None:
            raise ValueError(f"ARO order perturbation {perturbation!r} needs a lexicon (a tagger)")
        return _tagged_shuffle(caption, perturbation, gen, lexicon)
    words = _TOKEN.findall(caption)
    trigrams = [words[i : i + 3] for i in range(0, len(words), 3)]
    if perturbation == "shuffle_trigrams":
        return " ".join(w for i in gen.permutation(len(trigrams)) for w in trigrams[i])
    if perturbation == "shuffle_within_trigrams":
        return " ".join(w for t in trigrams for w in (t[i] for i in gen.permutation(len(t))))
    known = [*ORDER_PERTURBATIONS, *TAGGED_PERTURBATIONS]
    raise ValueError(f"ARO order perturbation {perturbation!r}; known: {known}")


def _aro_order(path: Path, seed: int, lexicon: Lexicon | None) -> list[dict[str, Any]]:
    """One item per caption: the cleaned caption against its cleaned perturbations (module docstring)."""
    names = (TAGGED_PERTURBATIONS if lexicon is not None else ()) + ORDER_PERTURBATIONS  # ARO's order
    rows = []
    for i, item in enumerate(_listed(path)):
        _require(path, i, item, ("image", "caption"))
        captions = item["caption"] if isinstance(item["caption"], list) else [item["caption"]]
        for c, caption in enumerate(captions):
            rows += [
                dict(
                    item=f"{i}/{c}",
                    image_id=item["image"],
                    caption=aro_text(caption),
                    negative=aro_text(perturb(caption, name, seed, lexicon)),
                    type="order",
                    perturbation=name,
                    ties_win=True,
                )
                for name in names
            ]
    return rows


LOADERS: dict[str, Callable[[Path, str, int, Lexicon | None], list[dict[str, Any]]]] = {
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
        rows += [row | {"item": f"{key}/{row['item']}"} for row in LOADERS[fmt](Path(path), key, seed, lexicon)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame.insert(0, "benchmark", name)
    return frame
