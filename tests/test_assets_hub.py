"""Hub models fetched once into a local folder (taxvlm.assets.hub), against a stand-in hub: the machine
has no route to huggingface.co, so `huggingface_hub`'s calls are replaced by a repository on disk."""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from spec_builders import frozen_lm
from taxvlm.assets import hub
from taxvlm.models.lms import load_lm, loaded_lm

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """One repository (`repo`, files of `folder`) at one commit; records what was asked of it."""

    def __init__(self, repo: str, folder: Path) -> None:
        self.repo, self.folder, self.calls = repo, folder, []

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import huggingface_hub

        fake = self

        class Api:
            def model_info(self, repo: str, revision: str | None = None, token: str | None = None) -> SimpleNamespace:
                fake.calls.append(("model_info", repo, revision))
                return SimpleNamespace(sha=COMMIT)

            def list_repo_files(self, repo: str, revision: str | None = None, token: str | None = None) -> list[str]:
                assert revision == COMMIT
                return fake.files()

        def snapshot_download(repo: str, revision: str, local_dir: Path, allow_patterns: list[str], token: str | None):
            fake.calls.append(("snapshot_download", repo, revision))
            assert (repo, revision) == (fake.repo, COMMIT), "files must come from the resolved commit"
            for name in fake.files():
                if any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                    (Path(local_dir) / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(fake.folder / name, Path(local_dir) / name)
            (Path(local_dir) / ".cache/huggingface").mkdir(parents=True)  # what local_dir downloads leave
            return str(local_dir)

        monkeypatch.setattr(huggingface_hub, "HfApi", Api)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)


def test_a_fetched_lm_loads_from_its_folder_and_names_its_commit(
    tiny_lm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_lm_dir, repo)
    (repo / "pytorch_model.bin").write_bytes(b"a second format the loader does not need")
    fake = FakeHub("org/tiny", repo)
    fake.install(monkeypatch)
    out = tmp_path / "resources/hub/lms/tiny"

    hub.prefetch_model({"source": "hf", "id": "org/tiny", "revision": "main"}, out)

    record = json.loads((out / "hub.json").read_text())
    assert {k: record[k] for k in ("id", "revision", "commit")} == {"id": "org/tiny", "revision": "main", "commit": COMMIT}
    assert fake.calls[0] == ("model_info", "org/tiny", "main")  # the branch resolved once, first
    assert not (out / "pytorch_model.bin").exists() and not (out / ".cache").exists()
    assert sorted(record["files"]) == sorted(p.name for p in out.iterdir() if p.name != "hub.json")
    model, _ = load_lm(frozen_lm(out))
    assert loaded_lm(model, frozen_lm(out)) == {"weights_dir": str(out), "id": "org/tiny", "revision": "main",
                                                "commit": COMMIT}  # fmt: skip


def test_a_repository_without_safetensors_gives_its_bin_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("config.json", "pytorch_model.bin", "README.md"):
        (repo / name).write_text(name)
    FakeHub("org/old", repo).install(monkeypatch)
    hub.prefetch_model({"source": "hf", "id": "org/old"}, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "hub.json", "pytorch_model.bin"]


def test_a_failed_fetch_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "model.safetensors").write_text("x")
    FakeHub("org/m", repo).install(monkeypatch)

    def broken(*args: object, **kwargs: object) -> None:
        (Path(kwargs["local_dir"]) / "model.safetensors").write_text("half")
        raise OSError("connection reset")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", broken)
    with pytest.raises(OSError, match="connection reset"):
        hub.prefetch_model({"source": "hf", "id": "org/m"}, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [repo]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"source": "hf"}, "needs `id`"),
        ({"source": "timm", "name": "resnet18", "revision": "abc"}, "not supported for timm"),
        ({"source": "open_clip", "name": "ViT-B-32", "id": "no-such-tag"}, "not one of its open_clip pretrained tags"),
        ({"source": "gguf", "name": "x"}, "cannot be fetched"),
    ],
)
def test_unfetchable_specs_are_named(tmp_path: Path, spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hub.prefetch_model(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()
