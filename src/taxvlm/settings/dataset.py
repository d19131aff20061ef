"""`dataset`, `split`, `questions`, `conditions`, `shuffles`: what the images, questions and
deprivation conditions are built from."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from taxvlm.grid import ConfigError
from taxvlm.settings.base import Section, optional, section

CAPTIONS = (
    "optional `image_id<TAB>caption` TSV (ids `<concept>/<file stem>`; several rows per image allowed; an "
    "unknown image id or an empty caption is one clear error); uncaptioned images get "
    '"A picture of {article} {name}."'
)


class TargetRule(Section):
    """Adds to `target_synsets` every WordNet noun above >= `min_leaves` matched stamps, >= `min_depth`
    below `entity`, whose first lemma is tagged >= `min_count` times in SemCor; of synsets above the
    same stamps only the most specific (`taxvlm.data.datasets.rule_targets`, docs/protocol.md §3);
    `results/data/hypernyms.tsv` lists what it picked."""

    min_leaves: int = Field(3, ge=1, description="matched stamps below the noun")
    min_depth: int = Field(5, ge=0, description="levels below `entity`")
    min_count: int = Field(5, ge=0, description="SemCor tags of its first lemma")


class Tuxpaint(Section):
    """The Tux Paint stamps as concepts, one image each, so `views_per_concept` seeded augmented views
    (crop, flip, scale, background) stand in for THINGS' >= 12 photos per concept: a smoke-scale
    stand-in for THINGS (fewer concepts, synthetic views of one picture)."""

    asset: str = Field(description="the `assets` key of the stamps package")
    wordnet_asset: str = Field(description="the `assets` key of the WordNet sdist")
    skip_folders: list[str] = Field(["cartoon", "symbols", "town"], description="stamp folders left out")
    hypernym_source: Literal["wordnet", "folders", "both"] = Field(
        "wordnet",
        description="`wordnet`: target synsets on the noun's hypernym paths; `folders`: the stamp category "
        "folders; `both`",
    )
    target_synsets: list[Annotated[str, Field(pattern=r"^.+\.n\.\d+$")]] | None = optional(
        description="the WordNet synsets used as hypernyms (named by their first lemma)"
    )
    target_rule: TargetRule | None = Field(None, description="null = `target_synsets` only")
    synset_overrides: dict[str, str] = Field({}, description="`{concept: synset}` where the first noun sense is wrong")
    views_per_concept: int = Field(12, ge=2, description="seeded augmented views of each stamp")
    image_size: int = Field(224, ge=16, description="side of the rendered views")
    seed: int = Field(0, description="seed of the augmented views")


class Things(Section):
    """THINGS images with THINGSplus categories as hypernyms."""

    images_assets: list[str] = Field(min_length=1, description="`assets` keys of the image archives")
    images_password: str | None = optional(nullable=True, description="the archives' public password")
    categories: str = Field(description="THINGSplus `category53_longFormat.tsv`")
    pairs: str = Field(description="leaf–hypernym pairs TSV selecting the leaf set")
    hypernym_forms: str | None = optional(
        description="`hypernym<TAB>question_form` TSV: how a question names a category (`part of car` is asked as "
        '"Is there a car part in this image?"); categories not listed are asked by their own name; results are '
        "always reported under the category name",
    )
    leaf_set: Literal["all", "xu2026"] = Field(
        "all",
        description="`all`: every THINGSplus concept with a category; `xu2026`: the paper's 1,222 leaves / 2,040 "
        "pairs given by `pairs`",
    )
    captions: str | None = optional(description=CAPTIONS)


class Folder(Section):
    """Your own data."""

    images: str = Field(description="`images/<concept>/<image files>`")
    hypernyms: str = Field(
        description="`concept<TAB>hypernym` TSV, one row per pair; optional columns: `name`, `article` (overrides "
        "a/an), `question_form` (overrides how the hypernym is asked)"
    )
    captions: str | None = optional(description=CAPTIONS)


class Dataset(Section):
    """Which reader builds the concepts, images and hypernyms; all three write the same tables, among
    them `results/data/hypernyms.tsv`, the one lexicon table questions and text probes word hypernyms from."""

    kind: Literal["tuxpaint", "things", "folder"] = Field(description="the reader; its section below is required")
    max_concepts: int | None = Field(None, ge=2, description="seeded sample of usable concepts (null = all)")
    sample_seed: int = Field(0, description="seed of the `max_concepts` sample")
    tuxpaint: Tuxpaint | None = optional()
    things: Things | None = optional()
    folder: Folder | None = optional()

    def reader(self) -> Tuxpaint | Things | Folder:
        """The section of the configured `kind` (the schema cannot require it; planning and the
        dataset job both ask here)."""
        section = getattr(self, self.kind)
        if section is None:
            raise ConfigError(f"config.dataset.{self.kind}: missing section for dataset kind '{self.kind}'")
        return section


class Fractions(Section):
    """Per concept: file names sorted then shuffled with `split.seed`; largest-remainder rounding, and
    every split with a positive fraction gets at least one image when the concept has enough."""

    train: float = Field(0.7, ge=0, le=1, description="share of each concept's images that trains")
    val: float = Field(0.05, ge=0, le=1, description="share for validation (tuning, validation curves)")
    test: float = Field(0.25, ge=0, le=1, description="share for the test sets")


class Split(Section):
    """How each concept's images are split into train, validation and test."""

    fractions: Fractions = section(Fractions)
    min_images: int = Field(
        2,
        ge=2,
        description="concepts with fewer images are excluded with a warning and counted in results/data/summary.json",
    )
    seed: int = Field(0, description="seed of the split's shuffle")


class Questions(Section):
    """The yes/no questions. Leaf negatives are one-to-one: a seeded derangement of the leaves in which
    every leaf is some other leaf's negative exactly once and never a name true of it. Each positive
    hypernym question is matched with one negative hypernym (a foil) the leaf does not belong to; the
    pair is what the paired decision rules compare."""

    template: str = Field("Is there {article} {name} in this image?", description="the question's wording")
    seed: int = Field(0, description="seed of the negatives")
    foil_balance: Literal["balanced", "uniform"] = Field(
        "balanced",
        description="how each positive hypernym question's foil is drawn; `balanced`: all foils at once (a seeded "
        "min-cost flow), so every hypernym is a foil as often as a positive as near as the taxonomy allows (no word "
        "prior under the paired rules); `uniform`: per leaf, uniformly without replacement, the paper's (a big "
        "category is then rarely a foil, and the no-image margins alone score above 0.5 under the paired rules)",
    )


class Conditions(Section):
    """The deprivation conditions, named in `experiments`: `none`, `full`, `random<pct>` (leaf-level
    removal), `random<pct>pair` (pair-level), `systematic<N>`."""

    seed: int = Field(0, description="the one removal draw per condition, shared by all training seeds")
    systematic_categories: dict[Annotated[str, BeforeValidator(str)], list[str]] = Field(
        {}, description="`{N: [category, ...]}` fixes the categories of `systematicN` (else N are drawn with the seed)"
    )


class Shuffles(Section):
    """The label shuffles `across` and `within`."""

    seed: int = Field(0, description="seed of the shuffles' derangements")
