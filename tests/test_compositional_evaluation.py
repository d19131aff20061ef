"""Compositional evaluation: correctness and Wilson CIs, VLM likelihood scorer, open_clip cosine scorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from taxvlm.compositional import evaluation as ev
from taxvlm.compositional.tiny import TINY_OPEN_CLIP, register_open_clip_config

ITEMS = pd.DataFrame(
    {
        "image_id": ["a", "a", "b", "b"],
        "caption": ["x", "x", "y", "y"],
        "negative": ["p", "q", "p", "x"],
        "type": ["object", "relation", "object", "relation"],
        "valid": ["True", "True", "True", "False"],
    }
)


def test_correct_is_strictly_above_and_accuracy_has_wilson_ci() -> None:
    table = {("a", "x"): 2.0, ("a", "p"): 1.0, ("a", "q"): 2.0, ("b", "y"): 0.0, ("b", "p"): 1.0}
    items = ev.valid_items(ITEMS)
    scored = ev.score_items(items, lambda ids, texts: np.array([table[k] for k in zip(ids, texts)]))
    assert list(scored["correct"]) == [True, False, False]  # a tie is wrong
    acc = ev.accuracy_by_type(scored.astype(str), "m").set_index("type")
    assert acc.loc["object", "accuracy"] == 0.5 and acc.loc["relation", "n"] == 1
    assert (acc.loc["object", "ci_low"], acc.loc["object", "ci_high"]) == pytest.approx((0.0945, 0.9055), abs=1e-4)


def test_vlm_scorer_is_image_minus_noimage_loglik(tiny_lm_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from taxvlm.models.lms import caption_prompt, splice
    from taxvlm.models.projector import Projector

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    torch.manual_seed(0)
    projector = Projector("linear", "pooled", 8, model.config.hidden_size, prefix_tokens=2).eval()
    features = torch.randn(2, 8)
    score = ev.vlm_scorer(model, tokenizer, projector, features, {"a": 0, "b": 1})
    got = score(["b", "a", "b"], ["a red owl.", "a red owl.", "an owl."])
    head, prompt = caption_prompt(tokenizer)

    def loglik(text: str, image: torch.Tensor | None) -> float:
        target = tokenizer(" " + text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + target])
        with torch.no_grad():
            if image is None:
                logits = model(torch.tensor([head + prompt + target])).logits[0]
            else:
                logits = model(inputs_embeds=splice(model, head, projector(image[None]), ids)).logits[0]
        logp = torch.log_softmax(logits, -1)
        first = logits.shape[0] - len(target) - 1
        return float(sum(logp[first + j, t] for j, t in enumerate(target)))

    want = [loglik(t, features[i]) - loglik(t, None) for i, t in [(1, "a red owl."), (0, "a red owl."), (1, "an owl.")]]
    assert got == pytest.approx(want, abs=1e-4)
    with pytest.raises(ValueError, match="no cached features"):
        score(["zzz"], ["x"])


def test_open_clip_scorer_cosine_and_text_cache(tmp_path: Path) -> None:
    import open_clip
    from PIL import Image

    register_open_clip_config("taxvlm-tiny-eval", TINY_OPEN_CLIP, tmp_path / "cfg")
    model, _, preprocess = open_clip.create_model_and_transforms("taxvlm-tiny-eval", pretrained=None)
    tokenizer = open_clip.get_tokenizer("taxvlm-tiny-eval")
    paths = {}
    for i, colour in enumerate(["red", "blue"]):
        paths[f"im{i}"] = str(tmp_path / f"{i}.png")
        Image.new("RGB", (40, 40), colour).save(paths[f"im{i}"])
    calls: list[int] = []
    encode = model.encode_text
    model.encode_text = lambda t: calls.append(len(t)) or encode(t)
    score = ev.open_clip_scorer(model.eval(), tokenizer, preprocess, paths)
    got = score(["im0", "im1", "im0"], ["a dog", "a dog", "a cat"])
    assert calls == [2]  # two distinct texts, embedded once
    with torch.no_grad():
        image = model.encode_image(preprocess(Image.open(paths["im1"]).convert("RGB"))[None])
        text = encode(tokenizer(["a dog"]))
    assert got[1] == pytest.approx(float(torch.cosine_similarity(image, text)), abs=1e-5)


def test_aro_vg_items_are_scored_on_their_region(tmp_path: Path) -> None:
    """ARO crops a Visual Genome image to the item's box before encoding it."""
    from PIL import Image

    Image.new("RGB", (40, 40), "white").save(tmp_path / "vg.png")
    items = pd.DataFrame(
        {"image_id": ["vg.png", "vg.png"], "caption": ["a", "b"], "negative": ["c", "d"], "type": ["vg_relation"] * 2}
    ).assign(bbox_x=[10, 0], bbox_y=[0, 0], bbox_w=[10, 40], bbox_h=[20, 40])
    views, paths, crops = ev.image_views(items, tmp_path)
    assert views["view"].tolist() == ["vg.png#10,0,10,20", "vg.png#0,0,40,40"]
    assert crops["vg.png#10,0,10,20"] == (10, 0, 20, 20) and paths["vg.png#10,0,10,20"] == str(tmp_path / "vg.png")
    seen: list[tuple[int, int]] = []
    ev.open_clip_scorer(_RecordingClip(), None, lambda im: seen.append(im.size) or torch.zeros(3), paths, crops=crops)
    assert sorted(seen) == [(10, 20), (40, 40)]


class _RecordingClip(torch.nn.Module):
    """Stands in for an open_clip model: only the images' preprocessing is looked at."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels
