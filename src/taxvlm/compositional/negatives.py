"""Rule-based compositional hard negatives → one tidy table (`image_id`, `caption`, `negative`, `type`,
`valid`, `reason`), seeded per (image, caption, type) so a rerun writes the same bytes.

Types (CE-CLIP's four, plus two taxonomic ones CE-CLIP cannot make):
- `relation`: swap the first two nouns (CE-CLIP's swap), by token spans, so only whole words move
  (the original code's `str.replace` also rewrote substrings: `cat` inside `category`);
- `attribute` / `object` / `action`: replace one adjective / noun / verb;
- `cohyponym` (same category): replace the object noun with a sibling under the same hypernym;
- `cross_category`: replace it with a noun under a different hypernym.
A type a caption cannot make (no noun, adjective or verb; no substitute) is a row with `valid`
False, an empty `negative` and the `reason`, never a filler.

Part-of-speech tagging (**decision**): nltk's averaged-perceptron tagger data is distributed only by
nltk's own downloader; PyPI and Debian carry it only as third-party re-uploads whose provenance
cannot be verified, so tagging is a lexicon lookup (`Lexicon`, built by `lexicon_from_wordnet`):
closed-class words from `CLOSED_CLASS`, the head words of the dataset's concept names as nouns, any
other word by its most frequent WordNet part of speech (SemCor lemma counts, one per synset added so
unseen senses still count), ties noun > adjective > verb; an `-ing` word with a verb sense is a verb.

Fill-mask (**decision**): no genuine masked LM's weights can be fetched here (model hubs are
unreachable; PyPI has only look-alike uploads), so CE-CLIP's masked-LM fill is replaced by lexicon
substitution: an adjective by a WordNet antonym where it has one, else by another adjective of the
captions' vocabulary; a noun or verb by another noun or verb of that vocabulary.

Taxonomy (`Taxonomy`): the dataset's own `concepts.tsv` + `pairs.tsv` (`taxonomy_from_tables`), or
WordNet for captions about things the dataset does not name (`taxonomy_from_wordnet`: a noun's
hypernym is its first sense's first hypernym, its siblings that hypernym's other hyponyms).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from taxvlm.data.errors import read_table
from taxvlm.data.lexicon import indefinite_article, is_plural, plural
from taxvlm.io import write_tsv
from taxvlm.seeding import rng

TYPES = ("relation", "attribute", "object", "action", "cohyponym", "cross_category")
COLUMNS = ["image_id", "caption", "negative", "type", "valid", "reason"]
NOUN, VERB, ADJ, ADV, OTHER = "NOUN", "VERB", "ADJ", "ADV", "OTHER"
_WORDNET_POS = {"n": NOUN, "a": ADJ, "s": ADJ, "v": VERB, "r": ADV}
_PREFERENCE = (NOUN, ADJ, VERB, ADV)  # tie order
_VERB_ENDINGS = ("ing",)  # `-ed` is left to the counts: `moped`, `bed`, `sled` are nouns
_NAMES = {NOUN: "noun", VERB: "verb", ADJ: "adjective"}
CLOSED_CLASS = frozenset("""
    a an the this that these those my your his her its our their some any each every no all both
    of in on at by for with from to into onto over under above below behind beside between near
    inside outside through across along around about against among up down off out and or but
    nor so yet as than if is are was were be been being am has have had do does did will would
    can could may might must shall should it he she they we i you him them us me who which what
    there here not very too also just only one two three four five six seven eight nine ten
    """.split())
_WORD = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    pos: str

    @property
    def lower(self) -> str:
        return self.text.lower()


@dataclass
class Lexicon:
    """Word → part of speech, the substitution pools per part of speech, adjective antonyms."""

    pos: dict[str, str]
    pools: dict[str, list[str]] = field(default_factory=dict)
    antonyms: dict[str, list[str]] = field(default_factory=dict)

    def tag(self, caption: str) -> list[Token]:
        """Word tokens of `caption` with their spans; unknown words are OTHER (never substituted)."""
        return [Token(m.group(), m.start(), m.end(), self._pos(m.group().lower())) for m in _WORD.finditer(caption)]

    def _pos(self, word: str) -> str:
        return OTHER if word in CLOSED_CLASS else self.pos.get(word, OTHER)


@dataclass
class Taxonomy:
    """Noun (surface form, lower case) → its hypernyms."""

    hypernyms: dict[str, frozenset[str]]

    def siblings(self, name: str) -> list[str]:
        own = self.hypernyms[name]
        return sorted(n for n, h in self.hypernyms.items() if n != name and h & own)

    def cross(self, name: str) -> list[str]:
        own = self.hypernyms[name]
        return sorted(n for n, h in self.hypernyms.items() if not h & own)


def taxonomy_from_tables(concepts: pd.DataFrame, pairs: pd.DataFrame) -> Taxonomy:
    """The dataset's taxonomy by surface form (`concepts.name`; concepts without a hypernym left out)."""
    by_concept = pairs.groupby("concept")["hypernym"].agg(frozenset).to_dict()
    out: dict[str, frozenset[str]] = defaultdict(frozenset)
    for row in concepts.itertuples():
        if row.concept in by_concept:
            out[str(row.name).lower()] |= by_concept[row.concept]
    return Taxonomy(dict(out))


def taxonomy_from_wordnet(wn: Any, nouns: Iterable[str]) -> Taxonomy:
    """Each noun and its WordNet siblings (single-word lemmas), keyed by their shared hypernym."""
    out: dict[str, frozenset[str]] = defaultdict(frozenset)
    for noun in sorted(set(nouns)):
        senses = wn.synsets(noun, pos="n")
        parents = sorted(senses[0].hypernyms(), key=lambda synset: synset.name()) if senses else []
        if not parents:
            continue
        parent = parents[0]  # by name: nltk lists a synset's hypernyms in an order that varies by process
        for hyponym in parent.hyponyms():
            for lemma in hyponym.lemma_names():
                if lemma.isalpha():
                    out[lemma.lower()] |= {parent.name()}
        out[noun.lower()] |= {parent.name()}
    return Taxonomy(dict(out))


def wordnet_pos(wn: Any, word: str) -> str:
    """The most frequent part of speech of `word` in WordNet (module docstring), OTHER if absent."""
    counts: dict[str, int] = defaultdict(int)
    for synset in wn.synsets(word):
        pos = _WORDNET_POS.get(synset.pos())
        if pos is not None:
            counts[pos] += 1 + sum(lemma.count() for lemma in synset.lemmas() if lemma.name().lower() == word)
    if not counts:
        return OTHER
    if VERB in counts and word.endswith(_VERB_ENDINGS):
        return VERB  # `-ing` forms (`sleeping`, `riding`) are nouns/adjectives in WordNet far more often
    return max(_PREFERENCE, key=lambda p: (counts.get(p, 0), -_PREFERENCE.index(p)))


def _antonyms(wn: Any, word: str) -> list[str]:
    names = {a.name() for s in wn.synsets(word, pos="a") for lemma in s.lemmas() for a in lemma.antonyms()}
    return sorted(n for n in names if n.isalpha())


def lexicon_from_wordnet(wn: Any, captions: Iterable[str], concept_names: Iterable[str]) -> Lexicon:
    """Tags for the captions' words (concept-name heads are nouns), pools of their words per part of
    speech, and WordNet antonyms of their adjectives."""
    pos = {name.lower().split()[-1]: NOUN for name in concept_names if name.split()}
    words = sorted({m.group().lower() for c in captions for m in _WORD.finditer(c)} - CLOSED_CLASS)
    for word in words:
        pos.setdefault(word, wordnet_pos(wn, word))
    pools: dict[str, list[str]] = defaultdict(list)
    for word in words:
        pools[pos[word]].append(word)
    antonyms = {w: a for w in pools[ADJ] if (a := _antonyms(wn, w))}
    return Lexicon(pos, dict(pools), antonyms)


def edit_spans(caption: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (start, end, text) span replacements (non-overlapping) from the right."""
    for start, end, text in sorted(edits, reverse=True):
        caption = caption[:start] + text + caption[end:]
    return caption


def _with_article(tokens: list[Token], i: int, new: str) -> list[tuple[int, int, str]]:
    """Replace token i by `new`, and a preceding `a`/`an` by the article `new` takes."""
    edits = [(tokens[i].start, tokens[i].end, new)]
    if i == 0 or tokens[i - 1].lower not in ("a", "an"):
        return edits
    article = indefinite_article(new)
    if not article:  # a mass noun or a plural: no article
        return edits + [(tokens[i - 1].start, tokens[i].start, "")]
    if tokens[i - 1].text[0].isupper():
        article = article.capitalize()
    return edits + [(tokens[i - 1].start, tokens[i - 1].end, article)]


def _relation(caption: str, tokens: list[Token], gen: np.random.Generator) -> tuple[str, str]:
    nouns = [i for i, t in enumerate(tokens) if t.pos == NOUN]
    if len(nouns) < 2:
        return "", f"{len(nouns)} noun(s); the swap needs two"
    a, b = nouns[:2]
    if tokens[a].lower == tokens[b].lower:
        return "", "the first two nouns are the same word"
    return edit_spans(caption, _with_article(tokens, a, tokens[b].text) + _with_article(tokens, b, tokens[a].text)), ""


def _substitute(
    caption: str, tokens: list[Token], gen: np.random.Generator, lexicon: Lexicon, pos: str
) -> tuple[str, str]:
    """Replace one seeded word of part of speech `pos` by an antonym (adjectives) or a pool word."""
    slots = [i for i, t in enumerate(tokens) if t.pos == pos]
    if not slots:
        return "", f"no {_NAMES[pos]} in the caption"
    i = slots[int(gen.integers(len(slots)))]
    present = {t.lower for t in tokens}
    candidates = [w for w in lexicon.antonyms.get(tokens[i].lower, []) if w not in present]
    candidates = candidates or [w for w in lexicon.pools.get(pos, []) if w not in present]
    if not candidates:
        return "", f"no substitute for the {_NAMES[pos]} {tokens[i].text!r}"
    return edit_spans(caption, _with_article(tokens, i, candidates[int(gen.integers(len(candidates)))])), ""


def _object_span(tokens: list[Token], taxonomy: Taxonomy, preferred: str | None) -> tuple[int, int, str] | None:
    """Token range [i, j) and taxonomy name of the caption's object: the preferred name (the image's
    concept) if the caption says it (singular, or plural: `-s`/`-es` or inflect's, `mice`), else the
    longest taxonomy name it says (first on ties)."""
    lowers = [t.lower for t in tokens]
    found = []
    for name in taxonomy.hypernyms:
        words = name.split()
        forms = (words[-1], words[-1] + "s", words[-1] + "es", plural(words[-1]))
        for i in range(len(lowers) - len(words) + 1):
            seen = lowers[i : i + len(words)]
            if seen[:-1] == words[:-1] and seen[-1] in forms:
                found.append((name != preferred, -len(words), i, i + len(words), name))
    return min(found)[2:] if found else None


def _taxonomic(
    caption: str,
    tokens: list[Token],
    gen: np.random.Generator,
    taxonomies: Sequence[Taxonomy],
    preferred: str | None,
    same: bool,
) -> tuple[str, str]:
    """Replace the object named in the first taxonomy (in order) that names one."""
    found = ((t, s) for t in taxonomies if (s := _object_span(tokens, t, preferred)) is not None)
    taxonomy, span = next(found, (None, None))
    if span is None:
        return "", "the caption names no noun of the taxonomy"
    i, j, name = span
    candidates = taxonomy.siblings(name) if same else taxonomy.cross(name)
    if not candidates:
        return "", f"{name!r} has no {'sibling' if same else 'noun under another hypernym'}"
    new = candidates[int(gen.integers(len(candidates)))]
    if tokens[j - 1].lower != name.split()[-1] and not is_plural(new):
        new = plural(new)  # the caption said the plural: inflect's (`foxes`, `mice`), not its ending
    edits = _with_article(tokens, i, new)
    edits[0] = (tokens[i].start, tokens[j - 1].end, new)
    return edit_spans(caption, edits), ""


def negatives_for(
    image_id: str,
    caption: str,
    lexicon: Lexicon,
    taxonomies: Sequence[Taxonomy],
    seed: int,
    concept_name: str | None = None,
) -> list[dict[str, Any]]:
    """One row per type for one caption (module docstring); the taxonomic types use the first of
    `taxonomies` that names a noun of the caption (the dataset's, then WordNet's)."""
    tokens = lexicon.tag(caption)
    rows = []
    for kind in TYPES:
        gen = rng(seed, "negative", kind, image_id, caption)
        if kind == "relation":
            negative, reason = _relation(caption, tokens, gen)
        elif kind in ("cohyponym", "cross_category"):
            negative, reason = _taxonomic(caption, tokens, gen, taxonomies, concept_name, kind == "cohyponym")
        else:
            pos = {"attribute": ADJ, "object": NOUN, "action": VERB}[kind]
            negative, reason = _substitute(caption, tokens, gen, lexicon, pos)
        if negative and negative.lower() == caption.lower():
            negative, reason = "", "the negative equals the caption"
        rows.append(
            dict(image_id=image_id, caption=caption, negative=negative, type=kind, valid=bool(negative), reason=reason)
        )
    return rows


def _lower(name: str | None) -> str | None:
    return None if name is None else name.lower()


def generate_negatives(
    captions: pd.DataFrame,
    lexicon: Lexicon,
    taxonomies: Sequence[Taxonomy],
    seed: int,
    concept_names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The hard-negative table of a captions table (`image_id`, `caption`); `concept_names` maps an
    image id to its concept's surface form, the object the taxonomic types replace first."""
    names = concept_names or {}
    rows = [
        row
        for r in captions[["image_id", "caption"]].drop_duplicates().itertuples(index=False)
        for row in negatives_for(r.image_id, r.caption, lexicon, taxonomies, seed, _lower(names.get(r.image_id)))
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    order = frame["type"].map(TYPES.index)
    return frame.assign(_o=order).sort_values(["image_id", "caption", "_o"]).drop(columns="_o").reset_index(drop=True)


def build_negatives(
    captions_path: Path,
    nltk_data_dir: Path,
    seed: int,
    out: Path,
    dataset: tuple[Path, Path, Path] | None = None,
) -> None:
    """negatives.tsv of a captions table (the job the workflow runs). With `dataset` = (concepts.tsv,
    pairs.tsv, images.tsv) the dataset's taxonomy comes first and an image's own concept is the
    object the taxonomic types replace; WordNet's taxonomy covers the other caption nouns (COCO)."""
    from taxvlm.assets.wordnet import load_wordnet

    captions = read_table(captions_path, ["image_id", "caption"])
    wn = load_wordnet(nltk_data_dir)
    concepts = read_table(dataset[0], ["concept", "name"]) if dataset else pd.DataFrame(columns=["concept", "name"])
    lexicon = lexicon_from_wordnet(wn, captions["caption"], concepts["name"])
    taxonomies = [taxonomy_from_wordnet(wn, [w for w, p in lexicon.pos.items() if p == NOUN])]
    names: dict[str, str] = {}
    if dataset:
        pairs = read_table(dataset[1], ["concept", "hypernym"])
        images = read_table(dataset[2], ["image_id", "concept"])
        taxonomies.insert(0, taxonomy_from_tables(concepts, pairs))
        names = images.merge(concepts, on="concept").set_index("image_id")["name"].to_dict()
    write_tsv(generate_negatives(captions, lexicon, taxonomies, seed, names), out)
