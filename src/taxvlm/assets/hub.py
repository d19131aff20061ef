"""Hub models fetched once, into a local folder, before any job loads them.

A model the config names by hub id (an LM or encoder without local `weights`) is fetched by the local
rule `prefetch_model` into `resources/hub/<family>/<name>/`, and every job loads that folder exactly
as it loads a converted model. So compute nodes need no internet, up to hundreds of GPU jobs do not
race into one hub cache, and a gated model's token is needed once, on the machine that fetches.

The folder holds the files the loader reads, at one commit: the `revision` when the config pins one,
else the commit the hub's default branch pointed to when fetched (resolved first, so a branch that
moves mid-download cannot mix two commits). `hub.json` records the id, the requested revision and
that commit; the loaders copy it into what they report as loaded (`taxvlm.models.origin`).

By source:
- `hf` (transformers LMs and image encoders): the repository's configs, tokenizer files and
  safetensors weights (`.bin` only where the commit has no safetensors), via `snapshot_download`.
- `open_clip`: the tag's checkpoint as open_clip resolves it (`download_pretrained`; at `revision`
  when pinned, which needs a tag that lives on the hub).
- `timm`: the model's `model.safetensors` from its pretrained config's hub repository (timm models
  cannot be pinned to a revision; the commit fetched is recorded).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taxvlm.io import atomic_dir, write_json
from taxvlm.models.origin import HUB_RECORD

log = logging.getLogger(__name__)

HF_FILES = ["*.json", "*.model", "*.txt", "*.tiktoken", "*.jinja"]  # configs, tokenizers, templates


def prefetch_model(spec: Mapping[str, Any], out_dir: Path) -> None:
    """Fetch the hub model of `spec` (an `encoders` or `lms` entry of the config) into `out_dir`,
    which appears only once complete."""
    source, name = spec.get("source", "hf"), spec.get("name")
    fetch = {"hf": _fetch_hf, "open_clip": _fetch_open_clip, "timm": _fetch_timm}.get(source)
    if fetch is None:
        raise ValueError(f"model {name!r}: source {source!r} cannot be fetched from the hub")
    with atomic_dir(out_dir) as tmp:
        record = fetch(spec, tmp)
        write_json(record, tmp / HUB_RECORD)
    log.info("fetched %s at commit %s into %s", record["id"], record["commit"], out_dir)


def _token() -> str | None:
    return os.environ.get("HF_TOKEN")


def _commit(repo: str, revision: str | None) -> str:
    from huggingface_hub import HfApi

    return HfApi().model_info(repo, revision=revision, token=_token()).sha


def _record(repo: str, spec: Mapping[str, Any], commit: str, files: list[str]) -> dict[str, Any]:
    return {"id": repo, "revision": spec.get("revision"), "commit": commit, "files": sorted(files)}


def _fetch_hf(spec: Mapping[str, Any], out: Path) -> dict[str, Any]:
    from huggingface_hub import HfApi, snapshot_download

    repo = spec.get("id")
    if not repo:
        raise ValueError(f"model {spec.get('name')!r}: an hf model without local `weights` needs `id`")
    commit = _commit(repo, spec.get("revision"))
    files = HfApi().list_repo_files(repo, revision=commit, token=_token())
    weights = ["*.safetensors"] if any(f.endswith(".safetensors") for f in files) else ["*.bin"]
    snapshot_download(repo, revision=commit, local_dir=out, allow_patterns=HF_FILES + weights, token=_token())
    shutil.rmtree(out / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
    return _record(repo, spec, commit, [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()])


def _fetch_open_clip(spec: Mapping[str, Any], out: Path) -> dict[str, Any]:
    import open_clip
    from open_clip.pretrained import download_pretrained, download_pretrained_from_hf

    name, tag, revision = spec["name"], spec.get("id"), spec.get("revision")
    config = open_clip.get_pretrained_cfg(name, tag) if tag else {}
    if not config:
        raise ValueError(f"open_clip encoder {name!r}: {tag!r} is not one of its open_clip pretrained tags")
    cache = out / ".cache"
    if config.get("hf_hub"):
        repo, filename = os.path.split(config["hf_hub"])  # as open_clip splits it: `org/repo/` or `org/repo/file`
        commit = _commit(repo, revision)
        path = download_pretrained_from_hf(repo, filename=filename or None, revision=commit, cache_dir=str(cache))
    elif revision:
        raise ValueError(f"open_clip encoder {name!r}: tag {tag!r} is not on the hub; `revision` cannot pin it")
    else:
        repo, commit = config["url"], ""
        path = download_pretrained(config, cache_dir=str(cache))
    checkpoint = out / Path(path).name
    shutil.copyfile(path, checkpoint)  # the cache's entry may be a link into its blobs
    shutil.rmtree(cache)
    return _record(repo, spec, commit, [checkpoint.name])


def _fetch_timm(spec: Mapping[str, Any], out: Path) -> dict[str, Any]:
    import timm
    from huggingface_hub import hf_hub_download

    name = spec["name"]
    if spec.get("revision"):
        raise ValueError(f"timm encoder {name!r}: `revision` is not supported for timm; pin it with local `weights`")
    repo = getattr(timm.models.get_pretrained_cfg(name), "hf_hub_id", None)
    if not repo:
        raise ValueError(f"timm encoder {name!r} has no hub repository in timm; give it local `weights`")
    commit = _commit(repo, None)
    hf_hub_download(repo, "model.safetensors", revision=commit, local_dir=out, token=_token())
    shutil.rmtree(out / ".cache", ignore_errors=True)
    return _record(repo, spec, commit, ["model.safetensors"])
