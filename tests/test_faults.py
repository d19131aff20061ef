"""Faults during a run: random kills, two runs at once, damaged results, a full disk.

The promise checked here: whatever happens to a run, every result file it leaves is either absent or
complete (equal to what an uninterrupted run writes), and the next `snakemake` finishes the work with
results identical to an uninterrupted run's. Snakemake's incomplete-file marking is not relied on:
the files are compared right after each kill, before any rerun could delete them.

One uninterrupted run of `.test` plus `FAULTS_OVERRIDE` (a smaller grid, trained in fused groups of
two) is the reference of every test. Slow (a run from scratch, a killed-and-resumed run, reruns), so
deselected by default: `make faults` or `pytest -m faults tests/test_faults.py` runs it, with
`--fault-seed N` (or TAXVLM_FAULT_SEED) for another kill schedule; the seed is printed.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_copy import copy_workflow  # noqa: E402

pytestmark = pytest.mark.faults

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
RUN_TIMEOUT = 1800

# .test's stages on a smaller grid (pretrained and random-init yes/no runs on `none` and `full`, the
# two caption runs, the probe on `full`), every training in a fused group of two runs.
FAULTS_OVERRIDE = """\
training: {fuse: 2}
experiments:
  - encoders: [tiny_vit]
    lms: [tiny_llama]
    inits: [pretrained, random]
    conditions: [none, full]
    shuffles: [original]
    seeds: [7]
  - encoders: [tiny_vit]
    lms: [tiny_llama]
    inits: [pretrained, random]
    conditions: [full]
    shuffles: [original]
    objectives: [caption]
    seeds: [7]
probe:
  runs:
    conditions: [full]
    shuffles: [original]
"""
CONFIGS = ("--configfile", ".test/config/config.yaml", "faults.yaml")
ARGS = (*CONFIGS, "--cores", "2")
REPORT = "results/report.html"
# as `make run` makes it: Snakemake writes the report in place, so under a temporary name, then renamed
PARTIAL_REPORT = "results/.report.partial.html"
TAXONOMY = "results/data/taxonomy.png"

# Stages in pipeline order, by the rules that make them (train_fused_<hash>: a fused group).
STAGES = {
    "assets": {"fetch_asset", "convert_weights"},
    "data": {"build_dataset", "build_questions", "materialize_condition", "provenance", "plot_taxonomy"},
    "features": {"extract_features"},
    "train": {"train_projector", "train_fused"},
    "evaluate": {"evaluate_projector", "name_projector"},
    "captioning": {"caption_decode", "caption_collect", "caption_figure"},
    "probing": {"probe_states", "probe_fit"},
    "analysis": {"textprobe", "upper_bound", "combine_textprobe", "collect_metrics", "contrasts",
                 "mixed_effects", "coherence", "collect_dynamics", "figures", "tables", "all"},
}
ORDER = [*STAGES, "report"]
N_KILLS = 12
MAX_TRIES = 4  # per kill: a kill that finds its stage done forces the stage's rules to run again

# Compared for completeness only, not content: report.html (Snakemake's report embeds the time it was
# made and the jobs' runtimes). Not compared: results/timings/ (each job's measured time and
# memory), logs/ (timestamps, progress lines), .snakemake/ (Snakemake's own metadata). Training checkpoints (results/checkpoints/) are
# transient: present while a training runs, deleted when it ends; a kill may leave one, which the
# rerun resumes from (test_operations checks that resumption is bit-identical).
NOT_COMPARED = {"report.html"}
TMP = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # io.atomic_path/atomic_dir's temporaries


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def snakemake(*args: str, cwd: Path, check: bool = True, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env())
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return result


def clone_run(source: Path, dest: Path) -> Path:
    """A copy of a finished run (results, metadata, mtimes), without locks."""
    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "locks", "incomplete"))
    return dest


def stage_of(rule: str) -> str:
    name = "train_fused" if rule.startswith("train_fused_") else rule
    return next((stage for stage, rules in STAGES.items() if name in rules), "other")


# ------------------------------------------------------------------------------ comparing results
def result_files(root: Path) -> dict[str, Path]:
    """Every output file (results/, and the converted models under resources/) by relative path, but
    temporaries, training checkpoints and the job timings (Snakemake's `benchmark:` files, results/timings/)."""
    out = {}
    for top in ("results", "resources"):
        for path in (root / top).rglob("*"):
            rel = path.relative_to(root)
            if any(TMP.fullmatch(part) for part in rel.parts) or rel.parts[1] in ("checkpoints", "timings") or \
                    path.name == Path(PARTIAL_REPORT).name:
                continue
            if path.is_file() and not path.is_symlink():
                out[str(rel)] = path
    return out


def temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for top in ("results", "resources") for p in (root / top).rglob("*")
                  if TMP.fullmatch(p.name))


def same_value(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_value, a, b))
    return a == b


def same_file(a: Path, b: Path) -> bool:
    """Byte-identical, or for a .pt file tensor-equal (the same keys, values and tensors)."""
    if a.read_bytes() == b.read_bytes():
        return True
    if a.suffix != ".pt":
        return False
    import torch

    try:
        return same_value(torch.load(a, map_location="cpu", weights_only=True),
                          torch.load(b, map_location="cpu", weights_only=True))
    except Exception:  # an unreadable (truncated) file is not the same
        return False


def differences(base: Path, other: Path, *, complete: bool) -> list[str]:
    """What in other/results is not as in base/results: a file that differs, one the base run does not
    have, and (complete=True) one that is missing. Files in NOT_COMPARED need only be non-empty."""
    expected, present = result_files(base), result_files(other)
    problems = [f"unexpected file {rel}" for rel in sorted(present.keys() - expected.keys())]
    for rel in sorted(present.keys() & expected.keys()):
        if Path(rel).name in NOT_COMPARED:
            if present[rel].stat().st_size == 0:
                problems.append(f"empty {rel}")
        elif not same_file(present[rel], expected[rel]):
            problems.append(f"differs from the uninterrupted run: {rel}")
    if complete:
        problems += [f"missing {rel}" for rel in sorted(expected.keys() - present.keys())]
    return problems


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file and folder under root, but paths under `skip`."""
    out = {}
    for path in root.rglob("*"):
        rel = str(path.relative_to(root))
        if not rel.startswith(skip):
            stat = path.lstat()
            out[rel] = (stat.st_size, stat.st_mtime_ns)
    return out


# ------------------------------------------------------------------------------- a run to be killed
class Run:
    """Snakemake in its own process group, its output read line by line as it comes."""

    def __init__(self, workdir: Path, *args: str):
        self.proc = subprocess.Popen([*SNAKEMAKE, *args], cwd=workdir, env=env(), start_new_session=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def started(self) -> list[str]:
        return [m.group(1) for line in list(self.lines) if (m := re.fullmatch(r"(?:local)?rule (\w+):", line))]

    def finished(self) -> list[str]:
        return [m.group(1) for line in list(self.lines) if (m := re.search(r"Finished jobid: \d+ \(Rule: (\w+)\)", line))]

    def running(self) -> list[str]:
        left = list(self.finished())
        out = []
        for rule in self.started():
            if rule in left:
                left.remove(rule)
            else:
                out.append(rule)
        return out

    def planned(self) -> set[str] | None:
        """The rules of the run's job table (None until it is printed; empty: nothing to do)."""
        text = self.text()
        if "Nothing to be done" in text:
            return set()
        if "Job stats:" not in text:
            return None
        lines = text.split("Job stats:", 1)[1].splitlines()[3:]
        rules = set()
        for line in lines:
            fields = line.split()
            if len(fields) != 2 or fields[0] == "total":
                break
            rules.add(fields[0])
        return rules if rules else None

    def done(self) -> bool:
        return self.proc.poll() is not None

    def kill(self) -> None:
        with_pgid = self.proc.pid
        try:
            os.killpg(with_pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        deadline = time.monotonic() + 10
        while group_members(with_pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not group_members(with_pgid), f"processes outlived SIGKILL of group {with_pgid}: {group_members(with_pgid)}"

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code


def group_members(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def wait_until(predicate, run: Run, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if run.done():
            return bool(predicate())
        time.sleep(step)
    return False


# -------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The uninterrupted run with its report: the reference every test compares with.

    TAXVLM_FAULT_BASE=<folder> reuses, read-only and in place, the base folder of an earlier session
    (under its --basetemp), to try more seeds without paying for the reference again."""
    if os.environ.get("TAXVLM_FAULT_BASE"):
        workdir = Path(os.environ["TAXVLM_FAULT_BASE"])
        assert (workdir / "faults.yaml").read_text() == FAULTS_OVERRIDE, "TAXVLM_FAULT_BASE ran another configuration"
        assert (workdir / REPORT).is_file(), f"TAXVLM_FAULT_BASE: {workdir} is not a finished base run"
        return workdir, 20.0
    workdir = copy_workflow(tmp_path_factory.mktemp("faults") / "base")
    (workdir / "faults.yaml").write_text(FAULTS_OVERRIDE)
    snakemake(*ARGS, cwd=workdir)
    start = time.monotonic()
    make_report(workdir)
    return workdir, time.monotonic() - start


def make_report(workdir: Path) -> None:
    snakemake(*CONFIGS, "--cores", "1", "--report", PARTIAL_REPORT, cwd=workdir)
    os.replace(workdir / PARTIAL_REPORT, workdir / REPORT)


@dataclass
class Kill:
    stage: str
    mode: str  # "delay": a random time after a job of the stage starts; "write": as a result file is written
    delay: float
    hit: list[str] = field(default_factory=list)  # the rules running when it struck
    note: str = ""
    missed: list[str] = field(default_factory=list)  # why each earlier try missed its stage


def kill_plan(rng: random.Random) -> list[Kill]:
    """Every stage once, the rest at random, in pipeline order; a third of them aimed at a write."""
    stages = ORDER + rng.choices([s for s in ORDER if s != "assets"], k=N_KILLS - len(ORDER))
    stages.sort(key=ORDER.index)
    modes = ["write"] * (N_KILLS // 3) + ["delay"] * (N_KILLS - N_KILLS // 3)
    rng.shuffle(modes)
    return [Kill(stage, "delay" if stage == "report" else mode, round(rng.uniform(0.0, 5.0), 2))
            for stage, mode in zip(stages, modes)]


def stage_rules(workdir: Path) -> dict[str, list[str]]:
    """The workflow's rules by stage (fused groups' rules are named after their hash), for --forcerun."""
    listed = snakemake(*CONFIGS, "--list-rules", cwd=workdir).stdout.split()
    return {stage: [r for r in listed if stage_of(r) == stage and r != "all"] for stage in STAGES}


def strike(kill: Kill, run: Run, workdir: Path, delay: float) -> str:
    """Kill `run` while a job of the kill's stage runs: after `delay` seconds or as it writes a result.
    Returns why it missed ("" when it struck): the stage had nothing to do, or the run ended first."""
    if not wait_until(lambda: run.planned() is not None, run, RUN_TIMEOUT):
        run.kill()
        raise AssertionError(f"no job table:\n{run.text()[-3000:]}")
    if kill.stage not in {stage_of(rule) for rule in run.planned()}:
        run.kill()
        return f"no {kill.stage} job left to do"
    if not wait_until(lambda: any(stage_of(r) == kill.stage for r in run.running()), run, RUN_TIMEOUT):
        run.kill()
        assert run.proc.returncode in (0, -signal.SIGKILL), f"the run failed:\n{run.text()[-6000:]}"
        return f"no {kill.stage} job started"
    if kill.mode == "write":
        before = set(temporaries(workdir))
        wait_until(lambda: set(temporaries(workdir)) - before, run, 60, step=0.005)
        new = sorted(set(temporaries(workdir)) - before)
        kill.note = f"writing {new[0]}" if new else "no write seen"
    else:
        wait_until(lambda: False, run, delay)
    kill.hit = run.running()
    ended = run.done()
    run.kill()
    return "the run ended first" if ended else ""


# ------------------------------------------------------------------------------------- the tests
def test_random_kills_leave_only_complete_files_and_the_reruns_end_identical(base_run, fault_seed: int,
                                                                             tmp_path: Path, capsys) -> None:
    base, report_seconds = base_run
    rng = random.Random(fault_seed)
    plan = kill_plan(rng)
    with capsys.disabled():
        print(f"\nfault seed {fault_seed} (rerun with --fault-seed N or TAXVLM_FAULT_SEED=N): "
              + ", ".join(f"{k.stage}/{k.mode}" for k in plan))
    workdir = copy_workflow(tmp_path / "killed")
    (workdir / "faults.yaml").write_text(FAULTS_OVERRIDE)

    def after_kill(kill: Kill, run: Run) -> None:
        problems = differences(base, workdir, complete=False)
        assert not problems, (f"seed {fault_seed}: after a kill in {kill.stage} ({kill.hit}):\n" + "\n".join(problems)
                              + "\n" + run.text()[-3000:])
        snakemake("--unlock", *CONFIGS, cwd=workdir)  # the killed run's lock is stale

    rules = stage_rules(workdir)
    for kill in (k for k in plan if k.stage != "report"):
        forced: list[str] = []
        while len(kill.missed) < MAX_TRIES:
            run = Run(workdir, *ARGS, *(["--forcerun", *forced] if forced else []))
            missed = strike(kill, run, workdir, delay=kill.delay / 2 ** len(kill.missed))
            after_kill(kill, run)
            if not missed:
                break
            # the stage had finished (an earlier kill came after the run's end, or the machine outran the
            # delay): force the stage's rules to run again, and strike sooner
            kill.missed.append(missed)
            forced = rules[kill.stage]

    final = Run(workdir, *ARGS)
    assert final.wait() == 0, final.text()[-6000:]
    for kill in (k for k in plan if k.stage == "report"):  # killed at a random moment of its making
        share = rng.uniform(0.2, 0.9)
        while len(kill.missed) < MAX_TRIES:
            run = Run(workdir, *CONFIGS, "--cores", "1", "--report", PARTIAL_REPORT)
            wait_until(lambda: False, run, share * report_seconds / 2 ** len(kill.missed))
            kill.hit, ended = ["report"], run.done()
            run.kill()
            after_kill(kill, run)
            report = workdir / REPORT
            assert not report.exists() or report.read_bytes().rstrip().endswith(b"</html>"), "truncated report"
            if not ended:
                break
            kill.missed.append("the report was done first")
    make_report(workdir)

    with capsys.disabled():
        for kill in plan:
            tries = f" (struck at try {len(kill.missed) + 1}: {'; '.join(kill.missed)})" if kill.missed else ""
            print(f"  kill in {kill.stage:<10} {kill.mode:<5} hit {','.join(kill.hit) or '-'} {kill.note}{tries}")
        print(f"  {len(result_files(base))} result files compared with the uninterrupted run's after every kill "
              "and at the end (tables and figures byte-identical, .pt tensor-equal)")
    assert not differences(base, workdir, complete=True), differences(base, workdir, complete=True)
    assert not temporaries(workdir), f"temporaries left behind: {temporaries(workdir)}"
    missed = [vars(k) for k in plan if len(k.missed) == MAX_TRIES]
    assert not missed and len(plan) == N_KILLS and {k.stage for k in plan} == set(ORDER), missed
    assert (workdir / REPORT).read_bytes().rstrip().endswith(b"</html>")


def test_a_second_run_at_once_is_refused_by_the_lock_and_touches_nothing(base_run, tmp_path: Path) -> None:
    workdir = clone_run(base_run[0], tmp_path / "locked")
    first = Run(workdir, *ARGS, "--forcerun", TAXONOMY, "--", TAXONOMY)  # one job, which holds the lock
    locks = workdir / ".snakemake/locks"
    try:
        assert wait_until(lambda: locks.is_dir() and any(locks.iterdir()), first, RUN_TIMEOUT), first.text()[-3000:]
        os.killpg(first.proc.pid, signal.SIGSTOP)  # the first run holds its lock, frozen
        # .snakemake/log gets every invocation's log file, the second's too
        before = snapshot(workdir, skip=(".snakemake/log",))
        second = snakemake(*ARGS, "--forceall", cwd=workdir, check=False)
        after = snapshot(workdir, skip=(".snakemake/log",))
    finally:
        os.killpg(first.proc.pid, signal.SIGCONT)
    output = second.stdout + second.stderr
    assert second.returncode != 0
    assert "Directory cannot be locked" in output, output
    assert not re.search(r"^(local)?rule \w+:", output, re.M), output
    assert after == before, sorted(set(after.items()) ^ set(before.items()))[:10]
    assert first.wait() == 0, first.text()[-3000:]
    assert not differences(base_run[0], workdir, complete=True)


PREDICTIONS = "results/runs/tiny_vit/tiny_llama/pretrained/none/original/yesno/seed7/predictions.tsv"
PROJECTOR = "results/runs/tiny_vit/tiny_llama/random/full/original/caption/seed7/projector.pt"
# a job that reads each (collect_metrics reads every run's predictions; naming reads the projector)
READERS = {PREDICTIONS: "results/analysis/metrics.tsv",
           PROJECTOR: "results/runs/tiny_vit/tiny_llama/random/full/original/caption/seed7/naming.tsv"}


def test_damaged_results_are_named_with_the_command_that_rebuilds_them(base_run, tmp_path: Path) -> None:
    workdir = clone_run(base_run[0], tmp_path / "damaged")
    for damaged, reader in READERS.items():  # one at a time: metrics.tsv also needs the projector's naming
        path = workdir / damaged
        data = path.read_bytes()
        if damaged.endswith(".tsv"):
            cut = len(data) // 2
            while data[cut - 1:cut] in (b"\n", b"\t"):  # mid-field: pandas alone reads the cut row's rest as ""
                cut += 1
            path.write_bytes(data[:cut])
        else:
            path.write_bytes(random.Random(0).randbytes(len(data)))
        result = snakemake(*ARGS, reader, cwd=workdir, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        named = re.search(rf"CorruptResultError: {re.escape(damaged)}: .*`snakemake --forcerun {re.escape(damaged)}`",
                          output)
        assert named, f"{damaged} not named with its fix:\n{output[-6000:]}"
        snakemake("--unlock", *CONFIGS, cwd=workdir)

    # the advice works: both rebuilt as the uninterrupted run made them
    snakemake(*ARGS, "--forcerun", PREDICTIONS, PROJECTOR, "--", PREDICTIONS, PROJECTOR, cwd=workdir)
    for damaged in READERS:
        assert same_file(workdir / damaged, base_run[0] / damaged), damaged


def test_a_full_disk_names_the_file_leaves_nothing_truncated_and_the_rerun_ends_identical(base_run, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root, and this user is not root")
    base = base_run[0]
    workdir = clone_run(base, tmp_path / "full")
    results = workdir / "results"
    saved = workdir / "results.saved"
    results.rename(saved)
    results.mkdir()
    used = sum(-(-p.stat().st_size // 4096) * 4096 for p in saved.rglob("*") if p.is_file())
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={used + (4 << 20)}", "tmpfs", str(results)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        shutil.copytree(saved, results, symlinks=True, dirs_exist_ok=True)
        # work for the rerun: the figures, which do not fit in what is left
        shutil.rmtree(results / "analysis/figures")
        stats = os.statvfs(results)
        filler = results / "filler"
        with open(filler, "wb") as handle:
            handle.write(b"\0" * (stats.f_bavail * stats.f_frsize - (24 << 10)))
        failed = snakemake(*ARGS, cwd=workdir, check=False)
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0
        assert re.search(r"No space left on device while writing \S*results/", output), output[-6000:]
        filler.unlink()
        assert not differences(base, workdir, complete=False)
        assert not temporaries(workdir)
        snakemake(*ARGS, cwd=workdir)
        assert not differences(base, workdir, complete=True)
    finally:
        subprocess.run(["umount", "-l", str(results)], check=False)
