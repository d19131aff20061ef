"""`compositional`: hard negatives, CE-CLIP's contrastive stage and the compositional benchmarks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from taxvlm.settings.assets import Download
from taxvlm.settings.base import Section, optional, section

NegativeType = Literal["relation", "attribute", "object", "action", "cohyponym", "cross_category"]
Ablation = Literal["itc", "hn", "imc", "cmr", "all"]
Ablations = Annotated[list[Ablation], Field(min_length=1, json_schema_extra={"uniqueItems": True})]


class OpenClipModel(Section):
    """An open_clip model scored by cosine."""

    name: str = Field(description="open_clip architecture name")
    pretrained: str | None = Field(None, description="pretrained tag; null = random init")
    config: dict[str, Any] | None = optional(
        description="an architecture registered under `name` (the offline tiny model)"
    )


class Benchmark(Section):
    """A compositional benchmark in its published JSON layout (`taxvlm.compositional.benchmarks`)."""

    format: Literal["sugarcrepe", "aro_relation", "aro_attribution", "aro_order", "valse", "vlchecklist"] = Field(
        description="the benchmark's published JSON layout"
    )
    files: dict[str, Download] = Field(
        min_length=1,
        description="file key → pinned download; the key names the type (SugarCrepe's `swap_att`, VALSE's piece, "
        "VL-CheckList's path)",
    )
    image_root: str = Field(
        description="folder the benchmark's image paths are relative to (unpacked by the user, not downloaded)"
    )


class Faithful(Section):
    """The faithful mode: an open_clip model fine-tuned whole, with CE-CLIP's recipe as it is."""

    model: str | None = optional(description="a key of `compositional.open_clip` (fine-tuned from its weights)")
    captions: Literal["dataset", "coco"] = Field(
        "dataset",
        description="`dataset`: the dataset's captions and its train/test split; `coco`: `coco_annotations` → "
        "`coco_member` of that zip, images under `coco_image_root`, all for training",
    )
    coco_annotations: Download | None = optional()
    coco_member: str = Field(
        "annotations/captions_train2014.json", description="the captions file inside `coco_annotations`"
    )
    coco_image_root: str | None = optional(description="where the user unpacked COCO-2014's training images")
    max_captions: int | None = Field(
        None, ge=1, description="not read by any code yet (a planned cap on the training captions)"
    )


class PipelineRuns(Section):
    """Which trained runs give the projector (matched on these keys; the lowest seed per encoder, LM and
    objective)."""

    init: Literal["pretrained", "random"] = Field("pretrained", description="the runs' init")
    condition: str = Field("full", description="the runs' condition")
    shuffle: str = Field("original", description="the runs' shuffle")


class Pipeline(Section):
    """The pipeline mode: this project's frozen encoder features → a trained run's projector, pooled,
    against the frozen LM's mean-pooled caption states and a trained linear head."""

    lr: float = Field(1.0e-3, gt=0, description="the pipeline mode's own rate (its head starts from scratch)")
    epochs: int = Field(20, ge=1, description="the pipeline mode's epochs")
    batch_size: int = Field(32, ge=2, description="the pipeline mode's batch (in-batch negatives)")
    runs: PipelineRuns = section(PipelineRuns)


class Contrastive(Section):
    """CE-CLIP's contrastive stage (AdamW, linear warm-up then cosine decay)."""

    modes: list[Literal["faithful", "pipeline"]] = Field(["pipeline"], description="which contrastive modes train")
    ablations: Ablations = Field(
        ["itc", "all"],
        description="CE-CLIP's Table 4 grid: `itc` (plain CLIP loss), `hn` (+ hard negatives as image→text columns), "
        "`imc` (+ the intra-modal term), `cmr` (+ the rank hinge with adaptive margins), `all`",
    )
    lambda_imc: float = Field(0.3, ge=0, description="weight of the intra-modal term")
    lambda_cmr: float = Field(0.2, ge=0, description="weight of the cross-modal rank hinge")
    lr: float = Field(5.0e-6, gt=0, description="AdamW's learning rate (CE-CLIP's)")
    weight_decay: float = Field(0.1, ge=0, description="AdamW's weight decay")
    betas: list[float] = Field([0.9, 0.98], min_length=2, max_length=2, description="AdamW's betas")
    eps: float = Field(1.0e-6, gt=0, description="AdamW's eps")
    warmup_steps: int = Field(50, ge=0, description="linear warm-up steps, then cosine decay")
    batch_size: int = Field(128, ge=2, description="images per batch (in-batch negatives)")
    epochs: int = Field(5, ge=1, description="training epochs")
    faithful: Faithful = section(Faithful)
    pipeline: Pipeline = section(Pipeline)


class Compositional(Section):
    """Compositional hard negatives, CE-CLIP's contrastive stage and the compositional benchmarks
    (config/README.md); its rule file is read only when enabled."""

    enabled: bool = Field(False, description="add the compositional outputs to the default target")
    seed: int = Field(
        0, description="seeds the hard negatives (per image, caption and type) and ARO's order perturbations"
    )
    wordnet_asset: str = Field(
        "wordnet", description="the `assets` key of WordNet 3.0 (installed for the negatives whatever the dataset kind)"
    )
    types: Annotated[list[NegativeType], Field(min_length=1)] = Field(
        ["relation", "attribute", "object", "action", "cohyponym", "cross_category"],
        description="hard-negative types generated and reported: `relation` (the first two nouns swapped, whole "
        "words), `attribute`, `object`, `action` (one adjective / noun / verb replaced), `cohyponym` (the object "
        "replaced by a sibling under the same hypernym), `cross_category` (by a noun under another hypernym); a type "
        "a caption cannot make is marked invalid with its reason (`negatives.tsv`)",
    )
    vlm: bool = Field(
        True,
        description="score every trained run of the grid on the test images' hard negatives and on every benchmark "
        "(caption log-likelihood after the image minus without it)",
    )
    batch_size: int = Field(64, ge=1, description="the `vlm` scoring batch")
    open_clip: dict[str, OpenClipModel] = Field({}, description="open_clip models scored by cosine, by key")
    benchmarks: dict[str, Benchmark] = Field({}, description="compositional benchmarks, by key")
    contrastive: Contrastive = section(Contrastive)
