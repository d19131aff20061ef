"""Train the projector through a frozen LM on cached image features; checkpointed and resumable.

Fast paths: the encoder never runs (features are cached), the LM's weights get no gradients
(`requires_grad=False`; only activations are back-propagated to the projector), the LM head is
applied only at the answer positions instead of producing full-vocabulary logits everywhere, and rows
about the same image share one prefix computation (which pays off with `batching: images`, where a
batch holds a few images with all their questions, when FLOPs bound the step: on a CPU, or a large LM
on a GPU; the default `rows` keeps i.i.d. row batches, which run in one pass).

Objectives (a run's `objective`; one loop, one loss): a training row is (prompt ids after the image,
target ids), and the loss is the mean next-token cross-entropy over the target tokens only (the
prompt is masked by never computing logits there; `continuation_logits`).
- `yesno` (`train.tsv`): prompt = the question (`taxvlm.models.lms` format), target = ` Yes`/` No`
  + end token;
- `caption` (`train_captions.tsv`, LiMBeR): prompt = `A picture of` after the image
  (`taxvlm.models.lms.caption_prompt`; plain text whatever the LM's `chat_template`, as LiMBeR prompts),
  target = ` {caption}` + EOS.

Learning criterion: with a validation table (`val_leaf.tsv`: leaf questions on validation images,
trained questions on unseen images and never a held-out hypernym), the run scores it after every
`val_every` epochs and writes `val_curve.tsv`: the table training length and learning rate are chosen
on, and the evidence that a run learned its task. Columns `accuracy` and `yes_rate` are under the
run's own readout rule, `pair_accuracy` is how often the positive's raw score beats its matched
negative's on the same image:
- `yesno`: accuracy and yes rate under the absolute rule, on the Yes−No margins;
- `caption` (**decision**): leaf naming by likelihood (`taxvlm.scoring.naming_frame`): accuracy and
  yes rate under `paired_calibrated`, the readout that cancels each name's prior; pair accuracy on
  the raw log-likelihoods. The names' no-image likelihoods are computed once (the LM is frozen).

Kept points (`training.eval_every`, in `eval_every_unit`s: epochs or steps): the projector's state at
those steps and at the last one is kept in `checkpoints.pt`, which the evaluation scores to follow the
readouts along training (`taxvlm.evaluate`). The kept steps follow from the config alone, never from
a score, so no point is ever picked by a result; the last one is the run's projector.

Reproducibility: the projector init comes from `derive_seed(seed, "projector")`; the data order of
epoch e from `rng(seed, "order", e)` (`epoch_order`; stateless, so a resumed run sees the same order); nothing
else is random (LM in eval mode, no dropout). A resumed run therefore ends bit-identical to an
uninterrupted one on the same machine and thread count.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from taxvlm.config import OBJECTIVES
from taxvlm.data.captions import caption_target
from taxvlm.decision import absolute, pair_id
from taxvlm.scoring import continuation_logits, naming_frame, naming_phrases, score_questions
from taxvlm.devices import flush_denormals_on_cpu, resolve_device
from taxvlm.features import load_features
from taxvlm.io import atomic_path, read_tsv, sha256_file, write_json, write_tsv
from taxvlm.models.lms import CAPTION_PROMPT, PromptFormat, build_prompt, caption_prompt, load_lm, loaded_lm, twin_seed
from taxvlm.models.projector import build_projector, projector_spec
from taxvlm.progress import Progress
from taxvlm.seeding import derive_seed, rng

log = logging.getLogger(__name__)


def answer_loss(
    model: nn.Module,
    head: list[int],
    image_embeds: torch.Tensor,
    group: torch.Tensor,
    question_ids: list[list[int]],
    answer_ids: list[list[int]],
) -> torch.Tensor:
    """Mean next-token cross-entropy over the target tokens (+ end token) only; the prompt is masked
    by never computing logits there. Row i is `[head] [image_embeds[group[i]]] [question_ids[i]]
    [answer_ids[i]]` (a question and its answer, or the caption prompt and the caption); rows about the
    same image share its prefix computation (`shared_prefix_forward`)."""
    logits, _, targets = continuation_logits(model, head, image_embeds, group, question_ids, answer_ids)
    return F.cross_entropy(logits.float(), targets)


def training_ids(
    rows: pd.DataFrame, tokenizer: Any, lm_spec: dict[str, Any], objective: str
) -> tuple[list[int], list[list[int]], list[list[int]], dict[str, Any]]:
    """(head before the image, prompt ids and target ids per training row, a JSON-able description of
    the format) for `objective` (module docstring)."""
    if objective == "yesno":
        prompt = build_prompt(tokenizer, bool(lm_spec.get("chat_template", False)))
        by_text = {text: prompt.question_ids(text) for text in sorted(set(rows["text"]))}
        answers = [prompt.answers[a] for a in rows["answer"]]
        return prompt.head, [by_text[t] for t in rows["text"]], answers, prompt.describe()
    if objective == "caption":
        if tokenizer.eos_token_id is None:
            raise ValueError("the caption objective needs an EOS token; the tokenizer has none")
        head, prompt_ids = caption_prompt(tokenizer)
        eos = [tokenizer.eos_token_id]
        targets = {
            c: tokenizer(caption_target(c), add_special_tokens=False)["input_ids"] + eos
            for c in sorted(set(rows["caption"]))
        }
        described = {
            "head": head, "prompt": CAPTION_PROMPT, "prompt_ids": prompt_ids, "target": " {caption}", "end": eos
        }
        return head, [prompt_ids] * len(rows), [targets[c] for c in rows["caption"]], described
    raise ValueError(f"objective is {objective!r}; expected one of {list(OBJECTIVES)}")


def batch_loss(
    model: nn.Module,
    head: list[int],
    projector: nn.Module,
    feats: torch.Tensor,
    image_idx: torch.Tensor,
    question_ids: list[list[int]],
    answer_ids: list[list[int]],
) -> torch.Tensor:
    """`answer_loss` of one batch from the feature cache: each distinct image is projected once (bf16
    autocast on GPU); row i is about image `feats[image_idx[i]]`."""
    dev = next(projector.parameters()).device
    images, group = torch.unique(image_idx, return_inverse=True)
    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        return answer_loss(model, head, projector(feats[images].to(dev).float()), group, question_ids, answer_ids)


VAL_BATCH_SIZE = 64
VAL_COLUMNS = ["step", "epoch", "n", "accuracy", "pair_accuracy", "yes_rate"]


def validation_scores(
    model: nn.Module,
    prompt: PromptFormat,
    projector: nn.Module,
    feats: torch.Tensor,
    index: dict[str, int],
    table: pd.DataFrame,
    batch_size: int,
) -> dict[str, float]:
    """Accuracy (absolute rule), pair accuracy (the positive's margin beats its matched negative's)
    and the share of Yes answers on a validation table; the projector is left in train mode."""
    projector.eval()
    logp_yes, logp_no = score_questions(
        model, prompt, projector, feats, [index[i] for i in table["image_id"]], list(table["text"]), batch_size
    )
    projector.train()
    frame = table.assign(
        test_set="val", pair=table["question_id"].map(pair_id), margin=(logp_yes - logp_no).numpy()
    )
    by_pair = frame.pivot_table(index=["image_id", "pair"], columns="answer", values="margin").dropna()
    return {
        "n": len(frame),
        "accuracy": float((absolute(frame["margin"]) == frame["answer"]).mean()),
        "pair_accuracy": float((by_pair["Yes"] > by_pair["No"]).mean()),
        "yes_rate": float((absolute(frame["margin"]) == "Yes").mean()),
    }


def naming_validation_scores(
    model: nn.Module,
    tokenizer: Any,
    projector: nn.Module,
    feats: torch.Tensor,
    index: dict[str, int],
    table: pd.DataFrame,
    phrases: dict[tuple[str, str], str],
    batch_size: int,
    noimage: dict[str, float],
) -> dict[str, float]:
    """Leaf naming on a validation table (module docstring: the caption objective's criterion):
    accuracy and Yes share under `paired_calibrated`, pair accuracy on the raw log-likelihoods;
    `noimage` caches each name's no-image likelihood; the projector is left in train mode."""
    projector.eval()
    frame = naming_frame(model, tokenizer, projector, feats, index, {"val": table}, phrases, batch_size, noimage)
    projector.train()
    by_pair = frame.pivot_table(index=["image_id", "pair"], columns="answer", values="margin").dropna()
    calibrated = frame["prediction_paired_calibrated"]
    return {
        "n": len(frame),
        "accuracy": float((calibrated == frame["answer"]).mean()),
        "pair_accuracy": float((by_pair["Yes"] > by_pair["No"]).mean()),
        "yes_rate": float((calibrated == "Yes").mean()),
    }


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """LR factor: linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


def epoch_order(image_idx: torch.Tensor, seed: int, epoch: int, batching: str = "rows") -> torch.Tensor:
    """Row order of one epoch. `rows`: a seeded permutation of the rows. `images`: the same rows
    regrouped so that each image's rows are consecutive (images in a seeded random order), so a batch
    holds a few images with all their questions and each image's prefix runs once per batch."""
    gen = rng(seed, "order", epoch)
    order = gen.permutation(len(image_idx))
    if batching == "images":
        image_rank = gen.permutation(int(image_idx.max()) + 1)
        order = order[np.argsort(image_rank[image_idx.numpy()[order]], kind="stable")]
    elif batching != "rows":
        raise ValueError(f"training field 'batching' is {batching!r}; expected 'rows' or 'images'")
    return torch.from_numpy(order)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic kernels for the block (cheap on CPU; on GPU it would need cuBLAS workspace config)."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled or previous)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _save_checkpoint(state: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _fingerprint(config: dict[str, Any], train_tsv: Path, n_images: int) -> str:
    """What a checkpoint must match to be resumed: the run config, the training table, the feature count."""
    blob = json.dumps([config, sha256_file(train_tsv), n_images], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _resume(
    path: Path, fingerprint: str, projector: nn.Module, optimizer: Any, scheduler: Any, dev: torch.device
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Load a matching checkpoint into the training state; return (step, loss curve, validation curve,
    kept points)."""
    if not path.exists():
        return 0, [], [], []
    state = torch.load(path, map_location=dev, weights_only=True)
    if state["fingerprint"] != fingerprint:
        log.warning("ignoring %s: it belongs to another run configuration", path)
        return 0, [], [], []
    projector.load_state_dict(state["projector"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    log.info("resumed from %s at step %d", path, state["step"])
    return state["step"], state["curve"], state["val_curve"], state["kept"]


def train_projector(
    features_path: Path,
    train_tsv: Path,
    lm_spec: dict[str, Any],
    lm_weights_dir: Path | None,
    encoder_spec: dict[str, Any],
    init: str,
    training: dict[str, Any],
    seed: int,
    out_dir: Path,
    checkpoint_path: Path,
    device: str = "auto",
    val_tsv: Path | None = None,
    objective: str = "yesno",
    concepts_tsv: Path | None = None,
) -> None:
    """Write `projector.pt`, `curve.tsv`, `val_curve.tsv` and `train_config.json` to `out_dir`; resume
    from `checkpoint_path` when it matches this run, and delete it at the end. `train_tsv` is the
    objective's table (`train.tsv` or `train_captions.tsv`); the caption objective's validation
    (naming) needs `concepts_tsv` for the leaves' names."""
    dev = resolve_device(device)
    flush_denormals_on_cpu(dev)
    out_dir, checkpoint_path = Path(out_dir), Path(checkpoint_path)
    data = load_features(features_path)
    pspec = projector_spec(training, encoder_spec)
    feats = data[pspec["features"]]
    index = {image_id: i for i, image_id in enumerate(data["image_ids"])}
    rows = read_tsv(train_tsv)
    image_idx = torch.tensor([index[i] for i in rows["image_id"]], dtype=torch.long)

    model, tokenizer = load_lm(lm_spec, lm_weights_dir, init, twin_seed(lm_spec), dev)
    head, question_ids, answer_ids, described = training_ids(rows, tokenizer, lm_spec, objective)

    d_vis, d_lm = feats.shape[-1], model.get_input_embeddings().embedding_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "projector"))
        projector = build_projector(pspec, d_vis, d_lm)
    projector.fit_feature_norm(feats[torch.unique(image_idx)])
    projector.to(dev)
    optimizer = torch.optim.AdamW(
        projector.parameters(), lr=float(training["lr"]), weight_decay=float(training.get("weight_decay", 0.0))
    )
    batch_size = int(training["batch_size"])
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    total = max(1, math.ceil(float(training["epochs"]) * steps_per_epoch))
    warmup = max(1, math.ceil(float(training.get("warmup_fraction", 0.0)) * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total))

    config = {
        "training": training,
        "lm": lm_spec,
        "encoder": encoder_spec,
        "projector": pspec,
        "init": init,
        "seed": seed,
        "objective": objective,
    }
    fingerprint = _fingerprint(config, train_tsv, len(index))
    step, curve, val_curve, kept = _resume(checkpoint_path, fingerprint, projector, optimizer, scheduler, dev)
    val_table = read_tsv(val_tsv) if val_tsv is not None else pd.DataFrame()
    val_steps = steps_every(float(training["val_every"]), "epochs", steps_per_epoch, total)
    kept_steps = steps_every(float(training["eval_every"]), training["eval_every_unit"], steps_per_epoch, total)
    score_val = _validation_scorer(
        objective, model, tokenizer, lm_spec, projector, feats, index, val_table, concepts_tsv
    )

    def validate() -> None:
        if score_val is not None:
            scores = score_val()
            val_curve.append({"step": step, "epoch": step / steps_per_epoch, **scores})
            log.info("validation at step %d: %s", step, scores)

    if step == 0:
        validate()

    every = int(training.get("checkpoint_every", 0))
    clip = float(training.get("grad_clip", 0.0))
    batching = str(training.get("batching", "rows"))
    order, order_epoch = None, -1
    t0, start_step = time.perf_counter(), step
    bar = Progress(total=total, initial=step, desc="train", unit="step")
    with _deterministic(dev.type == "cpu"):
        while step < total:
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = epoch_order(image_idx, seed, epoch, batching), epoch
            batch = order[pos * batch_size : (pos + 1) * batch_size].tolist()
            lr = scheduler.get_last_lr()[0]
            loss = batch_loss(
                model,
                head,
                projector,
                feats,
                image_idx[batch],
                [question_ids[i] for i in batch],
                [answer_ids[i] for i in batch],
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(projector.parameters(), clip)
            optimizer.step()
            scheduler.step()
            step += 1
            curve.append({"step": step, "epoch": epoch, "loss": loss.item(), "lr": lr})
            rate = (step - start_step) * batch_size / (time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix(loss=f"{curve[-1]['loss']:.4f}", samples_s=f"{rate:.1f}")
            if step in val_steps:
                validate()
            if step in kept_steps:
                kept.append(_kept_point(projector, step, steps_per_epoch))
            if every and step % every == 0 and step < total:
                _save_checkpoint(
                    {
                        "fingerprint": fingerprint,
                        "step": step,
                        "projector": projector.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng": torch.get_rng_state(),
                        "curve": curve,
                        "val_curve": val_curve,
                        "kept": kept,
                    },
                    checkpoint_path,
                )
    bar.close()
    if step > start_step:
        log.info("trained %d steps at %.1f samples/s on %s", step - start_step, rate, dev)

    with atomic_path(out_dir / "projector.pt") as tmp:
        torch.save(
            {
                "state_dict": {k: v.cpu() for k, v in projector.state_dict().items()},
                "spec": pspec,
                "d_vis": d_vis,
                "d_lm": d_lm,
                "init": init,
                "seed": seed,
            },
            tmp,
        )
    if total not in {point["step"] for point in kept}:  # epochs: 0, nothing trained
        kept.append(_kept_point(projector, step, steps_per_epoch))
    with atomic_path(out_dir / "checkpoints.pt") as tmp:
        torch.save({"points": kept, "spec": pspec, "d_vis": d_vis, "d_lm": d_lm, "init": init, "seed": seed}, tmp)
    write_tsv(pd.DataFrame(curve, columns=["step", "epoch", "loss", "lr"]), out_dir / "curve.tsv")
    write_tsv(pd.DataFrame(val_curve, columns=VAL_COLUMNS), out_dir / "val_curve.tsv")
    write_json(
        {
            **config,
            "n_train": len(rows),
            "steps": total,
            "warmup_steps": warmup,
            "lm_random_init_seed": twin_seed(lm_spec) if init == "random" else None,
            "prompt": described,
            "loaded": {"encoder": data.get("meta", {}).get("loaded"), "lm": loaded_lm(model, lm_spec, lm_weights_dir)},
        },
        out_dir / "train_config.json",
    )
    checkpoint_path.unlink(missing_ok=True)
    _remove_empty_parents(checkpoint_path.parent)


def _validation_scorer(
    objective: str,
    model: nn.Module,
    tokenizer: Any,
    lm_spec: dict[str, Any],
    projector: nn.Module,
    feats: torch.Tensor,
    index: dict[str, int],
    table: pd.DataFrame,
    concepts_tsv: Path | None,
) -> Callable[[], dict[str, float]] | None:
    """The objective's validation scoring of `table` (module docstring), or None without a table."""
    if table.empty:
        return None
    if objective == "yesno":
        prompt = build_prompt(tokenizer, bool(lm_spec.get("chat_template", False)))
        return lambda: validation_scores(model, prompt, projector, feats, index, table, VAL_BATCH_SIZE)
    if concepts_tsv is None:
        raise ValueError("the caption objective's validation (leaf naming) needs concepts_tsv for the leaf names")
    phrases = naming_phrases(read_tsv(concepts_tsv), pd.DataFrame(columns=["hypernym", "question_form", "article"]))
    noimage: dict[str, float] = {}
    return lambda: naming_validation_scores(
        model, tokenizer, projector, feats, index, table, phrases, VAL_BATCH_SIZE, noimage
    )


def steps_every(every: float, unit: str, steps_per_epoch: int, total: int) -> set[int]:
    """Training steps after which something is scored or kept: every `every` epochs or steps (`unit`)
    and the last step; `every` 0 means only the last step. Validation also scores step 0."""
    if unit not in ("epochs", "steps"):
        raise ValueError(f"a training interval unit is {unit!r}; expected 'epochs' or 'steps'")
    if every <= 0:
        return {total}
    interval = max(1, round(every * (steps_per_epoch if unit == "epochs" else 1)))
    return {*range(interval, total + 1, interval), total}


def _kept_point(projector: nn.Module, step: int, steps_per_epoch: int) -> dict[str, Any]:
    """A copy of the projector's state after `step` (CPU tensors: the training keeps updating its own)."""
    state = {name: tensor.detach().cpu().clone() for name, tensor in projector.state_dict().items()}
    return {"step": step, "epoch": step / steps_per_epoch, "state_dict": state}


def _remove_empty_parents(folder: Path) -> None:
    """Drop the now-empty checkpoint folders of a finished run (stop at the first non-empty one)."""
    for path in (folder, *folder.parents):
        try:
            path.rmdir()
        except OSError:
            return
