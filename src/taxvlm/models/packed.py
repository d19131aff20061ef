"""Packed `images` batching for training: one decoder pass per batch instead of the two-pass shared prefix.

Each image of a batch becomes ONE sequence: `[head] [image tokens] [the prompt tokens all rows share]`
followed by all its rows' suffixes (each row's remaining prompt tokens and its target tokens but the
last). A block attention mask lets each suffix token see the prefix and the earlier tokens of its own
suffix only, and the position ids restart after the prefix for every suffix, so every row attends to
exactly the keys and values, at exactly the positions, of its own unpacked sequence. Why: the two-pass
shared prefix (`taxvlm.models.lms.shared_prefix_forward`) runs a second decoder pass over the suffixes
with the prefix's KV cache gathered per row, and on a GPU those launches bound the step; packing keeps
the prefix computed once per image and runs one pass. Scoring and evaluation keep the two-pass form
(their predictions do not change); this is the training path of `batching: images` (`taxvlm.training.objective`).

Where: the mask is passed as a ready 4-D float mask (0 or the dtype's minimum, which HF `eager` adds to
the scores and `sdpa` takes as is) with explicit `position_ids`. transformers returns such a mask
unchanged to every layer, so a model with sliding-window layers (Gemma-2/3) would silently run them
without their window; those models take a dict of masks per layer type (as `generate` prepares them),
and the sliding one carries the window, measured in the rows' own positions. `packing_refusal` decides
once per job whether an LM runs packed: `sdpa`/`eager` attention, full or sliding layers only, and a
3-token probe that each layer type's custom mask reaches its layers (a mask a model ignored would be
silently wrong). Soft-capped attention scores (Gemma-2, `eager` only) are capped before the mask is
added, so the mask stays exact there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from taxvlm.models.lms import common_prefix_len, lm_logits, splice

log = logging.getLogger(__name__)

MASKABLE = ("sdpa", "eager")  # HF attention implementations that add a custom 4-D float mask as given
FULL, SLIDING = "full_attention", "sliding_attention"


@dataclass(frozen=True)
class _Layout:
    """Where each row's suffix sits in its image's packed sequence."""

    starts: list[int]  # packed index of each row's first suffix token
    segment: torch.Tensor  # [G, L]: 0 the prefix, i + 1 row i's suffix, -1 padding
    position: torch.Tensor  # [G, L]: the position ids (each row's own)


def _layout(prefix: int, group: list[int], lengths: list[int], n_images: int) -> _Layout:
    """Rows' suffixes appended to their image's prefix in row order; sequences right-padded."""
    ends, starts = [prefix] * n_images, []
    for g, n in zip(group, lengths):
        starts.append(ends[g])
        ends[g] += n
    segment = torch.full((n_images, max(ends)), -1, dtype=torch.long)
    position = torch.zeros((n_images, max(ends)), dtype=torch.long)
    segment[:, :prefix], position[:, :prefix] = 0, torch.arange(prefix)
    for i, (g, n, s) in enumerate(zip(group, lengths, starts)):
        segment[g, s : s + n] = i + 1
        position[g, s : s + n] = torch.arange(prefix, prefix + n)
    return _Layout(starts, segment, position)


def layer_types(config: Any) -> list[str]:
    """Each decoder layer's attention type (models without `layer_types` are all full attention)."""
    return list(getattr(config, "layer_types", None) or [FULL] * int(config.num_hidden_layers))


def _additive(allowed: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`[G, 1, L, L]` float mask: 0 where a query may attend to a key, the dtype's minimum elsewhere."""
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None].to(device)


def _mask_argument(allowed: dict[str, torch.Tensor], types: list[str], dtype: torch.dtype, device: torch.device) -> Any:
    """The model's `attention_mask`: one 4-D mask when every layer is full attention, else a dict per type."""
    masks = {t: _additive(allowed[t], dtype, device) for t in sorted(set(types))}
    return masks[FULL] if set(types) == {FULL} else masks


def _allowed(layout: _Layout, window: int | None) -> dict[str, torch.Tensor]:
    """Boolean `[G, L, L]` masks per layer type: causal, a suffix sees the prefix and its own suffix;
    a sliding layer also only keys fewer than `window` positions back (as HF's sliding mask)."""
    seg, pos = layout.segment, layout.position
    causal = torch.ones(seg.shape[1], seg.shape[1], dtype=torch.bool).tril()
    full = causal & ((seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None]))
    allowed = {FULL: full}
    if window is not None:
        allowed[SLIDING] = full & (pos[:, :, None] - pos[:, None, :] < window)
    return allowed


def packed_continuation_logits(
    model: nn.Module,
    head: list[int],
    image_embeds: torch.Tensor,
    group: torch.Tensor,
    prompt_ids: list[list[int]],
    target_ids: list[list[int]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`taxvlm.evaluation.scoring.continuation_logits` (the same logits, rows and targets, in the same order) from
    one packed pass (module docstring); only for an LM `packing_refusal` accepts."""
    shared = common_prefix_len(prompt_ids)
    suffixes = [q[shared:] + a[:-1] for q, a in zip(prompt_ids, target_ids)]
    prefix = len(head) + image_embeds.shape[1] + shared
    layout = _layout(prefix, group.tolist(), [len(s) for s in suffixes], len(image_embeds))
    embeds = _packed_embeds(model, head, image_embeds, prompt_ids[0][:shared], group.tolist(), suffixes, layout)
    types, dev = layer_types(model.config), image_embeds.device
    window = getattr(model.config, "sliding_window", None) if SLIDING in types else None
    mask = _mask_argument(_allowed(layout, window), types, embeds.dtype, dev)
    positions = layout.position.to(dev)
    out = model.base_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False)
    seqs, cols, targets = [], [], []
    for g, start, q, a in zip(group.tolist(), layout.starts, prompt_ids, target_ids):
        first = start + len(q) - shared - 1  # the packed position that predicts the first target token
        seqs += [g] * len(a)
        cols += range(first, first + len(a))
        targets += a
    hidden = out.last_hidden_state[torch.tensor(seqs, device=dev), torch.tensor(cols, device=dev)]
    rows = torch.repeat_interleave(torch.arange(len(target_ids)), torch.tensor([len(a) for a in target_ids]))
    return lm_logits(model, hidden), rows.to(dev), torch.tensor(targets, device=dev)


def _packed_embeds(
    model: nn.Module,
    head: list[int],
    image_embeds: torch.Tensor,
    common: list[int],
    group: list[int],
    suffixes: list[list[int]],
    layout: _Layout,
) -> torch.Tensor:
    """`[G, L, d]` input embeddings: each image's `[head] [image] [common]`, then its rows' suffixes."""
    n_images, prefix = len(image_embeds), len(head) + image_embeds.shape[1] + len(common)
    rest = torch.zeros((n_images, layout.segment.shape[1] - prefix), dtype=torch.long)
    for g, start, suffix in zip(group, layout.starts, suffixes):
        rest[g, start - prefix : start - prefix + len(suffix)] = torch.tensor(suffix, dtype=torch.long)
    common_ids = torch.tensor(common, dtype=torch.long).expand(n_images, len(common))
    text = model.get_input_embeddings()(rest.to(image_embeds.device))
    return torch.cat([splice(model, head, image_embeds, common_ids), text], dim=1)


def packing_refusal(model: nn.Module) -> str | None:
    """Why `model` cannot run packed (module docstring), or None when it can."""
    config = model.config
    impl = getattr(config, "_attn_implementation", None)
    if impl not in MASKABLE:
        return f"its attention implementation {impl!r} takes no custom 4-D mask (only {' / '.join(MASKABLE)} do)"
    types = layer_types(config)
    unknown = sorted(set(types) - {FULL, SLIDING})
    if unknown:
        return f"its layer types {unknown} have no packed mask here (only {FULL} and {SLIDING})"
    if getattr(config, "sliding_window", None) and not hasattr(config, "layer_types"):
        return "it has a sliding window but no per-layer types: one 4-D mask would run it without its window"
    try:
        ignored = _ignored_mask(model, types)
    except (TypeError, AttributeError, KeyError, ValueError, RuntimeError) as err:
        return f"its forward fails with a custom mask ({type(err).__name__}: {err})"
    return f"a custom mask does not reach its {ignored} layers (3-token probe)" if ignored else None


@torch.no_grad()
def _ignored_mask(model: nn.Module, types: list[str]) -> str | None:
    """The first layer type whose custom mask leaves a 3-token forward unchanged (attending to itself
    only instead of causally), or None when every type's mask reaches its layers."""
    dev = next(model.parameters()).device
    embeds = model.get_input_embeddings()(torch.tensor([[0, 1, 2]], device=dev))
    causal, itself = torch.ones(1, 3, 3, dtype=torch.bool).tril(), torch.eye(3, dtype=torch.bool)[None]

    def last_hidden(blocked: str | None) -> torch.Tensor:
        allowed = {t: itself if t == blocked else causal for t in (FULL, SLIDING)}
        mask = _mask_argument(allowed, types, embeds.dtype, dev)
        positions = torch.arange(3, device=dev)[None]
        out = model.base_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False)
        return out.last_hidden_state

    reference = last_hidden(None)
    return next((t for t in sorted(set(types)) if torch.equal(last_hidden(t), reference)), None)


def training_batching(batching: str, model: nn.Module) -> str:
    """The batching a training job runs: `batching`, except `images` on an LM that cannot run packed,
    which falls back to `rows` with one warning naming the LM and the reason (decided once per job)."""
    reason = packing_refusal(model) if batching == "images" else None
    if reason is None:
        return batching
    name = getattr(model.config, "name_or_path", "") or model.config.model_type
    log.warning("batching 'images' falls back to 'rows' for the LM %s (%s): %s", name, model.config.model_type, reason)
    return "rows"
