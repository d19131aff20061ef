"""io: damaged results are named with their fix, a full disk is named, killed writers leave nothing."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pandas as pd
import pytest

from taxvlm.io import CorruptResultError, DiskFullError, atomic_path, load_pt, read_json, read_tsv, save_pt, write_tsv


def test_a_table_cut_mid_line_is_named_with_the_command_that_rebuilds_it(tmp_path: Path) -> None:
    path = tmp_path / "predictions.tsv"
    write_tsv(pd.DataFrame({"a": ["1", "4"], "b": ["2", "5"], "c": ["3", "6"]}), path)
    assert read_tsv(path).shape == (2, 3)
    path.write_bytes(path.read_bytes()[:-3])  # "4\t5" survives: pandas alone would read c = ""
    with pytest.raises(CorruptResultError, match=rf"{path}: truncated table .*`snakemake --forcerun {path}`"):
        read_tsv(path)
    assert read_tsv(path, complete=False)["c"].tolist() == ["3", ""]  # a user's table may lack the newline
    path.write_bytes(b"")
    with pytest.raises(CorruptResultError, match="unreadable table"):
        read_tsv(path)


def test_damaged_torch_and_json_results_are_named(tmp_path: Path) -> None:
    import torch

    pt = tmp_path / "projector.pt"
    torch.save({"w": torch.ones(3)}, pt)
    assert torch.equal(load_pt(pt)["w"], torch.ones(3))
    pt.write_bytes(os.urandom(256))
    with pytest.raises(CorruptResultError, match=rf"{pt}: unreadable torch file .*--forcerun {pt}"):
        load_pt(pt)
    js = tmp_path / "meta.json"
    js.write_text('{"layers": ')
    with pytest.raises(CorruptResultError, match="unreadable JSON"):
        read_json(js)


def test_a_full_disk_is_named_with_the_target_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "table.tsv"
    with pytest.raises(DiskFullError, match=rf"No space left on device while writing {target}") as err:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_temporaries_of_a_killed_writer_are_cleared_by_the_next_write(tmp_path: Path) -> None:
    """SIGKILL runs no `finally`: the killed writer's temporary stays until its target is written again."""
    stale_file = tmp_path / ".table.tsv.abcd1234.tmp"
    stale_file.write_text("half a table")
    stale_dir = tmp_path / ".table.tsv.wxyz_987.tmp"
    stale_dir.mkdir()
    other = tmp_path / ".other.tsv.abcd1234.tmp"  # another target's: not this writer's to remove
    other.write_text("x")
    write_tsv(pd.DataFrame({"a": ["1"]}), tmp_path / "table.tsv")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tsv.abcd1234.tmp", "table.tsv"]


def test_save_pt_writes_the_same_bytes_every_time(tmp_path: Path) -> None:
    """Saved to a path, torch names the archive's inner folder after the (random) temporary file;
    `save_pt` gives every run of a result the same bytes."""
    import torch

    state = {"w": torch.arange(6.0).reshape(2, 3), "meta": {"seed": 7}}
    save_pt(state, tmp_path / "a.pt")
    save_pt(state, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(load_pt(tmp_path / "a.pt")["w"], state["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]  # no temporary left
