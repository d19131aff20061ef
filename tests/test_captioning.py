"""Captioning evaluation: the prompt, batched KV-cache greedy decoding = HF `generate`, scoring with
pycocoevalcap, the reference table's errors, one run end to end, and the report table and figure."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from taxvlm.analysis.captioning import caption_figure, caption_table, caption_table_markdown, collect_caption_scores
from taxvlm.analysis.metrics import t_interval
from taxvlm.evaluation.captioning import (
    caption_run,
    generate_caption_ids_reference,
    greedy_caption_ids,
    greedy_captions,
    printable,
    read_references,
    score_captions,
    scoring_tokens,
)
from taxvlm.io import read_tsv, write_tsv
from taxvlm.models.lms import caption_prompt, load_lm
from taxvlm.models.projector import build_projector

from spec_builders import frozen_lm, trained_run

SPEC = {"projector": "mlp", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}
D_VIS, N_IMAGES = 16, 6


def _projector(d_lm: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_projector(SPEC, D_VIS, d_lm).eval()


def _features() -> torch.Tensor:
    return torch.randn(N_IMAGES, D_VIS, generator=torch.Generator().manual_seed(1))


def test_caption_prompt_puts_the_image_after_the_first_token(tiny_lm_dir: Path, tiny_nobos_lm_dir: Path) -> None:
    _, tok = load_lm(frozen_lm(tiny_lm_dir))
    head, prompt = caption_prompt(tok)
    assert head == [tok.bos_token_id]
    assert prompt == tok("A picture of", add_special_tokens=False)["input_ids"]
    _, nobos = load_lm(frozen_lm(tiny_nobos_lm_dir))
    head, prompt = caption_prompt(nobos)
    assert len(head) == 1 and head + prompt == nobos("A picture of")["input_ids"]


@pytest.mark.parametrize("lm", ["tiny_lm_dir", "tiny_gemma3_dir"])
def test_batched_greedy_decode_equals_hf_generate(lm: str, request: pytest.FixtureRequest) -> None:
    """Rows stop at different steps (two stop tokens taken from the free-running captions), the
    batch size does not divide the images, and on Gemma-3 the prefix crosses the sliding window."""
    model, tok = load_lm(frozen_lm(request.getfixturevalue(lm)))
    projector, feats = _projector(model.get_input_embeddings().embedding_dim), _features()
    head, prompt = caption_prompt(tok)
    images, max_new = [5, 0, 3, 1, 4, 2], 8
    free = generate_caption_ids_reference(model, head, prompt, projector, feats, images, max_new, [tok.eos_token_id])
    stops = [free[0][2], free[1][4]]
    reference = generate_caption_ids_reference(model, head, prompt, projector, feats, images, max_new, stops)
    ours = greedy_caption_ids(model, head, prompt, projector, feats, images, max_new, 4, stops)
    assert ours == reference
    lengths = {len(ids) for ids in ours}
    assert len(lengths) > 1 and max_new in lengths  # some rows stopped early, some ran to the limit


def test_greedy_captions_decode_text_without_eos(tiny_lm_dir: Path) -> None:
    model, tok = load_lm(frozen_lm(tiny_lm_dir))
    projector, feats = _projector(model.get_input_embeddings().embedding_dim), _features()
    head, prompt = caption_prompt(tok)
    ids = greedy_caption_ids(model, head, prompt, projector, feats, [0, 1], 5, 2, [tok.eos_token_id])
    texts = greedy_captions(model, tok, head, prompt, projector, feats, [0, 1], 5, 2)
    assert texts == [printable(tok.decode(row, skip_special_tokens=True)) for row in ids]
    assert all(tok.eos_token not in text for text in texts)


def test_printable_keeps_a_caption_on_one_line() -> None:
    assert printable(" a\tcat\r\non a\x07mat ") == "a cat on a\ufffdmat"


def test_scoring_tokens_drop_case_and_punctuation() -> None:
    assert scoring_tokens("A Cat's toy, on the MAT!  (ñandú)") == "a cat's toy on the mat ñandú"


def test_scores_from_pycocoevalcap() -> None:
    references = {"a": ["A cat on a mat.", "A cat sitting on a mat"], "b": ["A red apple."], "c": ["A big dog."]}
    perfect, per_image = score_captions(references, {"a": "a cat on a mat", "b": "A red apple", "c": "a big dog!"})
    assert perfect["bleu4"] == pytest.approx(1.0, abs=1e-6)
    wrong, wrong_per_image = score_captions(references, {"a": "a red apple", "b": "a cat on a mat", "c": ""})
    assert wrong["cider_d"] < perfect["cider_d"] and wrong["bleu4"] < 0.01
    assert perfect["cider_d"] == pytest.approx(np.mean(list(per_image.values())))
    assert wrong_per_image["c"] == 0.0
    with pytest.raises(ValueError, match="different images"):
        score_captions(references, {"a": "x", "b": "y"})


@pytest.mark.parametrize(
    ("rows", "known", "message"),
    [
        ({"image_id": ["x"], "text": ["A cat."]}, None, "missing column"),
        ({"image_id": [], "caption": []}, None, "no reference captions"),
        ({"image_id": ["x", "y"], "caption": ["A cat.", "  "]}, None, "empty caption for image 'y'"),
        ({"image_id": ["x", "q1", "q2"], "caption": ["a", "b", "c"]}, {"x"}, r"2 image id\(s\).*\['q1', 'q2'\]"),
    ],
)
def test_bad_reference_tables_fail_clearly(tmp_path: Path, rows: dict, known: set | None, message: str) -> None:
    write_tsv(pd.DataFrame(rows), tmp_path / "refs.tsv")
    with pytest.raises(ValueError, match=message):
        read_references(tmp_path / "refs.tsv", known)


def test_caption_run_writes_captions_and_scores(tiny_lm_dir: Path, tmp_path: Path) -> None:
    model, tok = load_lm(frozen_lm(tiny_lm_dir))
    projector, feats = _projector(model.get_input_embeddings().embedding_dim), _features()
    image_ids = [f"img{i}" for i in range(N_IMAGES)]
    torch.save({"image_ids": image_ids, "pooled": feats.half(), "tokens": feats[:, None].half()}, tmp_path / "f.pt")
    ckpt = {"state_dict": projector.state_dict(), "spec": SPEC, "d_vis": D_VIS, "d_lm": 64, "init": "pretrained"}
    torch.save({**ckpt, "seed": 3}, tmp_path / "projector.pt")
    refs = pd.DataFrame({"image_id": ["img4", "img1", "img1"], "caption": ["A dog.", "A cat.", "A small cat."]})
    write_tsv(refs, tmp_path / "refs.tsv")
    run = {"encoder": "e", "lm": "l", "init": "pretrained", "condition": "full", "shuffle": "original", "seed": "3"}
    trained = trained_run(tiny_lm_dir, tmp_path, tmp_path / "f.pt", 3)
    caption_run(trained, run, tmp_path / "refs.tsv", 6, 8, tmp_path / "captions.tsv", tmp_path / "scores.tsv", device="cpu")

    captions = read_tsv(tmp_path / "captions.tsv")
    assert list(captions.columns) == ["image_id", "reference", "generated", "cider_d"]
    assert list(zip(captions["image_id"], captions["reference"])) == [
        ("img1", "A cat."),
        ("img1", "A small cat."),
        ("img4", "A dog."),
    ]
    head, prompt = caption_prompt(tok)
    expected = greedy_captions(model, tok, head, prompt, projector, feats.half(), [1, 4], 6, 8)
    assert list(captions.drop_duplicates("image_id")["generated"]) == expected
    scores = read_tsv(tmp_path / "scores.tsv")
    assert list(scores["metric"]) == ["cider_d", "bleu4"] and set(scores["n_images"]) == {"2"}
    assert scores.iloc[0][list(run)].to_dict() == run
    with pytest.raises(ValueError, match="trained with init=pretrained seed=3"):
        caption_run(replace(trained, seed=4), run, tmp_path / "refs.tsv", 6, 8, tmp_path / "c.tsv", tmp_path / "s.tsv",
                    device="cpu")  # fmt: skip


def _scores(tmp_path: Path) -> list[Path]:
    paths = []
    for init, seed, cider in [("pretrained", 1, 0.5), ("pretrained", 2, 0.7), ("random", 1, 0.1)]:
        keys = {"encoder": "e", "lm": "l", "init": init, "condition": "full", "shuffle": "original", "seed": seed}
        rows = [keys | {"metric": m, "value": v, "n_images": 4} for m, v in [("cider_d", cider), ("bleu4", 0.1)]]
        frame = pd.DataFrame(rows)
        paths.append(tmp_path / f"{init}{seed}.tsv")
        write_tsv(frame, paths[-1])
    return paths


def test_caption_table_has_seed_means_and_t_intervals(tmp_path: Path) -> None:
    scores = collect_caption_scores(_scores(tmp_path), tmp_path / "all.tsv")
    assert len(read_tsv(tmp_path / "all.tsv")) == 6
    table = caption_table(scores)
    row = table[(table["init"] == "pretrained") & (table["metric"] == "cider_d")].iloc[0]
    assert row["n_seeds"] == 2 and row["mean"] == pytest.approx(0.6)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(t_interval([0.5, 0.7]))
    assert table[table["init"] == "random"]["ci_low"].isna().all()  # one seed: no interval
    markdown = caption_table_markdown(table)
    assert markdown.iloc[0]["CIDEr-D: random"] == "0.100"
    assert markdown.iloc[0]["CIDEr-D: pretrained"].startswith("0.600 [")
    assert markdown.iloc[0]["n seeds"] == "2 / 1"


def test_caption_figure_shows_examples(tmp_path: Path) -> None:
    images = []
    for i, concept in enumerate(["cat", "cat", "dog", "owl"]):
        path = tmp_path / f"{i}.png"
        Image.new("RGBA", (24, 24), (40 * i, 90, 160, 255)).save(path)
        images.append({"image_id": f"{concept}/{i}", "concept": concept, "path": str(path), "split": "test"})
    images = pd.DataFrame(images)
    captions = pd.DataFrame(
        {"image_id": images["image_id"], "reference": "A picture.", "generated": ["a cat", "", "a dog", "an owl"]}
    )
    out = tmp_path / "figures" / "captions.png"
    caption_figure([("e · l · pretrained", captions), ("e · l · random", captions)], images, out, n_images=2)
    assert out.stat().st_size > 0
