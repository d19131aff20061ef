"""Train the projector through a frozen LM on cached image features; checkpointed and resumable.

Fast paths: the encoder never runs (features are cached), the LM's weights get no gradients
(`requires_grad=False`; only activations are back-propagated to the projector), the LM head is
applied only at the answer positions instead of producing full-vocabulary logits everywhere, and rows
about the same image share one prefix computation. Batching (`training.batching`): the default `rows`
keeps i.i.d. row batches, which run in one pass; `images` puts a few images with all their rows in a
batch and runs it packed (`taxvlm.models.packed`: one sequence per image, its prefix followed by all
its rows' suffixes under a block mask, one decoder pass instead of the two-pass shared prefix that
scoring keeps). An LM whose attention cannot take that mask (`packing_refusal`, decided once per job)
trains with `rows` instead, with one warning naming the LM and the reason; `train_config.json`
records the batching that ran (`batching`).

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

Fused training (`train_projectors`, `training.fuse` in the workflow): the runs of one group share
the feature cache, the frozen LM, its init, the objective and the training settings, and differ in
their rows (condition, shuffle) and seed. Each step stacks the members' batches along the batch
dimension into one LM forward and one backward (`fused_batch_losses`: each member's loss is the mean
over its own target tokens, and the projectors share no parameter, so each gets its unfused
gradient); each member keeps its own data order, optimizer, schedule, validation, kept points,
checkpoint and outputs, identical to an unfused run's up to float rounding (the stacked batch is
padded to its longest row). A member that reaches its own length leaves the stack. The group
writes all its members' checkpoints at the same step (a finished member's holds its end), so a
resumed group stacks the same batches as an uninterrupted one and ends bit-identical to it.
Under a memory budget (`training.fuse_memory_gib`) the members are stepped in sub-stacks of a size
estimated from the config (`taxvlm.memory`), which again changes nothing beyond float rounding.
`train_projector` is the group of one.

Launch overhead (`training.compile`, `taxvlm.compile`): with `default` or `reduce-overhead` the frozen
LM's decoder forward in the training step and its validation scoring runs compiled on padded, fixed
shapes (rows right-padded to a multiple of 16 tokens, the batch padded with zero rows to its largest
size), so a job compiles a few times and then reuses the graph; every row runs in one pass (no shared
prefix). Eager (`none`) is the reference: compiled losses equal it up to float rounding, and the key
is in the run's identity (`train_config.json`, fingerprint). Packed `images` batches pass their block
mask to the LM itself, so they run eager whatever `compile` says: compiling serves `rows` batching.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from taxvlm.compile import maybe_compiled
from taxvlm.grid import OBJECTIVES
from taxvlm.data.captions import caption_target
from taxvlm.decision import absolute, pair_id
from taxvlm.scoring import continuation_logits, naming_frame, naming_phrases, score_questions
from taxvlm.devices import flush_denormals_on_cpu, resolve_device
from taxvlm.features import load_features
from taxvlm.io import atomic_path, read_tsv, sha256_file, write_json, write_tsv
from taxvlm.memory import fused_stack_size, peak_memory
from taxvlm.models.lms import CAPTION_PROMPT, PromptFormat, build_prompt, caption_prompt, load_lm, loaded_lm
from taxvlm.models.packed import packed_continuation_logits, training_batching
from taxvlm.models.projector import build_projector
from taxvlm.progress import Progress
from taxvlm.schedule import warmup_cosine
from taxvlm.seeding import derive_seed, rng
from taxvlm.specs import LMSpec, RunSpec, TrainingSpec

log = logging.getLogger(__name__)


def answer_losses(
    model: nn.Module,
    head: list[int],
    image_embeds: torch.Tensor,
    group: torch.Tensor,
    question_ids: list[list[int]],
    answer_ids: list[list[int]],
    sizes: list[int],
    packed: bool = False,
) -> list[torch.Tensor]:
    """`answer_loss` of consecutive blocks of `sizes` rows (the members of a fused step) from one LM
    pass: each block's mean over its own target tokens, so each member's gradient is its unfused one.
    `packed`: one packed pass (`batching: images`) instead of the two-pass shared prefix; same logits."""
    forward = packed_continuation_logits if packed else continuation_logits
    logits, _, targets = forward(model, head, image_embeds, group, question_ids, answer_ids)
    tokens = [sum(len(a) for a in block) for block in _blocks(answer_ids, sizes)]
    return [F.cross_entropy(lg.float(), t) for lg, t in zip(logits.split(tokens), targets.split(tokens))]


def _blocks(items: list[Any], sizes: list[int]) -> list[list[Any]]:
    """`items` cut into consecutive blocks of `sizes`."""
    ends = np.cumsum(sizes).tolist()
    return [items[end - n : end] for n, end in zip(sizes, ends)]


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
    return answer_losses(model, head, image_embeds, group, question_ids, answer_ids, [len(question_ids)])[0]


def training_ids(
    rows: pd.DataFrame, tokenizer: Any, lm_spec: LMSpec, objective: str
) -> tuple[list[int], list[list[int]], list[list[int]], dict[str, Any]]:
    """(head before the image, prompt ids and target ids per training row, a JSON-able description of
    the format) for `objective` (module docstring)."""
    if objective == "yesno":
        prompt = build_prompt(tokenizer, lm_spec.chat_template)
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
    autocast on GPU); row i is about image `feats[image_idx[i]]`. The fused step with one member."""
    return fused_batch_losses(model, head, [projector], feats, [image_idx], [question_ids], [answer_ids])[0]


def fused_batch_losses(
    model: nn.Module,
    head: list[int],
    projectors: list[nn.Module],
    feats: torch.Tensor,
    image_idx: list[torch.Tensor],
    question_ids: list[list[list[int]]],
    answer_ids: list[list[list[int]]],
    packed: bool = False,
) -> list[torch.Tensor]:
    """`batch_loss` of G projectors' batches (member g: `projectors[g]` on its rows `image_idx[g]`,
    `question_ids[g]`, `answer_ids[g]`) stacked along the batch dimension into one LM forward; one
    backward of the sum serves all, since the projectors share no parameter. `packed`: `answer_losses`."""
    dev = next(projectors[0].parameters()).device
    embeds, groups, offset = [], [], 0
    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        for projector, idx in zip(projectors, image_idx):
            images, group = torch.unique(idx, return_inverse=True)
            embeds.append(projector(feats[images].to(dev).float()))
            groups.append(group + offset)
            offset += len(images)
        flat_q = [q for member in question_ids for q in member]
        flat_a = [a for member in answer_ids for a in member]
        sizes = [len(member) for member in question_ids]
        return answer_losses(model, head, torch.cat(embeds), torch.cat(groups), flat_q, flat_a, sizes, packed)


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
    """What a checkpoint must match to be resumed: the run config, the training table, the feature count
    and the scheduler's kind (a checkpoint of the earlier `LambdaLR` schedule holds another state)."""
    blob = json.dumps([config, sha256_file(train_tsv), n_images, "SequentialLR"], sort_keys=True)
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


@dataclass(frozen=True)
class SharedFiles:
    """The inputs a group's runs share: the feature cache and, for the caption objective's validation
    (leaf naming), the leaves' names."""

    features: Path
    concepts_tsv: Path | None = None


@dataclass(frozen=True)
class Member:
    """One run of a fused group (`train_projectors`): what may differ between runs of one `RunSpec`."""

    train_tsv: Path
    seed: int
    out_dir: Path
    checkpoint_path: Path
    val_tsv: Path | None = None


@dataclass
class _Shared:
    """What a group's runs share: the run settings, the frozen LM and the feature cache."""

    spec: RunSpec
    files: SharedFiles
    model: nn.Module
    tokenizer: Any
    feats: torch.Tensor
    index: dict[str, int]
    encoder_loaded: Any
    dev: torch.device
    batching: str  # what runs: training.batching, or rows where the LM cannot run packed


@dataclass
class _Run:
    """One member's training state; `step` is its own (members finish at their own lengths)."""

    member: Member
    n_rows: int
    image_idx: torch.Tensor
    head: list[int]
    question_ids: list[list[int]]
    answer_ids: list[list[int]]
    described: dict[str, Any]
    projector: nn.Module
    optimizer: Any
    scheduler: Any
    config: dict[str, Any]
    fingerprint: str
    steps_per_epoch: int
    total: int
    warmup: int
    val_steps: set[int]
    kept_steps: set[int]
    score_val: Callable[[], dict[str, float]] | None
    step: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    val_curve: list[dict[str, Any]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    order: torch.Tensor | None = None
    order_epoch: int = -1


def train_projector(spec: RunSpec, files: SharedFiles, member: Member, device: str = "auto") -> None:
    """Write `projector.pt`, `curve.tsv`, `val_curve.tsv` and `train_config.json` to the member's
    `out_dir`; resume from its `checkpoint_path` when it matches this run, and delete it at the end.
    `member.train_tsv` is the objective's table (`train.tsv` or `train_captions.tsv`). A fused group
    of one: the same code path."""
    train_projectors(spec, files, [member], device)


def train_projectors(
    spec: RunSpec, files: SharedFiles, members: list[Member], device: str = "auto", memory_gib: float | None = None
) -> None:
    """Train the `members`' projectors together (module docstring: fused training); each member
    writes exactly the files and checkpoints its unfused run would. `memory_gib` bounds the members
    stacked per LM pass (`taxvlm.memory`; `training.fuse_memory_gib`, None: all)."""
    for attr in ("out_dir", "checkpoint_path"):
        paths = [getattr(m, attr) for m in members]
        if len(set(paths)) != len(paths):
            raise ValueError(f"fused members share a {attr}: {sorted(map(str, paths))}")
    shared = _load_shared(spec, files, device)
    runs = [_start_run(shared, member) for member in members]
    _train_loop(shared, runs, _stack_size(shared, runs, memory_gib))
    for run in runs:
        _write_outputs(shared, run)
    for run in runs:
        run.member.checkpoint_path.unlink(missing_ok=True)
        _remove_empty_parents(run.member.checkpoint_path.parent)


def _load_shared(spec: RunSpec, files: SharedFiles, device: str) -> _Shared:
    """Load what the members share once: the feature cache and the frozen LM."""
    dev = resolve_device(device)
    flush_denormals_on_cpu(dev)
    data = load_features(files.features)
    index = {image_id: i for i, image_id in enumerate(data["image_ids"])}
    model, tokenizer = load_lm(spec.lm, dev)
    feats, loaded = data[spec.encoder.features], data.get("meta", {}).get("loaded")
    batching = training_batching(spec.training.batching, model)
    model = maybe_compiled(model, spec.training.compile, spec.training.batch_size)
    return _Shared(spec, files, model, tokenizer, feats, index, loaded, dev, batching)


def _schedule(training: TrainingSpec, n_rows: int) -> tuple[int, int, int]:
    """(steps per epoch, total steps, warm-up steps) of a run with `n_rows` training rows."""
    steps_per_epoch = math.ceil(n_rows / training.batch_size)
    total = max(1, math.ceil(training.epochs * steps_per_epoch))
    warmup = max(1, math.ceil(training.warmup_fraction * total))
    return steps_per_epoch, total, warmup


def _new_projector(shared: _Shared, seed: int, image_idx: torch.Tensor) -> tuple[nn.Module, Any, Any]:
    """The member's projector (seeded init, feature norm from its training images), AdamW and schedule."""
    d_vis, d_lm = shared.feats.shape[-1], shared.model.get_input_embeddings().embedding_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "projector"))
        projector = build_projector(shared.spec.projector(), d_vis, d_lm)
    projector.fit_feature_norm(shared.feats[torch.unique(image_idx)])
    projector.to(shared.dev)
    training = shared.spec.training
    optimizer = torch.optim.AdamW(projector.parameters(), lr=training.lr, weight_decay=training.weight_decay)
    _, total, warmup = _schedule(training, len(image_idx))
    scheduler = warmup_cosine(optimizer, warmup, total)
    return projector, optimizer, scheduler


def _run_config(spec: RunSpec, seed: int, batching: str) -> dict[str, Any]:
    """The run's settings as train_config.json records them (and the checkpoint fingerprint hashes),
    with the batching that ran (`rows` where the LM cannot run `images` packed)."""
    return {
        "training": spec.training.record(), "lm": spec.lm.spec.record(), "encoder": spec.encoder.record(),
        "projector": spec.projector(), "init": spec.lm.init, "seed": seed, "objective": spec.objective,
        "batching": batching,
    }  # fmt: skip


def _start_run(shared: _Shared, member: Member) -> _Run:
    """A member's state: fresh, or resumed from its own checkpoint; validated at step 0 when fresh and
    its validation has a curve (`val_every` > 0; with 0 only the trained end is scored: the default
    reads nothing else, and each scoring costs as much as a few training steps)."""
    spec = shared.spec
    rows = read_tsv(member.train_tsv)
    image_idx = torch.tensor([shared.index[i] for i in rows["image_id"]], dtype=torch.long)
    head, question_ids, answer_ids, described = training_ids(rows, shared.tokenizer, spec.lm.spec, spec.objective)
    projector, optimizer, scheduler = _new_projector(shared, member.seed, image_idx)
    training = spec.training
    steps_per_epoch, total, warmup = _schedule(training, len(rows))
    config = _run_config(spec, member.seed, shared.batching)
    fingerprint = _fingerprint(config, member.train_tsv, len(shared.index))
    step, curve, val_curve, kept = _resume(
        member.checkpoint_path, fingerprint, projector, optimizer, scheduler, shared.dev
    )
    val_table = read_tsv(member.val_tsv) if member.val_tsv is not None else pd.DataFrame()
    score_val = _validation_scorer(shared, projector, val_table)
    run = _Run(
        member, len(rows), image_idx, head, question_ids, answer_ids, described, projector, optimizer, scheduler,
        config, fingerprint, steps_per_epoch, total, warmup,
        steps_every(training.val_every, "epochs", steps_per_epoch, total),
        steps_every(training.eval_every, training.eval_every_unit, steps_per_epoch, total),
        score_val, step, curve, val_curve, kept,
    )  # fmt: skip
    if step == 0 and training.val_every > 0:
        _validate(run)
    return run


def _validate(run: _Run) -> None:
    """Score the member's validation table now (its `val_steps`; step 0 when fresh, with a curve)."""
    if run.score_val is not None:
        scores = run.score_val()
        run.val_curve.append({"step": run.step, "epoch": run.step / run.steps_per_epoch, **scores})
        log.info("validation of %s at step %d: %s", run.member.out_dir, run.step, scores)


def _stack_size(shared: _Shared, runs: list[_Run], memory_gib: float | None) -> int:
    """Members per LM pass under `memory_gib` (`taxvlm.memory.fused_stack_size`), from each row's
    positions before its first target token (head, image tokens, prompt) and its target tokens."""
    with torch.no_grad():
        image_tokens = runs[0].projector(shared.feats[:1].to(shared.dev).float()).shape[1]
    lengths = [
        [(len(r.head) + image_tokens + len(q), len(a)) for q, a in zip(r.question_ids, r.answer_ids)] for r in runs
    ]
    dtype_bytes = next(shared.model.parameters()).element_size()
    batch_size = shared.spec.training.batch_size
    return fused_stack_size(shared.model.config, dtype_bytes, memory_gib, batch_size, lengths)


def _train_loop(shared: _Shared, runs: list[_Run], stack: int) -> None:
    """Step the unfinished members together, `stack` per LM pass, until each reaches its own length
    (a finished member leaves the stack); every `checkpoint_every` steps all members' checkpoints are
    written, so a resumed group restarts in step and stacks the same batches as an uninterrupted one."""
    every = shared.spec.training.checkpoint_every
    active = [r for r in runs if r.step < r.total]
    if len({r.step for r in active}) > 1:
        log.warning("fused members resumed at different steps %s: each run stays exact to rounding, "
                    "but its batches are stacked with others than in an uninterrupted run", [r.step for r in runs])  # fmt: skip
    start = sum(r.step for r in runs)
    t0, rate = time.perf_counter(), 0.0
    bar = Progress(total=max(r.total for r in runs), initial=min(r.step for r in runs), desc="train", unit="step")
    with _deterministic(shared.dev.type == "cpu"):
        while active:
            for first in range(0, len(active), stack):
                _fused_step(shared, active[first : first + stack])
            rate = (sum(r.step for r in runs) - start) * shared.spec.training.batch_size / (time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix(loss=" ".join(f"{r.curve[-1]['loss']:.4f}" for r in active), samples_s=f"{rate:.1f}")
            if every and max(r.step for r in active) % every == 0 and any(r.step < r.total for r in runs):
                for r in runs:
                    _save_checkpoint(_checkpoint_state(r), r.member.checkpoint_path)
            active = [r for r in active if r.step < r.total]
    bar.close()
    if sum(r.step for r in runs) > start:
        log.info("trained %d projector(s) at %.1f samples/s on %s; peak memory %s", len(runs), rate, shared.dev,
                 peak_memory(shared.dev))  # fmt: skip


def _fused_step(shared: _Shared, active: list[_Run]) -> None:
    """One optimizer step of every active member from one LM forward/backward of their stacked batches."""
    training = shared.spec.training
    batches = [_next_batch(r, training.batch_size, shared.batching) for r in active]
    lrs = [r.scheduler.get_last_lr()[0] for r in active]
    losses = fused_batch_losses(
        shared.model,
        active[0].head,
        [r.projector for r in active],
        shared.feats,
        [r.image_idx[b] for r, b in zip(active, batches)],
        [[r.question_ids[i] for i in b] for r, b in zip(active, batches)],
        [[r.answer_ids[i] for i in b] for r, b in zip(active, batches)],
        packed=shared.batching == "images",
    )
    for r in active:
        r.optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(losses)
    for r, loss, lr in zip(active, losses, lrs):
        nn.utils.clip_grad_norm_(r.projector.parameters(), training.grad_clip)
        r.optimizer.step()
        r.scheduler.step()
        r.curve.append({"step": r.step + 1, "epoch": r.step // r.steps_per_epoch, "loss": loss.item(), "lr": lr})
        r.step += 1
        if r.step in r.val_steps:
            _validate(r)
        if r.step in r.kept_steps:
            r.kept.append(_kept_point(r.projector, r.step, r.steps_per_epoch))


def _next_batch(run: _Run, batch_size: int, batching: str) -> list[int]:
    """The member's rows of its current step (its own epoch order, `epoch_order`)."""
    epoch, pos = divmod(run.step, run.steps_per_epoch)
    if epoch != run.order_epoch:
        run.order, run.order_epoch = epoch_order(run.image_idx, run.member.seed, epoch, batching), epoch
    return run.order[pos * batch_size : (pos + 1) * batch_size].tolist()


def _checkpoint_state(run: _Run) -> dict[str, Any]:
    """Everything `_resume` needs to continue the member bit-identically."""
    return {
        "fingerprint": run.fingerprint,
        "step": run.step,
        "projector": run.projector.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "curve": run.curve,
        "val_curve": run.val_curve,
        "kept": run.kept,
    }


def _write_outputs(shared: _Shared, run: _Run) -> None:
    """The run folder's files, as an unfused run writes them."""
    out_dir, projector = run.member.out_dir, run.projector
    d_vis, d_lm = shared.feats.shape[-1], shared.model.get_input_embeddings().embedding_dim
    spec = shared.spec
    identity = {"spec": spec.projector(), "d_vis": d_vis, "d_lm": d_lm, "init": spec.lm.init, "seed": run.member.seed}
    with atomic_path(out_dir / "projector.pt") as tmp:
        torch.save({"state_dict": {k: v.cpu() for k, v in projector.state_dict().items()}, **identity}, tmp)
    if run.total not in {point["step"] for point in run.kept}:  # epochs: 0, nothing trained
        run.kept.append(_kept_point(projector, run.step, run.steps_per_epoch))
    with atomic_path(out_dir / "checkpoints.pt") as tmp:
        torch.save({"points": run.kept, **identity}, tmp)
    write_tsv(pd.DataFrame(run.curve, columns=["step", "epoch", "loss", "lr"]), out_dir / "curve.tsv")
    write_tsv(pd.DataFrame(run.val_curve, columns=VAL_COLUMNS), out_dir / "val_curve.tsv")
    write_json(
        {
            **run.config,
            "n_train": run.n_rows,
            "steps": run.total,
            "warmup_steps": run.warmup,
            "lm_random_init_seed": spec.lm.spec.random_init_seed if spec.lm.init == "random" else None,
            "prompt": run.described,
            "loaded": {"encoder": shared.encoder_loaded, "lm": loaded_lm(shared.model, spec.lm)},
        },
        out_dir / "train_config.json",
    )


def _validation_scorer(
    shared: _Shared, projector: nn.Module, table: pd.DataFrame
) -> Callable[[], dict[str, float]] | None:
    """The objective's validation scoring of `table` (module docstring), or None without a table."""
    if table.empty:
        return None
    model, tokenizer, feats, index = shared.model, shared.tokenizer, shared.feats, shared.index
    if shared.spec.objective == "yesno":
        prompt = build_prompt(tokenizer, shared.spec.lm.spec.chat_template)
        return lambda: validation_scores(model, prompt, projector, feats, index, table, VAL_BATCH_SIZE)
    if shared.files.concepts_tsv is None:
        raise ValueError("the caption objective's validation (leaf naming) needs concepts_tsv for the leaf names")
    phrases = naming_phrases(
        read_tsv(shared.files.concepts_tsv), pd.DataFrame(columns=["hypernym", "question_form", "article"])
    )
    noimage: dict[str, float] = {}
    return lambda: naming_validation_scores(
        model, tokenizer, projector, feats, index, table, phrases, VAL_BATCH_SIZE, noimage
    )


def steps_every(every: float, unit: str, steps_per_epoch: int, total: int) -> set[int]:
    """Training steps after which something is scored or kept: every `every` epochs or steps (`unit`)
    and the last step; `every` 0 means only the last step. Validation with a curve also scores step 0."""
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
