"""The contrastive stage: faithful mode end to end on a tiny random open_clip model, pipeline mode on
cached features and cached LM text states, the ablation grid, θ along training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from taxvlm.compositional import contrastive as C
from taxvlm.compositional.evaluation import accuracy_by_type, embedding_scores, score_items, valid_items
from taxvlm.compositional.tiny import TINY_OPEN_CLIP, register_open_clip_config

TYPES = ["relation", "object"]
RECIPE = C.Recipe(
    lr=1e-3,
    weight_decay=0.1,
    betas=(0.9, 0.98),
    eps=1e-6,
    warmup_steps=2,
    batch_size=2,
    epochs=3,
    lambda_imc=0.3,
    lambda_cmr=0.2,
)


def _negatives() -> pd.DataFrame:
    rows = []
    for i, (a, b) in enumerate([("dog", "cat"), ("owl", "bus"), ("cup", "pen"), ("hat", "car")]):
        caption = f"a {a} near a {b}"
        rows.append((f"im{i}", caption, f"a {b} near a {a}", "relation", True, ""))
        rows.append((f"im{i}", caption, "" if i == 3 else f"a {a} near a tree", "object", i != 3, "x" * (i == 3)))
    return pd.DataFrame(rows, columns=["image_id", "caption", "negative", "type", "valid", "reason"])


def _index(negatives: pd.DataFrame) -> tuple[dict[str, int], list[str], dict[str, int]]:
    images = {f"im{i}": i for i in range(4)}
    texts = C.all_texts(negatives, TYPES)
    return images, texts, {t: i for i, t in enumerate(texts)}


def test_pair_data_masks_invalid_negatives() -> None:
    negatives = _negatives()
    images, texts, text_index = _index(negatives)
    data = C.pair_data(negatives, TYPES, images, text_index, image_ids={"im2", "im3"})
    assert data.valid.tolist() == [[True, True], [True, False]]
    assert texts[data.negatives[1, 1]] == texts[data.caption[1]] == "a hat near a car"  # placeholder, masked


def test_faithful_mode_end_to_end_on_tiny_open_clip(tmp_path: Path) -> None:
    import open_clip
    from PIL import Image

    register_open_clip_config("taxvlm-tiny-faithful", TINY_OPEN_CLIP, tmp_path / "cfg")
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("taxvlm-tiny-faithful", pretrained=None)
    paths = []
    for i, colour in enumerate(["red", "green", "blue", "white"]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (40, 40), colour).save(paths[-1])
    negatives = _negatives()
    images, texts, text_index = _index(negatives)
    encoder = C.OpenClipDualEncoder(model, open_clip.get_tokenizer("taxvlm-tiny-faithful"), preprocess, paths, texts)
    before = model.text_projection.detach().clone()
    curve = C.train_dual_encoder(
        encoder, C.pair_data(negatives, TYPES, images, text_index), RECIPE, C.ablation_terms("all"), 0
    )
    assert len(curve) == 3 * 2 and curve[["loss", "itc", "imc", "cmr"]].notna().all().all()
    assert curve.loc[0, ["theta_relation", "theta_object"]].tolist() == [0.0, 0.0]  # θ starts at 0
    assert (curve[["theta_relation", "theta_object"]] >= 0).all().all()
    assert not torch.equal(before, model.text_projection.detach())
    score = embedding_scores(C.image_embeddings(encoder, images, list(images)), C.text_embedder(encoder, texts))
    scored = score_items(valid_items(negatives), score)
    assert set(accuracy_by_type(scored, "tiny")["type"]) == set(TYPES)


def _pipeline(negatives: pd.DataFrame) -> tuple[C.PipelineDualEncoder, C.PairData]:
    from taxvlm.models.projector import Projector

    images, texts, text_index = _index(negatives)
    torch.manual_seed(0)
    projector = Projector("linear", "pooled", 8, 16, prefix_tokens=2)
    encoder = C.PipelineDualEncoder(projector, torch.randn(4, 8), torch.randn(len(texts), 16))
    return encoder, C.pair_data(negatives, TYPES, images, text_index)


def test_pipeline_mode_ablations_train_and_itc_embeds_no_negative() -> None:
    negatives = _negatives()
    for name in ["itc", "hn", "imc", "cmr", "all"]:
        encoder, data = _pipeline(negatives)
        sizes: list[int] = []
        embed = encoder.embed_texts
        encoder.embed_texts = lambda index: sizes.append(len(index)) or embed(index)
        head = encoder.head.weight.detach().clone()
        curve = C.train_dual_encoder(encoder, data, RECIPE, C.ablation_terms(name), 1)
        assert not torch.equal(head, encoder.head.weight.detach())
        assert set(curve.columns) >= {"itc"} | ({"imc"} if name in ("imc", "all") else set())
        if name == "itc":
            assert max(sizes) <= RECIPE.batch_size and (curve["theta_object"] == 0).all()
        else:
            assert max(sizes) > RECIPE.batch_size
    with pytest.raises(ValueError, match="ablations"):
        C.ablation_terms("imc+cmr")


def test_batch_larger_than_data_trains_full_batch() -> None:
    encoder, data = _pipeline(_negatives())
    recipe = C.Recipe(**{**RECIPE.__dict__, "batch_size": 128, "epochs": 2})
    assert len(C.train_dual_encoder(encoder, data, recipe, C.ablation_terms("all"), 0)) == 2


def test_lm_text_features_mean_pool_the_frozen_lm(tiny_lm_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    texts = ["a red owl.", "an owl near a big red bus."]
    feats = C.lm_text_features(model, tokenizer, texts, batch_size=2)
    with torch.no_grad():
        ids = torch.tensor([tokenizer(texts[0])["input_ids"]])
        want = model(ids, output_hidden_states=True).hidden_states[-1][0].mean(0)
    assert feats.shape == (2, model.config.hidden_size)
    assert torch.allclose(feats[0], want, atol=1e-5)
