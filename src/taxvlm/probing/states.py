"""Hidden states of a trained run at every LM layer, captured in the evaluation's own forward.

The states come from `shared_prefix_forward` itself (the batched, prefix-cached pass that training
and scoring use), read by forward hooks on the decoder, so what is probed is exactly what the
LM computed when it answered. Layer ℓ = 0 is the input embeddings (image prefix spliced in), ℓ = 1..L
the decoder layers' outputs, the last one after the final norm: the convention of HF
`output_hidden_states`, which the tests compare against.

Positions (`POSITIONS`):
- `answer`: the last prompt token of a question row (the position whose logits give Yes/No);
- `target`: the last token of the question's target word (the name asked about, e.g. `owl` in
  `Is there an owl in this image?`), found from `questions.template`'s text after `{name}`;
- `image`: the mean over the k image-prefix positions; per image (causal attention makes it
  independent of the question).

Rows: the run's test rows (those of predictions.tsv, with row ids) and its training rows (train.tsv),
each a seeded subsample of at most `max_test_rows` / `max_train_rows` (null = all); images: every
image of the kept rows. rows.tsv also keeps each row's Yes/No margin from this forward (the LM's own
answer, compared with the probes'). The cache is
one folder per run: `{position}.npy`, fp16 `[L+1, N, d]` (layer-major, so a probe reads one layer
contiguously), written through a memory map batch by batch (never a whole layer in RAM), with
`rows.tsv` / `images.tsv` giving the row ids in order and `meta.json` (layers, width, the check below).

Before caching, the run is checked: `train_config.json` must record the LM spec the config has now,
and the Yes/No margins recomputed from the captured forward must match predictions.tsv (median
|Δ| ≤ `margin_tolerance`), else one error names the run (a changed LM or projector).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from taxvlm.data.errors import DataError, MissingDataError
from taxvlm.devices import flush_denormals_on_cpu, resolve_device
from taxvlm.io import atomic_dir, load_pt, read_json, read_tsv, write_json, write_tsv
from taxvlm.models.lms import (
    PromptFormat,
    build_prompt,
    common_prefix_len,
    lm_logits,
    shared_prefix_forward,
)
from taxvlm.evaluation.runs import LoadedRun, load_run
from taxvlm.seeding import rng
from taxvlm.specs import TrainedRun

log = logging.getLogger(__name__)

POSITIONS = ("answer", "target", "image")
ROW_COLUMNS = [
    "split",
    "test_set",
    "row_id",
    "question_id",
    "image_id",
    "image_concept",
    "leaf",
    "kind",
    "asked",
    "answer",
]
IMAGE_COLUMNS = ["split", "image_id", "image_concept", "leaf"]


@contextlib.contextmanager
def layer_hooks(model: nn.Module) -> Iterator[list[list[torch.Tensor]]]:
    """Yield one list per hidden-state index (0 = input embeddings, .., L = final norm output) that
    fills with that state's tensor on every decoder call made inside the block."""
    base = model.base_model
    layers, norm = getattr(base, "layers", None), getattr(base, "norm", None)
    if layers is None or norm is None:
        raise ValueError(f"LM {type(base).__name__} has no .layers/.norm: layer-wise capture is unsupported")
    calls: list[list[torch.Tensor]] = [[] for _ in range(len(layers) + 1)]

    def first(module: nn.Module, args: tuple, kwargs: dict) -> None:
        calls[0].append(args[0] if args else kwargs["hidden_states"])

    def after(index: int):
        return lambda module, args, out: calls[index].append(out if torch.is_tensor(out) else out[0])

    handles = [layers[0].register_forward_pre_hook(first, with_kwargs=True)]
    handles += [layer.register_forward_hook(after(i + 1)) for i, layer in enumerate(layers[:-1])]
    handles.append(norm.register_forward_hook(after(len(layers))))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _at(
    calls: list[list[torch.Tensor]], group: torch.Tensor, prefix_len: int, rows: torch.Tensor, pos: torch.Tensor
) -> torch.Tensor:
    """`[L+1, B, d]` states of rows at absolute positions `pos`, from the hooks' one pass (`[B, T, d]`)
    or two passes (prefix `[G, P, d]` per image, then suffix `[B, S, d]` per row)."""
    out = []
    for layer in calls:
        if len(layer) == 1:
            out.append(layer[0][rows, pos])
            continue
        prefix, suffix = layer
        in_prefix = pos < prefix_len
        state = suffix[rows, (pos - prefix_len).clamp(min=0)]
        state[in_prefix] = prefix[group[rows[in_prefix]], pos[in_prefix]]
        out.append(state)
    return torch.stack(out)


def batch_states(
    model: nn.Module,
    prompt: PromptFormat,
    image_embeds: torch.Tensor,
    group: torch.Tensor,
    ids: list[list[int]],
    target_pos: list[int],
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """States of one batch (`answer`/`target` `[L+1, B, d]` per row, `image` `[L+1, G, d]` per image)
    and the final hidden state at each answer position `[B, d]` (for the margin check)."""
    shared = common_prefix_len(ids)
    dev = image_embeds.device
    group = group.to(dev)
    with layer_hooks(model) as calls:
        hidden, lengths = shared_prefix_forward(
            model, prompt.head, image_embeds, ids[0][:shared], group, [q[shared:] for q in ids]
        )
    start = len(prompt.head) + image_embeds.shape[1]  # where the question tokens begin
    rows = torch.arange(len(ids), device=dev)
    lengths = lengths.to(dev)
    answer = _at(calls, group, start + shared, rows, start + shared + lengths - 1)
    target = _at(calls, group, start + shared, rows, start + torch.tensor(target_pos, device=dev))
    first_row = torch.stack([(group == g).nonzero()[0, 0] for g in range(len(image_embeds))])
    image = torch.stack(
        [
            _at(calls, group, start + shared, first_row, torch.full_like(first_row, p))
            for p in range(len(prompt.head), start)
        ]
    ).mean(0)
    return {"answer": answer, "target": target, "image": image}, hidden[rows, lengths - 1]


def target_position(prompt: PromptFormat, question: str, name_suffix: str) -> int:
    """Index in `prompt.question_ids(question)` of the last token of the target word: the word that
    ends where the template's text after `{name}` (`name_suffix`) begins."""
    if not question.endswith(name_suffix):
        raise DataError(f"question {question!r} does not end with the template's text after {{name}}: {name_suffix!r}")
    template = prompt.describe()["question"]
    offset = template.index("{question}")
    full = template.replace("{question}", question)
    end = offset + len(question) - len(name_suffix)
    enc = prompt.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    last = max(i for i, (s, _) in enumerate(enc["offset_mapping"]) if s < end)
    return last - prompt.text_head


def check_run(
    run: str,
    projector_ckpt: dict[str, Any],
    train_config: dict[str, Any],
    lm_spec: dict[str, Any],
    init: str,
    seed: int,
) -> None:
    """Fail, naming the run, when its projector or LM is not the one the config describes now."""
    if (projector_ckpt["init"], projector_ckpt["seed"]) != (init, seed):
        raise DataError(
            f"run {run}: projector.pt was trained with init={projector_ckpt['init']} seed={projector_ckpt['seed']}"
        )
    if train_config.get("lm") != lm_spec:
        raise DataError(
            f"run {run}: the LM changed since training (train_config.json lm={train_config.get('lm')}, config now {lm_spec}); "
            "retrain and re-evaluate it before probing"
        )


def _subsample(rows: pd.DataFrame, cap: int | None, seed: int, key: str) -> pd.DataFrame:
    """A seeded subsample of at most `cap` rows, in their original order (all rows when cap is None)."""
    if cap is None or len(rows) <= cap:
        return rows
    keep = rng(seed, key).choice(len(rows), size=cap, replace=False)
    return rows.iloc[np.sort(keep)]


def probe_rows(tables: dict[str, Path], predictions: Path, run: str, settings: dict[str, Any]) -> pd.DataFrame:
    """The rows to capture, in ROW_COLUMNS + `text`: the test rows of predictions.tsv and the training
    rows, each a seeded subsample of at most `max_test_rows` / `max_train_rows` (null: all). Only the
    test sets in `tables` are probed: predictions.tsv's `null` rows have no true answer on their images."""
    if not predictions.is_file():
        raise MissingDataError(f"run {run}: no predictions ({predictions}); evaluate the run before probing it")
    frames = [
        read_tsv(path).assign(split="train" if name == "train" else "test", test_set=name)
        for name, path in tables.items()
    ]
    rows = pd.concat(frames, ignore_index=True)
    train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    predicted = read_tsv(predictions)
    predicted = predicted[predicted["test_set"].isin(tables)]
    if set(zip(predicted["test_set"], predicted["row_id"])) != set(zip(test["test_set"], test["row_id"])):
        raise DataError(f"run {run}: {predictions} does not list the rows of its test tables; re-evaluate the run")
    seed = settings["seed"]
    train = _subsample(train, settings["max_train_rows"], seed, "probe-train-rows")
    test = _subsample(test, settings["max_test_rows"], seed, "probe-test-rows")
    return pd.concat([train, test], ignore_index=True)


def image_table(rows: pd.DataFrame, run: str) -> pd.DataFrame:
    """One row per image with the leaf its questions are about (under a shuffle, not its concept)."""
    images = rows[IMAGE_COLUMNS].drop_duplicates().sort_values(["split", "image_id"]).reset_index(drop=True)
    if images["image_id"].duplicated().any():
        bad = images.loc[images["image_id"].duplicated(), "image_id"].iloc[0]
        raise DataError(f"run {run}: image {bad} carries questions about several leaves or sits in two splits")
    return images


def _open(out: Path, shape: tuple[int, int, int]) -> np.memmap:
    return np.lib.format.open_memmap(out, mode="w+", dtype=np.float16, shape=shape)


def _load(run: TrainedRun, dev: torch.device) -> LoadedRun:
    """The run, loaded after checking that its projector and LM are the ones the config describes."""
    run_dir = run.projector.parent
    ckpt = load_pt(run.projector)
    train_config = read_json(run_dir / "train_config.json")
    check_run(str(run_dir), ckpt, train_config, run.lm.spec.record(), run.lm.init, run.seed)
    return load_run(run, dev)


@torch.inference_mode()
def _stream(
    model: nn.Module,
    prompt: PromptFormat,
    projector: nn.Module,
    feats: torch.Tensor,
    index: dict[str, int],
    rows: pd.DataFrame,
    images: pd.DataFrame,
    ids: list[list[int]],
    targets: list[int],
    batch_size: int,
    folder: Path,
) -> np.ndarray:
    """Write every batch's states into the memory-mapped caches; return the answer margins."""
    dev = next(projector.parameters()).device
    n_states = len(model.base_model.layers) + 1
    d = model.config.hidden_size
    maps = {p: _open(folder / f"{p}.npy", (n_states, len(rows) if p != "image" else len(images), d)) for p in POSITIONS}
    image_row = {image_id: i for i, image_id in enumerate(images["image_id"])}
    feature_row = torch.tensor([index[i] for i in rows["image_id"]])
    margins = np.empty(len(rows), dtype=np.float32)
    yes, no = prompt.choice_ids
    for chunk in torch.argsort(feature_row, stable=True).split(batch_size):
        uniq, group = torch.unique(feature_row[chunk], return_inverse=True)
        idx = chunk.tolist()
        states, last = batch_states(
            model,
            prompt,
            projector(feats[uniq].to(dev).float()),
            group,
            [ids[i] for i in idx],
            [targets[i] for i in idx],
        )
        for p in ("answer", "target"):
            maps[p][:, idx] = states[p].float().cpu().numpy().astype(np.float16)
        firsts = [idx[int((group == g).nonzero()[0, 0])] for g in range(len(uniq))]
        maps["image"][:, [image_row[rows["image_id"].iat[i]] for i in firsts]] = states["image"].float().cpu().numpy()
        logp = torch.log_softmax(lm_logits(model, last).float(), dim=-1)[:, [yes, no]].cpu()
        margins[idx] = (logp[:, 0] - logp[:, 1]).numpy()
    for m in maps.values():
        m.flush()
    return margins


def check_margins(run: str, rows: pd.DataFrame, margins: np.ndarray, predictions: Path, tolerance: float) -> float:
    """Median |Δ margin| between this forward and predictions.tsv on the test rows; fails above
    `tolerance` (the LM, projector or features changed since evaluation)."""
    predicted = read_tsv(predictions).set_index(["test_set", "row_id"])["margin"].astype(float)
    test = rows["split"].to_numpy() == "test"
    keys = pd.MultiIndex.from_frame(rows.loc[test, ["test_set", "row_id"]])
    delta = float(np.median(np.abs(margins[test] - predicted.reindex(keys).to_numpy()))) if test.any() else 0.0
    if not delta <= tolerance:
        raise DataError(
            f"run {run}: this LM does not reproduce predictions.tsv (median |Δ margin| = {delta:.3g} > {tolerance}); "
            "the LM, projector or features changed since evaluation: re-evaluate the run"
        )
    return delta


def capture_states(
    run: TrainedRun, tables: dict[str, Path], settings: dict[str, Any], out_dir: Path, device: str = "auto"
) -> None:
    """Cache one run's states (module docstring); the run's folder is its projector's. `tables`:
    `train` (train.tsv) and the test tables `seen`/`unseen`/`leaf`; `settings`: `batch_size`,
    `max_train_rows`, `max_test_rows`, `seed`, `margin_tolerance`, `name_suffix` (the question
    template's text after `{name}`)."""
    dev = resolve_device(device)
    flush_denormals_on_cpu(dev)
    run_dir = run.projector.parent
    name = str(run_dir)
    rows = probe_rows(tables, run_dir / "predictions.tsv", name, settings)
    images = image_table(rows, name)
    loaded = _load(run, dev)
    model, projector = loaded.model, loaded.projector
    prompt = build_prompt(loaded.tokenizer, run.lm.spec.chat_template)
    ids = [prompt.question_ids(q) for q in rows["text"]]
    targets = [target_position(prompt, q, settings["name_suffix"]) for q in rows["text"]]
    t0 = time.perf_counter()
    with atomic_dir(out_dir) as folder:
        with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
            margins = _stream(
                model, prompt, projector, loaded.feats, loaded.index, rows, images, ids, targets,
                settings["batch_size"], folder,
            )  # fmt: skip
        delta = check_margins(name, rows, margins, run_dir / "predictions.tsv", settings["margin_tolerance"])
        write_tsv(rows[ROW_COLUMNS].assign(margin=margins), folder / "rows.tsv")
        write_tsv(images, folder / "images.tsv")
        n_layers = len(model.base_model.layers)
        write_json(
            {
                "layers": n_layers,
                "hidden_size": model.config.hidden_size,
                "positions": list(POSITIONS),
                "median_abs_margin_delta": delta,
                "rows": len(rows),
                "images": len(images),
            },
            folder / "meta.json",
        )
    log.info(
        "%s: %d rows, %d images, %d layers in %.1fs (median |Δ margin| %.2g)",
        name,
        len(rows),
        len(images),
        n_layers,
        time.perf_counter() - t0,
        delta,
    )
