"""The compositional jobs the workflow runs (files in, files out); the logic lives in the modules
they call. Contrastive models train on the `train` images of images.tsv and are scored on the
`test` images' hard negatives, as every other readout here."""

from __future__ import annotations

import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from taxvlm.compositional import contrastive as C
from taxvlm.compositional.benchmarks import load_benchmark
from taxvlm.compositional.evaluation import (
    ACCURACY_COLUMNS,
    ITEM_COLUMNS,
    accuracy_by_type,
    embedding_scores,
    image_views,
    score_items,
    valid_items,
)
from taxvlm.compositional.tiny import register_open_clip_config
from taxvlm.data.errors import DataError, read_table
from taxvlm.io import atomic_dir, load_pt, read_tsv, save_pt, write_json, write_tsv
from taxvlm.seeding import derive_seed
from taxvlm.settings.compositional import Benchmark, Compositional, OpenClipModel
from taxvlm.specs import FrozenLM, TrainedRun

log = logging.getLogger(__name__)


def split_ids(images_path: Path, split: str) -> set[str]:
    images = read_table(images_path, ["image_id", "split"])
    return set(images.loc[images["split"] == split, "image_id"])


def test_items(negatives_path: Path, images_path: Path) -> pd.DataFrame:
    """The valid hard negatives of the test images."""
    items = valid_items(read_table(negatives_path, ITEM_COLUMNS + ["valid"]))
    return items[items["image_id"].isin(split_ids(images_path, "test"))].reset_index(drop=True)


def load_open_clip(
    spec: OpenClipModel, config_dir: Path, device: str | torch.device = "cpu", seed: int = 0
) -> tuple[Any, Any, Any]:
    """(model, tokenizer, preprocess) of a `compositional.open_clip` entry; an entry with `config`
    registers that architecture under its name first (the offline tiny model). Weights a checkpoint
    does not set (all of them with `pretrained: null`) are drawn from `seed`, so a random-init
    reference scores the same in every run."""
    import open_clip

    if spec.config:
        register_open_clip_config(spec.name, spec.config, config_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "open_clip-init", spec.name) % 2**63)
        model, _, preprocess = open_clip.create_model_and_transforms(spec.name, pretrained=spec.pretrained, device=device)
    return model, open_clip.get_tokenizer(spec.name), preprocess


def compute_text_features(negatives_path: Path, types: list[str], lm: FrozenLM, out: Path) -> None:
    """text_features.pt: the frozen LM's mean-pooled states of every caption and negative, once."""
    from taxvlm.models.lms import load_lm

    negatives = read_table(negatives_path, ITEM_COLUMNS + ["valid"])
    texts = C.all_texts(negatives, types)
    model, tokenizer = load_lm(lm)
    t0 = time.perf_counter()
    features = C.lm_text_features(model, tokenizer, texts)
    log.info("embedded %d texts in %.1fs", len(texts), time.perf_counter() - t0)
    save_pt({"texts": texts, "features": features.half()}, out)  # atomic: a killed job leaves no truncated file


def _write_model(out_dir: Path, state: dict[str, Any], curve: pd.DataFrame, scored: pd.DataFrame, info: dict) -> None:
    with atomic_dir(out_dir) as tmp:
        save_pt(state, tmp / "model.pt")
        write_tsv(curve, tmp / "curve.tsv")
        write_tsv(scored, tmp / "scored.tsv")
        write_json(info, tmp / "train_config.json")


def _train_and_score(
    encoder: C.DualEncoder,
    negatives: pd.DataFrame,
    images_path: Path,
    image_index: dict[str, int],
    texts: list[str],
    recipe: C.Recipe,
    ablation: str,
    types: list[str],
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    text_index = {t: i for i, t in enumerate(texts)}
    data = C.pair_data(negatives, types, image_index, text_index, split_ids(images_path, "train"))
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    curve = C.train_dual_encoder(encoder, data, recipe, C.ablation_terms(ablation), seed)
    log.info(
        "trained %s: %d steps in %.1fs; last epoch %s",
        ablation,
        len(curve),
        time.perf_counter() - t0,
        C.curve_summary(curve),
    )
    items = valid_items(negatives)
    items = items[items["image_id"].isin(split_ids(images_path, "test")) & items["type"].isin(types)]
    if items.empty:  # COCO: every image trains; the benchmarks score the model
        return curve, items.assign(score_caption=[], score_negative=[], correct=[])
    embeds = C.image_embeddings(encoder, image_index, list(items["image_id"]))
    return curve, score_items(items.reset_index(drop=True), embedding_scores(embeds, C.text_embedder(encoder, texts)))


def train_pipeline_mode(
    negatives_path: Path,
    images_path: Path,
    features_path: Path,
    projector_path: Path,
    text_features_path: Path,
    section: Compositional,
    ablation: str,
    seed: int,
    out_dir: Path,
) -> None:
    """Pipeline mode (taxvlm.compositional.contrastive): model.pt, curve.tsv, scored.tsv."""
    from taxvlm.features import load_features
    from taxvlm.models.projector import build_projector

    pipeline = section.contrastive.pipeline  # its own rate, length and batch: its head starts from scratch
    recipe = C.Recipe.from_config(
        section.contrastive, lr=pipeline.lr, epochs=pipeline.epochs, batch_size=pipeline.batch_size
    )
    ckpt = load_pt(projector_path)
    projector = build_projector(ckpt["spec"], ckpt["d_vis"], ckpt["d_lm"])
    projector.load_state_dict(ckpt["state_dict"])
    data = load_features(features_path)
    text = load_pt(text_features_path)
    torch.manual_seed(seed)  # the text head's initial weights
    encoder = C.PipelineDualEncoder(projector, data[ckpt["spec"]["features"]], text["features"])
    image_index = {i: n for n, i in enumerate(data["image_ids"])}
    negatives = read_table(negatives_path, ITEM_COLUMNS + ["valid"])
    types = list(section.types)
    curve, scored = _train_and_score(
        encoder, negatives, images_path, image_index, text["texts"], recipe, ablation, types, seed
    )
    state = {
        "state_dict": encoder.state_dict(),
        "projector_spec": ckpt["spec"],
        "d_vis": ckpt["d_vis"],
        "d_lm": ckpt["d_lm"],
        "ablation": ablation,
    }
    _write_model(out_dir, state, curve, scored, {"recipe": recipe.__dict__, "ablation": ablation, "seed": seed})


def train_faithful_mode(
    negatives_path: Path,
    images_path: Path,
    spec: OpenClipModel,
    section: Compositional,
    ablation: str,
    seed: int,
    out_dir: Path,
    root: Path = Path("."),
) -> None:
    """Faithful mode: fine-tune the open_clip model with CE-CLIP's recipe; model.pt, curve.tsv, scored.tsv."""
    model, tokenizer, preprocess = load_open_clip(spec, out_dir.parent / f".{out_dir.name}.open_clip_config", seed=seed)
    images = read_table(images_path, ["image_id", "path", "split"])
    image_index = {i: n for n, i in enumerate(images["image_id"])}
    paths = [str(root / p) for p in images["path"]]
    negatives = read_table(negatives_path, ITEM_COLUMNS + ["valid"])
    types = list(section.types)
    texts = C.all_texts(negatives, types)
    encoder = C.OpenClipDualEncoder(model, tokenizer, preprocess, paths, texts)
    recipe = C.Recipe.from_config(section.contrastive)
    curve, scored = _train_and_score(encoder, negatives, images_path, image_index, texts, recipe, ablation, types, seed)
    state = {"state_dict": model.state_dict(), "open_clip": spec.record(), "ablation": ablation}
    _write_model(out_dir, state, curve, scored, {"recipe": recipe.__dict__, "ablation": ablation, "seed": seed})


def coco_captions(annotations_zip: Path, member: str, image_root: str, out_images: Path, out_captions: Path) -> None:
    """COCO captions (the faithful mode's real data) → an images table (`image_id`, `path`, `split`
    = train) and a captions table (`image_id`, `caption`)."""
    with zipfile.ZipFile(annotations_zip) as archive:
        if member not in archive.namelist():
            raise DataError(f"{annotations_zip}: no member {member!r}")
        data = json.loads(archive.read(member).decode("utf-8"))
    for key in ("images", "annotations"):
        if key not in data:
            raise DataError(f"{annotations_zip}:{member}: no key {key!r}")
    files = {image["id"]: image["file_name"] for image in data["images"]}
    images = pd.DataFrame({"image_id": [str(i) for i in files], "path": [f"{image_root}/{f}" for f in files.values()]})
    write_tsv(images.assign(split="train").sort_values("image_id"), out_images)
    captions = pd.DataFrame(
        [(str(a["image_id"]), a["caption"].strip()) for a in data["annotations"]], columns=["image_id", "caption"]
    )
    write_tsv(captions.sort_values(["image_id", "caption"]), out_captions)


def benchmark_items(
    name: str, spec: Benchmark, files: dict[str, Path], seed: int, out: Path, nltk_data_dir: Path | None = None
) -> None:
    """items.tsv of one benchmark (taxvlm.compositional.benchmarks); for ARO's order sets WordNet
    (`nltk_data_dir`) tags the captions' words for the two tagged perturbations."""
    sha = {key: f.sha256 for key, f in spec.files.items()}
    lexicon = None
    if spec.format == "aro_order" and nltk_data_dir is not None:
        from taxvlm.assets.wordnet import load_wordnet
        from taxvlm.compositional.negatives import lexicon_from_wordnet

        captions = [c for path in files.values() for c in _order_captions(path)]
        lexicon = lexicon_from_wordnet(load_wordnet(nltk_data_dir), captions, [])
    write_tsv(load_benchmark(name, spec.format, files, sha, seed, lexicon), out)


def _order_captions(path: Path) -> list[str]:
    """The captions of a Karpathy-split file (for its lexicon; the loader checks the layout)."""
    items = json.loads(Path(path).read_text(encoding="utf-8"))
    captions = [item.get("caption", []) for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    return [c for cs in captions for c in (cs if isinstance(cs, list) else [cs]) if isinstance(c, str)]


def score_open_clip(
    items_path: Path,
    image_root: Path,
    spec: OpenClipModel,
    out: Path,
    images_path: Path | None = None,
    state_path: Path | None = None,
) -> None:
    """scored.tsv of an open_clip model (fine-tuned: `state_path`, a faithful model.pt) on a
    benchmark's items (image ids are paths under `image_root`; ARO's VG sets scored on the item's
    region) or, with `images_path`, on the test images' hard negatives."""
    from taxvlm.compositional.evaluation import open_clip_scorer
    from taxvlm.devices import resolve_device

    dev = resolve_device("auto")
    model, tokenizer, preprocess = load_open_clip(spec, out.parent / f".{out.name}.open_clip_config", dev)
    if state_path is not None:
        model.load_state_dict(load_pt(state_path, map_location=dev)["state_dict"])
    if images_path is not None:
        items = test_items(items_path, images_path)
        table = read_table(images_path, ["image_id", "path"])
        paths = {i: str(image_root / p) for i, p in zip(table["image_id"], table["path"])}
        crops: dict[str, Any] = {}
        key = "image_id"
    else:
        items, paths, crops = image_views(valid_items(read_tsv(items_path)), image_root)
        key = "view"
    paths = {i: p for i, p in paths.items() if i in set(items[key])}
    write_tsv(score_items(items, open_clip_scorer(model.eval(), tokenizer, preprocess, paths, crops=crops), key), out)


def _score_with_run(items: pd.DataFrame, image: str, run: TrainedRun, batch_size: int) -> pd.DataFrame:
    """`items` scored by one trained run (caption log-likelihood after the image minus without it)."""
    from taxvlm.compositional.evaluation import vlm_scorer
    from taxvlm.devices import resolve_device
    from taxvlm.evaluation.runs import load_run

    loaded = load_run(run, resolve_device("auto"))
    scorer = vlm_scorer(loaded.model, loaded.tokenizer, loaded.projector, loaded.feats, loaded.index, batch_size)
    return score_items(items, scorer, image)


def score_vlm(negatives_path: Path, images_path: Path, run: TrainedRun, batch_size: int, out: Path) -> None:
    """scored.tsv of one trained run of the grid on the test images' hard negatives (`_score_with_run`)."""
    items = test_items(negatives_path, images_path)
    write_tsv(_score_with_run(items, "image_id", run, batch_size), out)


def benchmark_images(items_path: Path, image_root: Path, out: Path, crops_dir: Path) -> None:
    """images.tsv of a benchmark's scored views for this pipeline's encoder (`image_id` = the view,
    `path`): a region that ARO's VG sets score is cropped once into `crops_dir`, so the feature job
    (taxvlm.features) encodes it as it is."""
    from taxvlm.compositional.evaluation import open_image

    _, paths, crops = image_views(valid_items(read_tsv(items_path)), image_root)
    views = sorted(paths)
    with atomic_dir(crops_dir) as tmp:
        for n, view in enumerate(v for v in views if v in crops):
            open_image(paths[view], crops[view]).save(tmp / f"{n}.png")
            paths[view] = str(crops_dir / f"{n}.png")
    write_tsv(pd.DataFrame({"image_id": views, "path": [paths[v] for v in views]}), out)


def score_vlm_benchmark(items_path: Path, run: TrainedRun, batch_size: int, out: Path) -> None:
    """A benchmark's items scored by one trained run, on the encoder's features of its views
    (`benchmark_images`; `run.features` are those views' features)."""
    items, _, _ = image_views(valid_items(read_tsv(items_path)), Path("."))
    write_tsv(_score_with_run(items, "view", run, batch_size), out)


def collect(scored: dict[str, Path], out_accuracy: Path) -> None:
    """accuracy.tsv over models (`model` = the key: kind/name/...)."""
    frames = [accuracy_by_type(read_tsv(path), model) for model, path in sorted(scored.items())]
    write_tsv(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ACCURACY_COLUMNS), out_accuracy)


def collect_thetas(curves: dict[str, Path], out: Path) -> None:
    """thetas.tsv: θ_k per step of every contrastive model (`model`, `step`, `epoch`, `type`, `theta`)."""
    frames = []
    for model, path in sorted(curves.items()):
        curve = read_tsv(path)
        cols = [c for c in curve.columns if c.startswith("theta_")]
        long = curve.melt(id_vars=["step", "epoch"], value_vars=cols, var_name="type", value_name="theta")
        frames.append(long.assign(model=model, type=long["type"].str.removeprefix("theta_")))
    columns = ["model", "step", "epoch", "type", "theta"]
    write_tsv(pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns), out)
