"""The text upper bound on tiny LMs: the scored tokens are the VLM's prompt with the leaf's text in the
image's place, the margins equal a plain forward, and the rule's file has predictions.tsv's columns."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

from taxvlm.analysis.upper_bound import UPPER_BOUND_COLUMNS, leaf_texts, upper_bound_frame, upper_bound_job
from taxvlm.io import read_tsv, write_tsv
from taxvlm.models.lms import build_prompt, caption_prompt, load_lm
from taxvlm.evaluation.scoring import naming_phrases

from spec_builders import frozen_lm

CONCEPTS = pd.DataFrame(
    [
        ("owl1", "owl", "an"),
        ("blackbird", "blackbird", "a"),
        ("nandu", "ñandú", "a"),  # outside the tiny tokenizer's corpus: a long text
        ("jeans", "jeans", ""),
        ("hammer", "hammer", "a"),
    ],
    columns=["concept", "name", "article"],
)
HYPERNYMS = pd.DataFrame(
    [
        ("animal", "animal", "an"),
        ("bird", "bird", "a"),
        ("clothing", "item of clothing", "an"),
        ("food", "food", ""),
        ("tool", "tool", "a"),
    ],
    columns=["hypernym", "question_form", "article"],
)
# (leaf, positive hypernym, matched negative or None: a positive left without a foil)
MATCHED = [
    ("owl1", "bird", "tool"),
    ("blackbird", "bird", "clothing"),
    ("blackbird", "animal", "food"),
    ("nandu", "bird", "tool"),
    ("nandu", "animal", None),
    ("jeans", "clothing", "animal"),
    ("hammer", "tool", "bird"),
]
IMAGE = -1  # a placeholder id for an image position of the VLM's sequence


def _question(leaf: str, target: str, asked: str, answer: str) -> dict[str, str]:
    form, article = HYPERNYMS.set_index("hypernym").loc[asked, ["question_form", "article"]]
    return {
        "question_id": f"{leaf}:hypernym:{target}:{answer}",
        "leaf": leaf,
        "kind": "hypernym",
        "asked": asked,
        "answer": answer,
        "target": target,
        "text": " ".join(f"Is there {article} {form} in this image?".split()),
    }


def questions_table() -> pd.DataFrame:
    rows = [
        {"question_id": f"{c}:leaf:{c}:Yes", "leaf": c, "kind": "leaf", "asked": c, "answer": "Yes", "target": c}
        | {"text": f"Is there a {n} in this image?"}
        for c, n in zip(CONCEPTS["concept"], CONCEPTS["name"])
    ]
    for leaf, positive, negative in MATCHED:
        rows.append(_question(leaf, positive, positive, "Yes"))
        if negative:
            rows.append(_question(leaf, positive, negative, "No"))
    return pd.DataFrame(rows)


def _frame(model: nn.Module, tok: Any, chat: bool, batch_size: int) -> pd.DataFrame:
    """The upper bound's rows, with each question's text (which predictions.tsv's columns leave out)."""
    questions = questions_table()
    frame = upper_bound_frame(model, tok, chat, CONCEPTS, HYPERNYMS, questions, batch_size)
    return frame.assign(text=frame["question_id"].map(questions.set_index("question_id")["text"]))


def _replace_image(sequence: list[int], text: list[int]) -> list[int]:
    """The VLM's token sequence with its run of image positions replaced by `text`."""
    start = sequence.index(IMAGE)
    end = len(sequence) - sequence[::-1].index(IMAGE)
    assert set(sequence[start:end]) == {IMAGE} and IMAGE not in sequence[end:]
    return sequence[:start] + text + sequence[end:]


def _decoder_inputs(model: nn.Module) -> tuple[list[torch.Tensor], Any]:
    """Every `inputs_embeds` the decoder receives, recorded by a hook (and the hook's handle)."""
    seen: list[torch.Tensor] = []

    def hook(_module: nn.Module, _args: tuple, kwargs: dict) -> None:
        seen.append(kwargs["inputs_embeds"].detach().clone())

    return seen, model.base_model.register_forward_pre_hook(hook, with_kwargs=True)


def _as_ids(embeds: torch.Tensor, weight: torch.Tensor) -> list[tuple[int, ...]]:
    """Token ids of embedded sequences `[B, L, d]`: each position must equal exactly one embedding row."""
    matches = (embeds[:, :, None, :] == weight[None, None]).all(-1)
    assert (matches.sum(-1) == 1).all(), "a decoder input is not a token's embedding"
    return [tuple(row.tolist()) for row in matches.float().argmax(-1)]


@pytest.fixture(params=["llama", "llama_nobos", "llama_chat"])
def lm_and_chat(request: pytest.FixtureRequest) -> tuple[Path, bool]:
    """A tokenizer with BOS, one without (the image after the text's first token), and the chat format."""
    name = {"llama": "tiny_lm_dir", "llama_nobos": "tiny_nobos_lm_dir", "llama_chat": "tiny_chat_lm_dir"}
    return request.getfixturevalue(name[request.param]), request.param == "llama_chat"


def test_scored_tokens_are_the_vlm_prompt_with_the_text_in_the_image_place(lm_and_chat: tuple[Path, bool]) -> None:
    """Every sequence the decoder sees (batch size 1: one unpadded pass per row) is one the VLM scores,
    with the image positions holding the leaf's text, or the VLM's own no-image sequence."""
    lm_dir, chat = lm_and_chat
    model, tok = load_lm(frozen_lm(lm_dir), "cpu")
    seen, handle = _decoder_inputs(model)
    frame = _frame(model, tok, chat, batch_size=1)
    handle.remove()
    weight = model.get_input_embeddings().weight
    scored = Counter(ids for embeds in seen for ids in _as_ids(embeds, weight))

    texts = leaf_texts(CONCEPTS, HYPERNYMS)
    assert texts["blackbird"] == "a blackbird." and texts["jeans"] == "jeans."
    text_ids = {leaf: tok(t, add_special_tokens=False)["input_ids"] for leaf, t in texts.items()}
    prompt = build_prompt(tok, chat)
    head, caption = caption_prompt(tok)
    phrases = naming_phrases(CONCEPTS, HYPERNYMS)
    expected: Counter = Counter()
    for row in frame.itertuples():
        k, text = len(text_ids[row.leaf]), text_ids[row.leaf]
        if row.readout == "yesno":
            vlm = prompt.head + [IMAGE] * k + prompt.question_ids(row.text)
            expected[tuple(_replace_image(vlm, text))] += 1
        else:
            name = tok(" " + phrases[("hypernym", row.asked)], add_special_tokens=False)["input_ids"]
            vlm = head + [IMAGE] * k + caption + name
            expected[tuple(_replace_image(vlm, text)[:-1])] += 1  # the last token is predicted, never fed
    questions = sorted(set(frame.loc[frame["readout"] == "yesno", "text"]))
    expected.update(tuple(prompt.head + prompt.question_ids(q)) for q in questions)
    names = {phrases[("hypernym", a)] for a in frame.loc[frame["readout"] == "naming", "asked"]}
    expected.update(tuple(head + caption + tok(" " + n, add_special_tokens=False)["input_ids"]) for n in names)
    assert scored == expected
    if not chat:  # the image (and so the text) follows the first token: BOS, or the text's own first token
        first = tok("Question: Is there a bird in this image? Answer:")["input_ids"][:1]
        assert prompt.head == first


def _plain_logprobs(model: nn.Module, ids: list[int]) -> torch.Tensor:
    """log-softmax at every position of one plain `model(input_ids=...)` forward."""
    with torch.inference_mode():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)


def _plain_loglik(model: nn.Module, context: list[int], continuation: list[int]) -> torch.Tensor:
    """log P(continuation | context), summed over its tokens, from one plain forward."""
    logp = _plain_logprobs(model, context + continuation)[len(context) - 1 : -1]
    return logp.gather(1, torch.tensor(continuation)[:, None]).sum()


@pytest.mark.parametrize("lm_fixture", ["tiny_lm_dir", "tiny_nobos_lm_dir"])
def test_margins_equal_a_plain_forward_of_the_same_tokens(lm_fixture: str, request: pytest.FixtureRequest) -> None:
    """The batched path (shared text prefix, rows grouped by text length) against one plain forward of
    each row's full token sequence, with the text and without it."""
    model, tok = load_lm(frozen_lm(request.getfixturevalue(lm_fixture)), "cpu")
    frame = _frame(model, tok, False, batch_size=64)
    texts = leaf_texts(CONCEPTS, HYPERNYMS)
    prompt = build_prompt(tok)
    head, caption = caption_prompt(tok)
    phrases = naming_phrases(CONCEPTS, HYPERNYMS)
    yes, no = prompt.choice_ids
    for row in frame.itertuples():
        text = tok(texts[row.leaf], add_special_tokens=False)["input_ids"]
        if row.readout == "yesno":
            question = prompt.question_ids(row.text)
            with_text = _plain_logprobs(model, prompt.head + text + question)[-1]
            without = _plain_logprobs(model, prompt.head + question)[-1]
            reference = (with_text[yes] - with_text[no], without[yes] - without[no])
        else:
            name = tok(" " + phrases[("hypernym", row.asked)], add_special_tokens=False)["input_ids"]
            reference = tuple(
                _plain_loglik(model, context, name) for context in (head + text + caption, head + caption)
            )
        assert row.margin == pytest.approx(float(reference[0]), abs=1e-4)
        assert row.margin_noimage == pytest.approx(float(reference[1]), abs=1e-4)


def test_pretrained_and_random_twin_write_the_file(tiny_lm_dir: Path, tmp_path: Path) -> None:
    inputs = {"concepts": tmp_path / "concepts.tsv", "hypernyms": tmp_path / "hypernyms.tsv"}
    inputs["questions"] = tmp_path / "questions.tsv"
    for table, name in ((CONCEPTS, "concepts"), (HYPERNYMS, "hypernyms"), (questions_table(), "questions")):
        write_tsv(table, inputs[name])
    files = {}
    for init in ("pretrained", "random"):
        files[init] = tmp_path / "upper_bound" / f"{init}.tsv"
        upper_bound_job(frozen_lm(tiny_lm_dir, init), inputs, 4, files[init])
    pretrained, random = (read_tsv(files[init]) for init in ("pretrained", "random"))
    hypernym_ids = [q for q in questions_table()["question_id"] if ":hypernym:" in q]
    for frame in (pretrained, random):
        assert list(frame.columns) == UPPER_BOUND_COLUMNS
        assert list(frame["row_id"]) == sorted(frame["row_id"])
        assert (frame["row_id"] == frame["readout"] + "|" + frame["question_id"]).all()
        assert set(frame["test_set"]) == {"text"} and (frame["image_id"] == "text:" + frame["leaf"]).all()
        yesno, naming = frame[frame["readout"] == "yesno"], frame[frame["readout"] == "naming"]
        assert sorted(yesno["question_id"]) == sorted(hypernym_ids)  # the unpaired positive kept, as predictions.tsv
        assert sorted(naming["question_id"]) == sorted(q for q in hypernym_ids if q != "nandu:hypernym:animal:Yes")
        assert (yesno["pair"] + ":" + yesno["answer"] == yesno["question_id"]).all()
        assert (naming[["logp_yes", "logp_no", "prediction"]] == "").all().all()
        assert (yesno[["logp_yes", "logp_no", "prediction"]] != "").all().all()
        assert set(frame["prediction_paired_calibrated"]) <= {"Yes", "No"}
    assert not (pretrained["margin"].astype(float) == random["margin"].astype(float)).any()
