"""The training loop: one run, or a fused group of runs stepped together, from start or resume state
to the run folders (`projector.pt`, `checkpoints.pt`, `curve.tsv`, `val_curve.tsv`, `train_config.json`).

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
estimated from the config (`taxvlm.training.memory`), which again changes nothing beyond float rounding.
`train_projector` is the group of one.

Launch overhead (`training.compile`, `taxvlm.models.compiled`): with `default` or `reduce-overhead` the frozen
LM's decoder forward in the training step and its validation scoring runs compiled on padded, fixed
shapes (rows right-padded to a multiple of 16 tokens, the batch padded with zero rows to its largest
size), so a job compiles a few times and then reuses the graph; every row runs in one pass (no shared
prefix). Eager (`none`) is the reference: compiled losses equal it up to float rounding, and the key
is in the run's identity (`train_config.json`, fingerprint). Packed `images` batches pass their block
mask to the LM itself, so they run eager whatever `compile` says: compiling serves `rows` batching.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from taxvlm.models.compiled import maybe_compiled
from taxvlm.devices import flush_denormals_on_cpu, resolve_device
from taxvlm.features import load_features
from taxvlm.io import read_tsv, save_pt, write_json, write_tsv
from taxvlm.models.lms import load_lm, loaded_lm
from taxvlm.models.packed import training_batching
from taxvlm.models.projector import build_projector
from taxvlm.progress import Progress
from taxvlm.training.schedule import warmup_cosine
from taxvlm.seeding import derive_seed, rng
from taxvlm.settings.training import TrainingSpec
from taxvlm.specs import TrainingSetup
from taxvlm.training.kept_points import kept_point, steps_every
from taxvlm.training.memory import fused_stack_size, peak_memory
from taxvlm.training.objective import fused_batch_losses, training_ids
from taxvlm.training.resume import History, fingerprint, load_resume_state, save_resume_state
from taxvlm.training.validation import VAL_COLUMNS, validation_scorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedFiles:
    """The inputs a group's runs share: the feature cache and, for the caption objective's validation
    (leaf naming), the leaves' names."""

    features: Path
    concepts_tsv: Path | None = None


@dataclass(frozen=True)
class Member:
    """One run of a fused group (`train_projectors`): what may differ between runs of one `TrainingSetup`."""

    train_tsv: Path
    seed: int
    out_dir: Path
    resume_path: Path
    val_tsv: Path | None = None


@dataclass
class _Shared:
    """What a group's runs share: the run settings, the frozen LM and the feature cache."""

    spec: TrainingSetup
    files: SharedFiles
    model: nn.Module
    tokenizer: Any
    feats: torch.Tensor
    index: dict[str, int]
    encoder_loaded: Any
    dev: torch.device
    batching: str  # what runs: training.batching, or rows where the LM cannot run packed


@dataclass(frozen=True)
class StepSchedule:
    """A run's length in steps, from its rows and its training settings."""

    steps_per_epoch: int
    total: int
    warmup: int

    @classmethod
    def of(cls, training: TrainingSpec, n_rows: int) -> StepSchedule:
        steps_per_epoch = math.ceil(n_rows / training.batch_size)
        total = max(1, math.ceil(training.epochs * steps_per_epoch))
        return cls(steps_per_epoch, total, max(1, math.ceil(training.warmup_fraction * total)))


@dataclass(frozen=True)
class TrainingRows:
    """A run's training table as the LM reads it: each row's image and its prompt and target ids."""

    image_idx: torch.Tensor
    head: list[int]
    question_ids: list[list[int]]
    answer_ids: list[list[int]]
    described: dict[str, Any]  # the format, as train_config.json records it


@dataclass
class MemberState:
    """One member's training state while the group trains; its step is its own (members finish at
    their own lengths)."""

    member: Member
    rows: TrainingRows
    projector: nn.Module
    optimizer: Any
    scheduler: Any
    config: dict[str, Any]
    fingerprint: str
    schedule: StepSchedule
    val_steps: set[int]
    kept_steps: set[int]
    score_val: Callable[[], dict[str, float]] | None
    history: History
    order: torch.Tensor | None = None
    order_epoch: int = -1


def train_projector(spec: TrainingSetup, files: SharedFiles, member: Member, device: str = "auto") -> None:
    """Write `projector.pt`, `curve.tsv`, `val_curve.tsv` and `train_config.json` to the member's
    `out_dir`; resume from its `resume_path` when it matches this run, and delete it at the end.
    `member.train_tsv` is the objective's table (`train.tsv` or `train_captions.tsv`). A fused group
    of one: the same code path."""
    train_projectors(spec, files, [member], device)


def train_projectors(
    spec: TrainingSetup, files: SharedFiles, members: list[Member], device: str = "auto", memory_gib: float | None = None
) -> None:
    """Train the `members`' projectors together (module docstring: fused training); each member
    writes exactly the files and resume states its unfused run would. `memory_gib` bounds the members
    stacked per LM pass (`taxvlm.training.memory`; `training.fuse_memory_gib`, None: all)."""
    for attr in ("out_dir", "resume_path"):
        paths = [getattr(m, attr) for m in members]
        if len(set(paths)) != len(paths):
            raise ValueError(f"fused members share a {attr}: {sorted(map(str, paths))}")
    shared = _load_shared(spec, files, device)
    states = [_start(shared, member) for member in members]
    _train_loop(shared, states, _stack_size(shared, states, memory_gib))
    for state in states:
        _write_outputs(shared, state)
    for state in states:
        state.member.resume_path.unlink(missing_ok=True)
        _remove_empty_parents(state.member.resume_path.parent)


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


def _load_shared(spec: TrainingSetup, files: SharedFiles, device: str) -> _Shared:
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


def _new_projector(
    shared: _Shared, seed: int, image_idx: torch.Tensor, schedule: StepSchedule
) -> tuple[nn.Module, Any, Any]:
    """The member's projector (seeded init, feature norm from its training images), AdamW and schedule."""
    d_vis, d_lm = shared.feats.shape[-1], shared.model.get_input_embeddings().embedding_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "projector"))
        projector = build_projector(shared.spec.projector(), d_vis, d_lm)
    projector.fit_feature_norm(shared.feats[torch.unique(image_idx)])
    projector.to(shared.dev)
    training = shared.spec.training
    optimizer = torch.optim.AdamW(projector.parameters(), lr=training.lr, weight_decay=training.weight_decay)
    return projector, optimizer, warmup_cosine(optimizer, schedule.warmup, schedule.total)


def _run_config(spec: TrainingSetup, seed: int, batching: str) -> dict[str, Any]:
    """The run's settings as train_config.json records them (and the resume fingerprint hashes),
    with the batching that ran (`rows` where the LM cannot run `images` packed)."""
    return {
        "training": spec.training.record(),
        "lm": spec.lm.spec.record(),
        "encoder": spec.encoder.record(),
        "projector": spec.projector(),
        "init": spec.lm.init,
        "seed": seed,
        "objective": spec.objective,
        "batching": batching,
    }


def _training_rows(shared: _Shared, table: pd.DataFrame) -> TrainingRows:
    image_idx = torch.tensor([shared.index[i] for i in table["image_id"]], dtype=torch.long)
    spec = shared.spec
    head, question_ids, answer_ids, described = training_ids(table, shared.tokenizer, spec.lm.spec, spec.objective)
    return TrainingRows(image_idx, head, question_ids, answer_ids, described)


def _start(shared: _Shared, member: Member) -> MemberState:
    """A member's state: fresh, or resumed from its own resume state; validated at step 0 when fresh
    and its validation has a curve (`val_every` > 0; with 0 only the trained end is scored: the
    default reads nothing else, and each scoring costs as much as a few training steps)."""
    spec, training = shared.spec, shared.spec.training
    rows = _training_rows(shared, read_tsv(member.train_tsv))
    schedule = StepSchedule.of(training, len(rows.image_idx))
    projector, optimizer, scheduler = _new_projector(shared, member.seed, rows.image_idx, schedule)
    config = _run_config(spec, member.seed, shared.batching)
    run_fingerprint = fingerprint(config, member.train_tsv, len(shared.index))
    history = load_resume_state(member.resume_path, run_fingerprint, projector, optimizer, scheduler, shared.dev)
    val_table = read_tsv(member.val_tsv) if member.val_tsv is not None else pd.DataFrame()
    state = MemberState(
        member=member,
        rows=rows,
        projector=projector,
        optimizer=optimizer,
        scheduler=scheduler,
        config=config,
        fingerprint=run_fingerprint,
        schedule=schedule,
        val_steps=steps_every(training.val_every, "epochs", schedule.steps_per_epoch, schedule.total),
        kept_steps=steps_every(training.eval_every, training.eval_every_unit, schedule.steps_per_epoch, schedule.total),
        score_val=validation_scorer(
            spec, shared.files.concepts_tsv, shared.model, shared.tokenizer, projector, shared.feats, shared.index,
            val_table,
        ),
        history=history,
    )  # fmt: skip
    if history.step == 0 and training.val_every > 0:
        _validate(state)
    return state


def _validate(state: MemberState) -> None:
    """Score the member's validation table now (its `val_steps`; step 0 when fresh, with a curve)."""
    if state.score_val is not None:
        scores = state.score_val()
        step = state.history.step
        state.history.val_curve.append({"step": step, "epoch": step / state.schedule.steps_per_epoch, **scores})
        log.info("validation of %s at step %d: %s", state.member.out_dir, step, scores)


def _stack_size(shared: _Shared, states: list[MemberState], memory_gib: float | None) -> int:
    """Members per LM pass under `memory_gib` (`taxvlm.training.memory.fused_stack_size`), from each
    row's positions before its first target token (head, image tokens, prompt) and its target tokens."""
    with torch.no_grad():
        image_tokens = states[0].projector(shared.feats[:1].to(shared.dev).float()).shape[1]
    lengths = [
        [(len(s.rows.head) + image_tokens + len(q), len(a)) for q, a in zip(s.rows.question_ids, s.rows.answer_ids)]
        for s in states
    ]
    dtype_bytes = next(shared.model.parameters()).element_size()
    batch_size = shared.spec.training.batch_size
    return fused_stack_size(shared.model.config, dtype_bytes, memory_gib, batch_size, lengths)


def _train_loop(shared: _Shared, states: list[MemberState], stack: int) -> None:
    """Step the unfinished members together, `stack` per LM pass, until each reaches its own length
    (a finished member leaves the stack); every `checkpoint_every` steps all members' resume states
    are written, so a resumed group restarts in step and stacks the same batches as an uninterrupted one."""
    every = shared.spec.training.checkpoint_every
    active = [s for s in states if s.history.step < s.schedule.total]
    if len({s.history.step for s in active}) > 1:
        log.warning("fused members resumed at different steps %s: each run stays exact to rounding, "
                    "but its batches are stacked with others than in an uninterrupted run", _steps(states))  # fmt: skip
    start = sum(_steps(states))
    t0, rate = time.perf_counter(), 0.0
    bar = Progress(total=max(s.schedule.total for s in states), initial=min(_steps(states)), desc="train", unit="step")
    with _deterministic(shared.dev.type == "cpu"):
        while active:
            for first in range(0, len(active), stack):
                _fused_step(shared, active[first : first + stack])
            rate = (sum(_steps(states)) - start) * shared.spec.training.batch_size / (time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix(loss=" ".join(f"{s.history.curve[-1]['loss']:.4f}" for s in active), samples_s=f"{rate:.1f}")
            unfinished = any(s.history.step < s.schedule.total for s in states)
            if every and max(s.history.step for s in active) % every == 0 and unfinished:
                for s in states:
                    save_resume_state(s.member.resume_path, s.fingerprint, s.history, s.projector, s.optimizer,
                                      s.scheduler)  # fmt: skip
            active = [s for s in active if s.history.step < s.schedule.total]
    bar.close()
    if sum(_steps(states)) > start:
        log.info("trained %d projector(s) at %.1f samples/s on %s; peak memory %s", len(states), rate, shared.dev,
                 peak_memory(shared.dev))  # fmt: skip


def _steps(states: list[MemberState]) -> list[int]:
    return [s.history.step for s in states]


def _fused_step(shared: _Shared, active: list[MemberState]) -> None:
    """One optimizer step of every active member from one LM forward/backward of their stacked batches."""
    training = shared.spec.training
    batches = [_next_batch(s, training.batch_size, shared.batching) for s in active]
    lrs = [s.scheduler.get_last_lr()[0] for s in active]
    losses = fused_batch_losses(
        shared.model,
        active[0].rows.head,
        [s.projector for s in active],
        shared.feats,
        [s.rows.image_idx[b] for s, b in zip(active, batches)],
        [[s.rows.question_ids[i] for i in b] for s, b in zip(active, batches)],
        [[s.rows.answer_ids[i] for i in b] for s, b in zip(active, batches)],
        packed=shared.batching == "images",
    )
    for s in active:
        s.optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(losses)
    for s, loss, lr in zip(active, losses, lrs):
        nn.utils.clip_grad_norm_(s.projector.parameters(), training.grad_clip)
        s.optimizer.step()
        s.scheduler.step()
        history, per_epoch = s.history, s.schedule.steps_per_epoch
        history.curve.append({"step": history.step + 1, "epoch": history.step // per_epoch, "loss": loss.item(), "lr": lr})
        history.step += 1
        if history.step in s.val_steps:
            _validate(s)
        if history.step in s.kept_steps:
            history.kept.append(kept_point(s.projector, history.step, per_epoch))


def _next_batch(state: MemberState, batch_size: int, batching: str) -> list[int]:
    """The member's rows of its current step (its own epoch order, `epoch_order`)."""
    epoch, pos = divmod(state.history.step, state.schedule.steps_per_epoch)
    if epoch != state.order_epoch:
        state.order = epoch_order(state.rows.image_idx, state.member.seed, epoch, batching)
        state.order_epoch = epoch
    return state.order[pos * batch_size : (pos + 1) * batch_size].tolist()


def _write_outputs(shared: _Shared, state: MemberState) -> None:
    """The run folder's files, as an unfused run writes them."""
    out_dir, projector, history, schedule = state.member.out_dir, state.projector, state.history, state.schedule
    d_vis, d_lm = shared.feats.shape[-1], shared.model.get_input_embeddings().embedding_dim
    spec = shared.spec
    identity = {"spec": spec.projector(), "d_vis": d_vis, "d_lm": d_lm, "init": spec.lm.init, "seed": state.member.seed}
    save_pt({"state_dict": {k: v.cpu() for k, v in projector.state_dict().items()}, **identity}, out_dir / "projector.pt")
    if schedule.total not in {point["step"] for point in history.kept}:  # epochs: 0, nothing trained
        history.kept.append(kept_point(projector, history.step, schedule.steps_per_epoch))
    save_pt({"points": history.kept, **identity}, out_dir / "checkpoints.pt")
    write_tsv(pd.DataFrame(history.curve, columns=["step", "epoch", "loss", "lr"]), out_dir / "curve.tsv")
    write_tsv(pd.DataFrame(history.val_curve, columns=VAL_COLUMNS), out_dir / "val_curve.tsv")
    write_json(
        {
            **state.config,
            "n_train": len(state.rows.image_idx),
            "steps": schedule.total,
            "warmup_steps": schedule.warmup,
            "lm_random_init_seed": spec.lm.spec.random_init_seed if spec.lm.init == "random" else None,
            "prompt": state.rows.described,
            "loaded": {"encoder": shared.encoder_loaded, "lm": loaded_lm(shared.model, spec.lm)},
        },
        out_dir / "train_config.json",
    )


def _remove_empty_parents(folder: Path) -> None:
    """Drop the now-empty resume-state folders of a finished run (stop at the first non-empty one)."""
    for path in (folder, *folder.parents):
        try:
            path.rmdir()
        except OSError:
            return
