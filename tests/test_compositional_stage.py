"""The compositional jobs' file glue: the workflow's model/path lists, the pipeline mode from files,
COCO captions, θ collection, report figures and tables."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch

from taxvlm.compositional import config as cc
from taxvlm.compositional import report, stage
from taxvlm.config import expand_experiments
from taxvlm.grid import ConfigError
from taxvlm.io import read_tsv, write_tsv
from taxvlm.settings.compositional import Compositional, OpenClipModel
from taxvlm.settings.tree import Config

from spec_builders import preset, trained_run, validated

REPO = Path(__file__).resolve().parents[1]


def _config(name: str) -> dict:
    """The validated config of the default preset with the overlay `name` after it."""
    return validated(preset("config/config.yaml", f"config/{name}"))


def plan(overlay: str) -> tuple[Counter, list[str]]:
    """Jobs per rule of the `compositional` target under the default with `overlay` after it (a dry run
    from scratch), and the files the collecting job reads."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--configfile", "config/config.yaml", f"config/{overlay}",
         "--cores", "2", "compositional"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-4000:]
    jobs = Counter(re.findall(r"^(?:local)?rule (\w+):$", text, re.M))
    collected = re.search(r"^rule compositional_collect:\n    input: (.*)$", text, re.M).group(1).split(", ")
    return jobs, [path for path in collected if path.startswith("results/")]


def test_default_lists_vlms_pipeline_and_faithful_models() -> None:
    jobs, collected = plan("compositional_default.yaml")
    assert (jobs["compositional_score_vlm"], jobs["compositional_pipeline"], jobs["compositional_faithful"],
            jobs["compositional_score_open_clip"]) == (2, 5, 5, 1)
    assert sum(path.endswith("/scored.tsv") or "/scored/" in path for path in collected) == 2 + 5 + 5 + 1
    assert sum(path.endswith("/curve.tsv") for path in collected) == 8  # every ablation but itc, both modes
    assert "compositional_benchmark_open_clip" not in jobs
    config = _config("compositional_default.yaml")
    runs = expand_experiments(config["experiments"])
    assert [r.init for r in cc.pipeline_runs(Config.from_config(config), runs)] == ["pretrained"]


def test_real_config_scores_benchmarks_by_faithful_models_and_pipeline_selector_must_match() -> None:
    jobs, collected = plan("compositional.yaml")
    config = _config("compositional.yaml")
    runs = expand_experiments(config["experiments"])
    # every benchmark x (its open_clip model, the faithful ablations, the grid's VLMs)
    assert (jobs["compositional_benchmark_open_clip"], jobs["compositional_benchmark_faithful"],
            jobs["compositional_benchmark_vlm"]) == (7, 7 * 5, 7 * len(runs))
    assert f"results/compositional/benchmarks/sugarcrepe/vlm/{runs[0].path}.tsv" in collected
    assert not any(path.startswith("results/compositional/faithful/") and path.endswith("scored.tsv")
                   for path in collected)  # faithful mode trains on COCO: not scored on the dataset
    config["compositional"]["contrastive"]["pipeline"]["runs"] = {"condition": "systematic1", "init": "random"}
    with pytest.raises(ConfigError, match="pipeline.runs .* matches no run"):
        cc.check_compositional(Config.from_config(config), runs)
    config["compositional"]["enabled"] = False
    cc.check_compositional(Config.from_config(config), runs)  # a disabled section builds nothing, so it cannot be wrong


def test_a_disabled_stage_plans_nothing_and_its_rules_are_not_read() -> None:
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--list-rules"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    rules = result.stdout.split()
    assert "compositional" in rules  # the target exists, empty while the stage is disabled
    assert not [rule for rule in rules if rule.startswith("compositional_")]


def _files(tmp_path: Path) -> dict[str, Path]:
    from taxvlm.models.projector import Projector

    ids = [f"c{i}/im{j}" for i in range(3) for j in range(4)]
    torch.save(
        {"image_ids": ids, "pooled": torch.randn(len(ids), 8).half(), "tokens": torch.zeros(len(ids), 1, 8)},
        tmp_path / "feat.pt",
    )
    spec = {"projector": "linear", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}
    projector = Projector("linear", "pooled", 8, 16, prefix_tokens=2)
    torch.save(
        {"spec": spec, "d_vis": 8, "d_lm": 16, "state_dict": projector.state_dict(), "init": "pretrained", "seed": 1},
        tmp_path / "projector.pt",
    )
    images = pd.DataFrame({"image_id": ids, "split": ["train", "train", "test", "test"] * 3})
    write_tsv(images, tmp_path / "images.tsv")
    rows = []
    for i in ids:
        caption = f"a {i[:2]} on a mat"
        rows += [(i, caption, f"a mat on a {i[:2]}", "relation", True, ""), (i, caption, "", "object", False, "none")]
    negatives = pd.DataFrame(rows, columns=["image_id", "caption", "negative", "type", "valid", "reason"])
    write_tsv(negatives, tmp_path / "negatives.tsv")
    texts = sorted(set(negatives["caption"]) | set(negatives.loc[negatives["valid"], "negative"]))
    torch.save({"texts": texts, "features": torch.randn(len(texts), 16).half()}, tmp_path / "text.pt")
    return {
        k: tmp_path / f
        for k, f in [
            ("feat", "feat.pt"),
            ("proj", "projector.pt"),
            ("images", "images.tsv"),
            ("neg", "negatives.tsv"),
            ("text", "text.pt"),
        ]
    }


def test_pipeline_mode_from_files(tmp_path: Path) -> None:
    f = _files(tmp_path)
    section = Compositional.from_config({
        "types": ["relation", "object"],
        "contrastive": {
            "lambda_imc": 0.3,
            "lambda_cmr": 0.2,
            "lr": 1e-6,
            "weight_decay": 0.1,
            "betas": [0.9, 0.98],
            "eps": 1e-6,
            "warmup_steps": 1,
            "batch_size": 128,
            "epochs": 1,
            "pipeline": {"lr": 1e-2, "epochs": 2, "batch_size": 3},
        },
    })
    out = tmp_path / "out"
    stage.train_pipeline_mode(f["neg"], f["images"], f["feat"], f["proj"], f["text"], section, "all", 3, out)
    curve, scored = read_tsv(out / "curve.tsv"), read_tsv(out / "scored.tsv")
    assert len(curve) == 2 * (6 // 3) and set(scored["type"]) == {"relation"} and len(scored) == 6
    assert json.loads((out / "train_config.json").read_text())["recipe"]["lr"] == 1e-2
    state = torch.load(out / "model.pt", weights_only=True)
    assert set(state["state_dict"]) >= {"head.weight", "logit_scale", "projector.inp.weight"}
    torch.manual_seed(99)  # whatever the process's RNG state, the same seed trains the same model
    stage.train_pipeline_mode(
        f["neg"], f["images"], f["feat"], f["proj"], f["text"], section, "all", 3, tmp_path / "again"
    )
    again = torch.load(tmp_path / "again" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(again[k], v) for k, v in state["state_dict"].items())
    stage.collect_thetas({"pipeline/all": out / "curve.tsv"}, tmp_path / "thetas.tsv")
    thetas = read_tsv(tmp_path / "thetas.tsv")
    assert set(thetas["type"]) == {"relation", "object"} and len(thetas) == 2 * len(curve)


def test_coco_captions(tmp_path: Path) -> None:
    data = {
        "images": [{"id": 9, "file_name": "COCO_train2014_9.jpg"}],
        "annotations": [{"image_id": 9, "caption": "A dog. "}, {"image_id": 9, "caption": "A cat."}],
    }
    with zipfile.ZipFile(tmp_path / "ann.zip", "w") as z:
        z.writestr("annotations/captions_train2014.json", json.dumps(data))
    stage.coco_captions(
        tmp_path / "ann.zip", "annotations/captions_train2014.json", "root", tmp_path / "i.tsv", tmp_path / "c.tsv"
    )
    assert read_tsv(tmp_path / "i.tsv").values.tolist() == [["9", "root/COCO_train2014_9.jpg", "train"]]
    assert read_tsv(tmp_path / "c.tsv")["caption"].tolist() == ["A cat.", "A dog."]
    with pytest.raises(ValueError, match="no member 'x'"):
        stage.coco_captions(tmp_path / "ann.zip", "x", "root", tmp_path / "i.tsv", tmp_path / "c.tsv")


def test_report_figures_and_tables(tmp_path: Path) -> None:
    accuracy = pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "type": ["cohyponym", "cross_category", "relation"],
            "n": [10, 10, 4],
            "correct": [6, 10, 2],
            "accuracy": [0.6, 1.0, 0.5],
            "ci_low": [0.3, 0.6, 0.15],
            "ci_high": [0.83, 1 - 1e-16, 0.85],
        }
    )
    report.accuracy_figure(accuracy, tmp_path / "a.png")
    report.taxonomic_figure(accuracy, tmp_path / "t.png")
    thetas = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "step": [1, 2, 1, 2],
            "epoch": [1] * 4,
            "type": ["relation", "relation", "object", "object"],
            "theta": [0, 1.5, 0, 0.5],
        }
    )
    report.theta_figure(thetas, tmp_path / "th.png")
    report.theta_figure(thetas.iloc[:0], tmp_path / "empty.png")
    report.accuracy_table(accuracy, tmp_path / "t.csv", tmp_path / "t.md")
    assert all((tmp_path / n).stat().st_size > 0 for n in ["a.png", "t.png", "th.png", "empty.png"])
    md = (tmp_path / "t.md").read_text()
    assert md.splitlines()[0] == "| model | relation | cohyponym | cross_category |"
    assert "0.600 [0.300, 0.830] (n=10)" in md


def test_vlm_scored_on_a_benchmark_through_its_views(tmp_path: Path, tiny_lm_dir: Path) -> None:
    """A trained run scores ARO's VG-Relation fixture on the encoder features of each item's region."""
    from taxvlm.compositional.benchmarks import load_benchmark
    from taxvlm.models.projector import Projector

    fixture = REPO / "tests/data/compositional/aro/visual_genome_relation.json"
    write_tsv(load_benchmark("aro_vg_relation", "aro_relation", {"vg": fixture}, {}), tmp_path / "items.tsv")
    from PIL import Image

    (tmp_path / "vg").mkdir()
    for name in ("2315529.jpg", "2315530.jpg"):
        Image.new("RGB", (80, 70)).save(tmp_path / "vg" / name)
    stage.benchmark_images(tmp_path / "items.tsv", tmp_path / "vg", tmp_path / "images.tsv", tmp_path / "crops")
    images = read_tsv(tmp_path / "images.tsv")
    assert images["image_id"].tolist() == ["2315529.jpg#10,20,30,40", "2315530.jpg#0,0,5,5"]
    assert [Image.open(p).size for p in images["path"]] == [(30, 40), (5, 5)]  # the regions, cropped once
    d_lm = json.loads((tiny_lm_dir / "config.json").read_text())["hidden_size"]
    features = {"image_ids": list(images["image_id"]), "pooled": torch.randn(2, 8), "tokens": torch.zeros(2, 1, 8)}
    torch.save(features, tmp_path / "feat.pt")
    spec = {"projector": "linear", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}
    state = Projector("linear", "pooled", 8, d_lm, prefix_tokens=2).state_dict()
    ckpt = {"spec": spec, "d_vis": 8, "d_lm": d_lm, "state_dict": state, "init": "pretrained", "seed": 1}
    torch.save(ckpt, tmp_path / "projector.pt")
    run = trained_run(tiny_lm_dir, tmp_path, tmp_path / "feat.pt", 1)
    out = tmp_path / "scored.tsv"
    stage.score_vlm_benchmark(tmp_path / "items.tsv", run, 4, out)
    scored = read_tsv(out)
    assert scored["view"].tolist() == images["image_id"].tolist() and set(scored["correct"]) <= {"True", "False"}
    assert (scored["score_caption"].astype(float) != scored["score_negative"].astype(float)).all()


def test_random_init_open_clip_is_seeded(tmp_path: Path) -> None:
    from taxvlm.compositional.tiny import TINY_OPEN_CLIP

    spec = OpenClipModel(name="taxvlm-tiny-seeded", pretrained=None, config=TINY_OPEN_CLIP)
    first = stage.load_open_clip(spec, tmp_path / "a")[0].state_dict()
    torch.manual_seed(5)
    second = stage.load_open_clip(spec, tmp_path / "b")[0].state_dict()
    other = stage.load_open_clip(spec, tmp_path / "c", seed=1)[0].state_dict()
    assert all(torch.equal(first[k], v) for k, v in second.items())
    assert not torch.equal(first["text_projection"], other["text_projection"])
