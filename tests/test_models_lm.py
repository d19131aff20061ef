"""Model core through a tiny LM: prompt, random twin, exact fast scoring, training, resume."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from taxvlm.training import loop as loop_mod
from taxvlm.training.resume import History
from taxvlm.evaluation.decision import PREDICTION_COLUMNS
from taxvlm.evaluation.readouts import evaluate_projector, name_projector
from taxvlm.evaluation.scoring import (
    COLUMNS,
    naming_frame,
    score_continuations,
    score_continuations_without_image,
    score_questions,
    score_questions_reference,
    score_without_image,
)
from taxvlm.io import read_tsv, write_tsv
from taxvlm.models.lms import PromptFormat, build_prompt, caption_prompt, load_lm, splice
from taxvlm.models.projector import build_projector
from taxvlm.training.kept_points import steps_every
from taxvlm.training.loop import epoch_order, Member, SharedFiles, train_projector
from taxvlm.training.objective import answer_loss, training_ids

from spec_builders import frozen_lm, lm_spec, training_setup, trained_run

NAMES = ["cat", "owl", "axolotl", "ñandú"]  # an/a, a name outside the tokenizer's training corpus
TRAINING = {
    "projector": "mlp",
    "prefix_tokens": 2,
    "lr": 1e-2,
    "weight_decay": 0.0,
    "warmup_fraction": 0.05,
    "epochs": 4,
    "batch_size": 16,
    "grad_clip": 1.0,
    "checkpoint_every": 5,
    "val_every": 1,
    "eval_every": 0,
    "eval_every_unit": "epochs",
    "compile": "none",
}
ENCODER = {"source": "timm", "features": "pooled"}


def _rows(image_ids: list[str], concepts: list[str], names: list[str]) -> pd.DataFrame:
    """Every name asked on every image; with two names, each image's two rows are one leaf pair
    (question ids `<leaf>:leaf:<leaf>:<answer>` as in questions.tsv)."""
    rows = [
        {
            "row_id": f"{image}:{name}",
            "image_id": image,
            "image_concept": concept,
            "question_id": f"{concept}:leaf:{concept}:{'Yes' if name == concept else 'No'}",
            "leaf": concept,
            "kind": "leaf",
            "asked": name,
            "answer": "Yes" if name == concept else "No",
            "text": f"Is there {'an' if name[0] in 'aeiou' else 'a'} {name} in this image?",
        }
        for image, concept in zip(image_ids, concepts)
        for name in names
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two visually separable concepts, questions about both: learnable only through the image."""
    root = tmp_path_factory.mktemp("toy")
    g = torch.Generator().manual_seed(0)
    n, names = 48, NAMES[:2]
    concepts = [names[i % 2] for i in range(n)]
    pooled = torch.randn(2, 16, generator=g)[torch.arange(n) % 2] * 2 + 0.3 * torch.randn(n, 16, generator=g)
    image_ids = [f"img{i:02d}" for i in range(n)]
    torch.save(
        {"image_ids": image_ids, "tokens": pooled[:, None].repeat(1, 3, 1).half(), "pooled": pooled.half(), "meta": {}},
        root / "features.pt",
    )
    rows = _rows(image_ids, concepts, names)
    write_tsv(rows[rows.image_id < "img36"], root / "train.tsv")
    write_tsv(rows[rows.image_id >= "img36"], root / "test.tsv")
    return {"root": root, "features": root / "features.pt", "train": root / "train.tsv", "test": root / "test.tsv"}


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU path needs a CUDA device")


def _train(toy: dict[str, Path], lm_dir: Path, name: str, device: str = "cpu", **overrides) -> Path:
    out = toy["root"] / name
    train_projector(
        training_setup(lm_dir, {**TRAINING, **overrides}, ENCODER),
        SharedFiles(toy["features"]),
        Member(toy["train"], 7, out, toy["root"] / f"{name}.ckpt"),
        device=device,
    )
    return out


def test_prompt_answers_and_any_name(tiny_lm_dir: Path, tiny_chat_lm_dir: Path) -> None:
    _, tok = load_lm(frozen_lm(tiny_lm_dir), "cpu")
    prompt = build_prompt(tok)
    assert prompt.head == [tok.bos_token_id]
    assert prompt.answers["Yes"] == tok(" Yes", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert len(prompt.answers["Yes"]) == len(prompt.answers["No"]) == 2  # single answer token + EOS
    text = tok.decode(prompt.question_ids("Is there a ñandú in this image?"))
    assert text == "Question: Is there a ñandú in this image? Answer:"
    _, chat_tok = load_lm(frozen_lm(tiny_chat_lm_dir), "cpu")
    chat = build_prompt(chat_tok, chat_template=True)
    assert chat_tok.decode(chat.head) == "<|im_start|>user\n"
    assert chat_tok.decode(chat.answers["No"]) == "No<|im_end|>"
    assert chat_tok.decode(chat.question_ids("Q?")).endswith("Q?<|im_end|>\n<|im_start|>assistant\n")


def test_without_bos_the_image_follows_the_first_text_token(tiny_nobos_lm_dir: Path) -> None:
    """The image goes after the first token, as in the paper's model: BOS when the tokenizer adds one,
    otherwise the prompt text's first token, which then leaves the question text."""
    model, tok = load_lm(frozen_lm(tiny_nobos_lm_dir), "cpu")
    question = "Is there an owl in this image?"
    text = tok(f"Question: {question} Answer:")["input_ids"]
    assert text[0] != tok.bos_token_id
    prompt = build_prompt(tok)
    assert prompt.head == text[:1] and tok.decode(prompt.head) == "Question"
    assert prompt.head + prompt.question_ids(question) == text  # the text without the image, unchanged
    image = torch.randn(1, 3, 64)
    embeds = splice(model, prompt.head, image, torch.tensor([prompt.question_ids(question)]))
    assert torch.equal(embeds[0, 1:4], image[0])
    assert torch.equal(embeds[0, 0], model.get_input_embeddings().weight[text[0]])


def test_random_twin_is_frozen_deterministic_and_different(tiny_lm_dir: Path) -> None:
    pretrained, _ = load_lm(frozen_lm(tiny_lm_dir), "cpu")
    twin_a, _ = load_lm(frozen_lm(tiny_lm_dir, "random", random_init_seed=0), "cpu")
    twin_b, _ = load_lm(frozen_lm(tiny_lm_dir, "random", random_init_seed=0), "cpu")
    other, _ = load_lm(frozen_lm(tiny_lm_dir, "random", random_init_seed=1), "cpu")
    a, b, p, o = (m.state_dict() for m in (twin_a, twin_b, pretrained, other))
    assert a.keys() == p.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.layers.0.mlp.up_proj.weight"], p["model.layers.0.mlp.up_proj.weight"])
    assert not torch.equal(a["model.layers.0.mlp.up_proj.weight"], o["model.layers.0.mlp.up_proj.weight"])
    assert not any(param.requires_grad for param in twin_a.parameters()) and not twin_a.training


@pytest.fixture(params=["llama", "llama_nobos", "llama_chat", "gemma3"])
def lm_and_chat(request: pytest.FixtureRequest) -> tuple[Path, bool]:
    """Each tiny LM with its prompt format: Llama plain (with and without BOS), Llama chat, Gemma-3
    (sliding window 4)."""
    name = {
        "llama": "tiny_lm_dir",
        "llama_nobos": "tiny_nobos_lm_dir",
        "llama_chat": "tiny_chat_lm_dir",
        "gemma3": "tiny_gemma3_dir",
    }[request.param]
    return request.getfixturevalue(name), request.param == "llama_chat"


@pytest.mark.parametrize("features", ["pooled", "tokens"])
def test_fast_scores_equal_plain_forward(lm_and_chat: tuple[Path, bool], features: str) -> None:
    lm_dir, chat = lm_and_chat
    model, tok = load_lm(frozen_lm(lm_dir), "cpu")
    prompt = build_prompt(tok, chat_template=chat)
    torch.manual_seed(0)
    feats = torch.randn(5, 3, 16) if features == "tokens" else torch.randn(5, 16)
    projector = build_projector({"projector": "mlp", "prefix_tokens": 3, "features": features, "feature_norm": "none"}, 16, 64)
    rows = _rows([f"i{i}" for i in range(5)], ["cat"] * 5, NAMES)
    image_index = [int(i[1:]) for i in rows["image_id"]][::-1]  # unsorted: scoring regroups by image
    questions = list(rows["text"])
    fast = score_questions(model, prompt, projector, feats, image_index, questions, batch_size=7)
    ref = score_questions_reference(model, prompt, projector, feats, image_index, questions)
    for f, r in zip(fast, ref):
        torch.testing.assert_close(f, r, atol=1e-5, rtol=0)


def test_noimage_scores_equal_a_plain_forward_of_the_text(lm_and_chat: tuple[Path, bool]) -> None:
    """The calibrated rule's no-image margin: the same prompt with the image tokens left out, batched
    with right padding, equals one plain `model(input_ids=...)` per question."""
    lm_dir, chat = lm_and_chat
    model, tok = load_lm(frozen_lm(lm_dir), "cpu")
    prompt = build_prompt(tok, chat_template=chat)
    questions = [f"Is there a {name} in this image?" for name in NAMES] + ["Is there an animal?"]
    logp_yes, logp_no = score_without_image(model, prompt, questions, batch_size=3)
    for question, yes, no in zip(questions, logp_yes, logp_no):
        logits = model(input_ids=torch.tensor([prompt.head + prompt.question_ids(question)])).logits[0, -1]
        expected = torch.log_softmax(logits.float(), dim=-1)[list(prompt.choice_ids)]
        torch.testing.assert_close(torch.stack([yes, no]), expected, atol=1e-5, rtol=0)


def _plain_answer_loss(
    model: torch.nn.Module,
    prompt: PromptFormat,
    image_embeds: torch.Tensor,
    question_ids: list[list[int]],
    answer_ids: list[list[int]],
) -> torch.Tensor:
    """The loss the plain way: one full forward per row, full logits, answer positions only."""
    losses = []
    for embeds, q, a in zip(image_embeds, question_ids, answer_ids):
        inputs = splice(model, prompt.head, embeds[None], torch.tensor([q + a[:-1]]))
        logits = model(inputs_embeds=inputs).logits[0, -len(a) :]
        losses.append(torch.nn.functional.cross_entropy(logits.float(), torch.tensor(a), reduction="none"))
    return torch.cat(losses).mean()


@pytest.mark.parametrize(
    "group",
    [[2, 0, 2, 1, 0, 2, 1], [3, 0, 2, 1]],
    ids=["7 rows about 3 images, unsorted", "each row its own image: one pass"],
)
def test_shared_prefix_loss_and_gradients_equal_one_forward_per_row(
    lm_and_chat: tuple[Path, bool], group: list[int]
) -> None:
    """Rows about the same image share its prefix; neither the loss nor the projector's gradients change."""
    lm_dir, chat = lm_and_chat
    model, tok = load_lm(frozen_lm(lm_dir), "cpu")
    prompt = build_prompt(tok, chat_template=chat)
    torch.manual_seed(0)
    feats = torch.randn(max(group) + 1, 16)
    projector = build_projector({"projector": "mlp", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}, 16, 64)
    group = torch.tensor(group)
    names = [NAMES[i % len(NAMES)] for i in range(len(group))]
    questions = [prompt.question_ids(f"Is there a {n} in this image?") for n in names]
    answers = [prompt.answers["Yes" if i % 3 else "No"] for i in range(len(group))]

    def loss_and_grads(shared: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        projector.zero_grad()
        if shared:
            loss = answer_loss(model, prompt.head, projector(feats), group, questions, answers)
        else:
            loss = _plain_answer_loss(model, prompt, projector(feats[group]), questions, answers)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in projector.parameters()]

    (fast, fast_grads), (plain, plain_grads) = loss_and_grads(True), loss_and_grads(False)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    for f, p in zip(fast_grads, plain_grads):
        torch.testing.assert_close(f, p, atol=1e-5, rtol=1e-4)


def test_gradients_reach_only_the_projector(tiny_lm_dir: Path) -> None:
    model, tok = load_lm(frozen_lm(tiny_lm_dir), "cpu")
    prompt = build_prompt(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    projector = build_projector({"projector": "linear", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}, 16, 64)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=1e-2)
    proj_before = [p.clone() for p in projector.parameters()]
    q = [prompt.question_ids("Is there a cat in this image?")] * 2
    embeds = projector(torch.randn(2, 16))
    loss = answer_loss(model, prompt.head, embeds, torch.arange(2), q, [prompt.answers["Yes"], prompt.answers["No"]])
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in projector.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(proj_before, projector.parameters()))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_epoch_order_by_image_keeps_each_images_rows_together() -> None:
    image_idx = torch.tensor([0, 1, 2, 3] * 5)
    rows = epoch_order(image_idx, 7, 0, "rows")
    by_image = epoch_order(image_idx, 7, 0, "images")
    assert sorted(rows.tolist()) == sorted(by_image.tolist()) == list(range(20))
    runs = [k for k, _ in itertools.groupby(image_idx[by_image].tolist())]
    assert sorted(runs) == [0, 1, 2, 3]  # one contiguous run per image
    assert torch.equal(by_image, epoch_order(image_idx, 7, 0, "images"))
    assert not torch.equal(by_image, epoch_order(image_idx, 7, 1, "images"))
    assert not torch.equal(rows, by_image)
    with pytest.raises(ValueError, match="'batching' is 'pairs'"):
        epoch_order(image_idx, 7, 0, "pairs")


def test_training_learns_and_beats_untrained(toy: dict[str, Path], tiny_lm_dir: Path) -> None:
    trained, untrained = _train(toy, tiny_lm_dir, "trained"), _train(toy, tiny_lm_dir, "untrained", epochs=0)
    curve = read_tsv(trained / "curve.tsv").astype({"loss": float, "lr": float})
    assert list(curve.columns) == ["step", "epoch", "loss", "lr"] and len(curve) == 4 * 5
    assert curve["loss"].tail(5).mean() < 0.7 * curve["loss"].head(5).mean()
    accuracy = {}
    for name, run in [("trained", trained), ("untrained", untrained)]:
        evaluate_projector(
            trained_run(tiny_lm_dir, run, toy["features"], 7),
            {"seen": toy["test"], "leaf": toy["test"]},
            8,
            run / "predictions.tsv",
            device="cpu",
        )
        pred = read_tsv(run / "predictions.tsv")
        assert list(pred.columns) == COLUMNS
        scores = pred.astype({c: float for c in ("logp_yes", "logp_no", "margin", "margin_noimage")})
        assert (scores["margin"] - (scores["logp_yes"] - scores["logp_no"])).abs().max() < 1e-5  # float32 rounding
        assert (scores.groupby("asked")["margin_noimage"].nunique() == 1).all()  # one text per name asked
        assert (pred.groupby(["test_set", "image_id", "pair"]).size() == 2).all()  # every row has its partner
        accuracy[name] = {rule: (pred[column] == pred["answer"]).mean() for rule, column in PREDICTION_COLUMNS.items()}
    assert accuracy["trained"]["absolute"] >= 0.8  # measured: 0.92
    assert accuracy["trained"]["absolute"] > accuracy["untrained"]["absolute"] + 0.3  # measured: 0.29 untrained
    assert min(accuracy["trained"].values()) >= 0.8
    assert not (toy["root"] / "trained.ckpt").exists()
    assert {"projector.pt", "curve.tsv", "train_config.json", "predictions.tsv"} <= {p.name for p in trained.iterdir()}


def test_validation_curve_tracks_learning(toy: dict[str, Path], tiny_lm_dir: Path) -> None:
    """val_curve.tsv scores the untrained projector, every `val_every` epochs and the last step; the
    trained task's validation accuracy rises (the criterion training length is chosen on)."""
    out = toy["root"] / "validated"
    train_projector(
        training_setup(tiny_lm_dir, {**TRAINING, "val_every": 1.5}, ENCODER), SharedFiles(toy["features"]),
        Member(toy["train"], 7, out, toy["root"] / "validated.ckpt", toy["test"]), device="cpu",
    )  # fmt: skip
    curve = read_tsv(out / "val_curve.tsv").astype(float)
    assert list(curve.columns) == ["step", "epoch", "n", "accuracy", "pair_accuracy", "yes_rate"]
    assert curve["step"].tolist() == [0, 8, 16, 20]  # 5 steps per epoch, 4 epochs: every 8 steps + the last
    assert (curve["n"] == len(read_tsv(toy["test"]))).all()
    assert curve["accuracy"].iloc[-1] >= 0.8 > curve["accuracy"].iloc[0]
    assert curve["pair_accuracy"].iloc[-1] >= 0.8
    ended = toy["root"] / "validated_at_end"
    train_projector(
        training_setup(tiny_lm_dir, {**TRAINING, "val_every": 0}, ENCODER), SharedFiles(toy["features"]),
        Member(toy["train"], 7, ended, toy["root"] / "ended.ckpt", toy["test"]), device="cpu",
    )  # fmt: skip
    assert read_tsv(ended / "val_curve.tsv").astype(float)["step"].tolist() == [20]  # the trained end only


@pytest.mark.parametrize("batching", ["rows", "images"])
def test_killed_job_resumes_to_the_same_projector(
    toy: dict[str, Path], tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch, batching: str
) -> None:
    reference = _train(toy, tiny_lm_dir, f"uninterrupted_{batching}", epochs=2, batching=batching, eval_every=1)
    name = f"resumed_{batching}"
    save = loop_mod.save_resume_state

    def save_then_die(path: Path, fingerprint: str, history: History, *state: object) -> None:
        save(path, fingerprint, history, *state)
        if history.step == 5:
            raise KeyboardInterrupt("killed after the first checkpoint")

    monkeypatch.setattr(loop_mod, "save_resume_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _train(toy, tiny_lm_dir, name, epochs=2, batching=batching, eval_every=1)
    assert (toy["root"] / f"{name}.ckpt").exists() and not (toy["root"] / name).exists()
    monkeypatch.setattr(loop_mod, "save_resume_state", save)
    resumed = _train(toy, tiny_lm_dir, name, epochs=2, batching=batching, eval_every=1)
    a = torch.load(reference / "projector.pt", weights_only=True)["state_dict"]
    b = torch.load(resumed / "projector.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    kept_a, kept_b = (torch.load(r / "checkpoints.pt", weights_only=True)["points"] for r in (reference, resumed))
    assert [p["step"] for p in kept_a] == [p["step"] for p in kept_b] == [5, 10]
    assert all(torch.equal(p["state_dict"][k], q["state_dict"][k]) for p, q in zip(kept_a, kept_b) for k in a)
    assert (reference / "curve.tsv").read_bytes() == (resumed / "curve.tsv").read_bytes()
    assert not (toy["root"] / f"{name}.ckpt").exists()


def test_kept_points_end_with_the_final_projector_and_are_scored_like_it(
    toy: dict[str, Path], tiny_lm_dir: Path
) -> None:
    """checkpoints.pt holds the projector every `eval_every` epochs, its last point is projector.pt, and
    the evaluation's rows of the last point are predictions.tsv's; the steps come from the config."""
    run = _train(toy, tiny_lm_dir, "kept", eval_every=1)
    points = torch.load(run / "checkpoints.pt", weights_only=True)["points"]
    assert [p["step"] for p in points] == [5, 10, 15, 20]  # 5 steps per epoch, 4 epochs
    final = torch.load(run / "projector.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(points[-1]["state_dict"][k], v) for k, v in final.items())
    assert not all(torch.equal(points[0]["state_dict"][k], v) for k, v in final.items())
    evaluate_projector(
        trained_run(tiny_lm_dir, run, toy["features"], 7), {"unseen": toy["test"]}, 8, run / "predictions.tsv",
        device="cpu", checkpoints_path=run / "checkpoints.pt", by_step_path=run / "by_step.tsv",
    )
    by_step, final_rows = read_tsv(run / "by_step.tsv"), read_tsv(run / "predictions.tsv")
    assert sorted(set(by_step["step"].astype(int))) == [5, 10, 15, 20]
    last = by_step[by_step["step"] == "20"].drop(columns=["step", "epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(last, final_rows)
    assert (by_step[by_step["step"] == "5"]["margin"].to_numpy() != final_rows["margin"].to_numpy()).any()
    assert steps_every(8, "steps", 5, 20) == {8, 16, 20} and steps_every(0, "epochs", 5, 20) == {20}
    other = _train(toy, tiny_lm_dir, "kept_other", eval_every=1, lr=1e-3)
    with pytest.raises(ValueError, match="is not .*projector.pt"):
        evaluate_projector(
            trained_run(tiny_lm_dir, run, toy["features"], 7), {"unseen": toy["test"]}, 8, run / "p.tsv",
            device="cpu", checkpoints_path=other / "checkpoints.pt", by_step_path=run / "b.tsv",
        )


def test_evaluation_refuses_a_mismatched_run(toy: dict[str, Path], tiny_lm_dir: Path) -> None:
    run = _train(toy, tiny_lm_dir, "short", epochs=0)
    with pytest.raises(ValueError, match="init=pretrained seed=7"):
        evaluate_projector(
            trained_run(tiny_lm_dir, run, toy["features"], 7, init="random"),
            {"leaf": toy["test"]},
            8,
            run / "predictions.tsv",
            device="cpu",
        )


@CUDA
def test_gpu_path_trains_and_scores_like_the_cpu_path(toy: dict[str, Path], tiny_lm_dir: Path) -> None:
    """On a GPU the LM runs in bf16 under autocast: the same run must learn the same task, its first
    loss (same init, same batch) must match the CPU's to bf16 precision, and scoring one projector on
    either device must give the same answers."""
    runs = {dev: _train(toy, tiny_lm_dir, f"device_{dev}", device=dev) for dev in ("cpu", "cuda")}
    curves = {dev: read_tsv(run / "curve.tsv").astype({"loss": float}) for dev, run in runs.items()}
    assert abs(curves["cuda"]["loss"].iloc[0] - curves["cpu"]["loss"].iloc[0]) < 0.05
    assert curves["cuda"]["loss"].tail(5).mean() < 0.7 * curves["cuda"]["loss"].head(5).mean()
    scored = {}
    for dev in ("cpu", "cuda"):
        out = toy["root"] / f"scored_on_{dev}.tsv"
        evaluate_projector(trained_run(tiny_lm_dir, runs["cuda"], toy["features"], 7), {"seen": toy["test"]}, 8, out,
                           device=dev)  # fmt: skip
        scored[dev] = read_tsv(out).astype({"logp_yes": float, "logp_no": float})
    assert (scored["cuda"]["prediction"] == scored["cuda"]["answer"]).mean() >= 0.8
    assert (scored["cuda"]["prediction"] == scored["cpu"]["prediction"]).mean() >= 0.95
    for column in ("logp_yes", "logp_no"):
        assert (scored["cuda"][column] - scored["cpu"][column]).abs().max() < 0.1


@CUDA
def test_gpu_shared_prefix_equals_one_forward_per_row(lm_and_chat: tuple[Path, bool]) -> None:
    """The fast scorer on a GPU (bf16, batched, KV reuse) against one plain forward per question there."""
    lm_dir, chat = lm_and_chat
    model, tok = load_lm(frozen_lm(lm_dir), "cuda")
    prompt = build_prompt(tok, chat_template=chat)
    torch.manual_seed(0)
    feats = torch.randn(3, 16)
    projector = build_projector({"projector": "mlp", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}, 16, 64).cuda()
    image_index = [2, 0, 2, 1, 0, 2, 1]
    questions = [f"Is there a {NAMES[i % len(NAMES)]} in this image?" for i in range(len(image_index))]
    with torch.autocast("cuda", torch.bfloat16):
        fast = score_questions(model, prompt, projector, feats, image_index, questions, batch_size=4)
        plain = score_questions_reference(model, prompt, projector, feats, image_index, questions)
    for f, p in zip(fast, plain):
        torch.testing.assert_close(f, p, atol=0.05, rtol=0.02)


# --------------------------------------------------------------------------- caption objective, naming

CAPTIONS = ["a cat.", "an owl on a branch.", "two cats, sleeping."]


@pytest.fixture(params=["llama", "llama_nobos", "gemma3"])
def plain_lm(request: pytest.FixtureRequest) -> Path:
    """The tiny LMs of the caption prompt (plain: with and without BOS; Gemma-3 with its sliding window)."""
    names = {"llama": "tiny_lm_dir", "llama_nobos": "tiny_nobos_lm_dir", "gemma3": "tiny_gemma3_dir"}
    return request.getfixturevalue(names[request.param])


def test_caption_rows_are_the_prompt_then_the_caption_and_eos(plain_lm: Path) -> None:
    _, tok = load_lm(frozen_lm(plain_lm), "cpu")
    head, prompts, targets, described = training_ids(pd.DataFrame({"caption": CAPTIONS}), tok, lm_spec(), "caption")
    assert (head, prompts[0]) == caption_prompt(tok)
    assert head + prompts[0] == tok("A picture of")["input_ids"]  # the prompt text as the LM reads it alone
    for caption, target in zip(CAPTIONS, targets):
        assert target == tok(" " + caption, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert described["prompt"] == "A picture of" and described["end"] == [tok.eos_token_id]
    with pytest.raises(ValueError, match="objective is 'captions'"):
        training_ids(pd.DataFrame({"caption": CAPTIONS}), tok, lm_spec(), "captions")


def test_caption_loss_covers_only_the_caption_tokens_and_eos(plain_lm: Path) -> None:
    """The shared-prefix loss equals HF's loss on the full sequence with every position before the caption
    masked (-100): the prompt and the image are context, never targets."""
    model, tok = load_lm(frozen_lm(plain_lm), "cpu")
    head, prompts, targets, _ = training_ids(pd.DataFrame({"caption": CAPTIONS}), tok, lm_spec(), "caption")
    torch.manual_seed(0)
    projector = build_projector({"projector": "linear", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}, 16, 64)
    embeds = projector(torch.randn(2, 16))
    group = torch.tensor([1, 0, 1])
    loss = answer_loss(model, head, embeds, group, prompts, targets)
    logits, labels, unmasked = [], [], []
    for g, q, a in zip(group.tolist(), prompts, targets):
        inputs = splice(model, head, embeds[g : g + 1], torch.tensor([q + a]))
        image = [-100] * (len(head) + embeds.shape[1])  # head and image tokens are never targets
        labels.append(torch.tensor(image + [-100] * len(q) + a)[1:])  # HF's shift: position t predicts t + 1
        unmasked.append(torch.tensor(image + q + a)[1:])
        logits.append(model(inputs_embeds=inputs).logits[0, :-1])
    expected = torch.nn.functional.cross_entropy(torch.cat(logits).float(), torch.cat(labels), ignore_index=-100)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    with_prompt = torch.nn.functional.cross_entropy(torch.cat(logits).float(), torch.cat(unmasked), ignore_index=-100)
    assert abs(with_prompt.item() - loss.item()) > 1e-3  # the mask matters: prompt tokens would change it


def test_naming_scores_equal_plain_forwards(plain_lm: Path) -> None:
    """log P(name | [head][image] A picture of) from the shared-prefix scorer equals one plain forward per
    row; the no-image baseline equals `model(input_ids=...)` of the text alone."""
    model, tok = load_lm(frozen_lm(plain_lm), "cpu")
    head, prompt_ids = caption_prompt(tok)
    names = [tok(" " + n, add_special_tokens=False)["input_ids"] for n in ("a cat", "an owl", "an axolotl", "food")]
    torch.manual_seed(0)
    feats = torch.randn(3, 16)
    projector = build_projector({"projector": "mlp", "prefix_tokens": 3, "features": "pooled", "feature_norm": "none"}, 16, 64)
    image_index = [2, 0, 1, 2, 0, 1, 1, 2]
    continuations = [names[i % len(names)] for i in range(len(image_index))]
    fast = score_continuations(model, head, prompt_ids, projector, feats, image_index, continuations, batch_size=5)
    noimage = score_continuations_without_image(model, head, prompt_ids, names, batch_size=3)

    def plain(embeds: torch.Tensor, ids: list[int]) -> torch.Tensor:
        logp = torch.log_softmax(model(inputs_embeds=embeds).logits[0].float(), dim=-1)
        start = embeds.shape[1] - len(ids) - 1  # the position that predicts the first name token
        return sum(logp[start + j, t] for j, t in enumerate(ids))

    with torch.no_grad():
        for score, image, ids in zip(fast, image_index, continuations):
            embeds = splice(model, head, projector(feats[image : image + 1]), torch.tensor([prompt_ids + ids]))
            torch.testing.assert_close(score, plain(embeds, ids), atol=1e-4, rtol=0)
        for score, ids in zip(noimage, names):
            embeds = model.get_input_embeddings()(torch.tensor([head + prompt_ids + ids]))
            torch.testing.assert_close(score, plain(embeds, ids), atol=1e-4, rtol=0)


def test_naming_pairs_go_through_the_paired_rules(toy: dict[str, Path], tiny_lm_dir: Path) -> None:
    """naming.tsv rows: only pairs (a row without its partner on the image is left out), the likelihoods
    as margins, one no-image likelihood per name, no absolute prediction, paired = the likelier name."""
    model, tok = load_lm(frozen_lm(tiny_lm_dir), "cpu")
    data = torch.load(toy["features"], weights_only=True)
    index = {image: i for i, image in enumerate(data["image_ids"])}
    table = read_tsv(toy["test"])
    lone = table.iloc[[0]].assign(question_id="cat:hypernym:animal:Yes", kind="hypernym", asked="animal")
    projector = build_projector({"projector": "linear", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}, 16, 64)
    phrases = {("leaf", "cat"): "a cat", ("leaf", "owl"): "an owl", ("hypernym", "animal"): "an animal"}
    frame = naming_frame(model, tok, projector, data["pooled"], index, {"leaf": pd.concat([table, lone])}, phrases, 5)
    assert list(frame.columns) == COLUMNS and len(frame) == len(table)  # the lone row is left out
    assert (frame["prediction"] == "").all() and frame["logp_yes"].isna().all()
    assert (frame.groupby("asked")["margin_noimage"].nunique() == 1).all()
    for _, pair in frame.groupby(["image_id", "pair"]):
        assert len(pair) == 2
        likelier = pair.loc[pair["margin"].idxmax()]
        assert (pair["prediction_paired"] == "Yes").sum() == 1 and likelier["prediction_paired"] == "Yes"
        calibrated = pair["margin"] - pair["margin_noimage"]
        assert pair.loc[calibrated.idxmax(), "prediction_paired_calibrated"] == "Yes"


def test_caption_training_learns_to_name_the_leaf(toy: dict[str, Path], tiny_lm_dir: Path) -> None:
    """A projector trained on captions only (`a cat.` / `an owl.`) names the leaf on held-out images by
    likelihood (the caption runs' validation criterion and the naming readout)."""
    root = toy["root"]
    train = read_tsv(toy["train"])
    images = train.drop_duplicates("image_id")
    captions = images.assign(caption=[f"{'an' if c == 'owl' else 'a'} {c}." for c in images["image_concept"]])
    write_tsv(captions[["image_id", "caption"]], root / "train_captions.tsv")
    concepts = pd.DataFrame({"concept": ["cat", "owl"], "name": ["cat", "owl"], "article": ["a", "an"]})
    write_tsv(concepts, root / "concepts.tsv")
    write_tsv(pd.DataFrame(columns=["hypernym", "question_form", "article"]), root / "hypernyms.tsv")
    out = root / "captioned"
    train_projector(
        training_setup(tiny_lm_dir, {**TRAINING, "epochs": 10, "batch_size": 8, "val_every": 5}, ENCODER, objective="caption"),
        SharedFiles(toy["features"], root / "concepts.tsv"),
        Member(root / "train_captions.tsv", 7, out, root / "captioned.ckpt", toy["test"]), device="cpu",
    )  # fmt: skip
    config = json.loads((out / "train_config.json").read_text())
    assert config["objective"] == "caption" and config["prompt"]["prompt"] == "A picture of"
    curve = read_tsv(out / "val_curve.tsv").astype(float)
    assert curve["step"].tolist() == [0, 25, 50]  # 5 steps per epoch, every 5 epochs
    assert curve["accuracy"].iloc[-1] >= 0.9 and curve["pair_accuracy"].iloc[-1] >= 0.9
    name_projector(
        trained_run(tiny_lm_dir, out, toy["features"], 7), {"leaf": toy["test"]}, root / "concepts.tsv",
        root / "hypernyms.tsv", 8, out / "naming.tsv", device="cpu",
    )  # fmt: skip
    naming = read_tsv(out / "naming.tsv")
    assert list(naming.columns) == COLUMNS and len(naming) == len(read_tsv(toy["test"]))
    assert (naming["prediction_paired_calibrated"] == naming["answer"]).mean() >= 0.9
