"""Benchmark loaders on fixture files in each benchmark's own format, served over local HTTP."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from taxvlm.assets.fetch import fetch_asset
from taxvlm.compositional import benchmarks as bm
from taxvlm.data.errors import DataError
from taxvlm.io import sha256_file

DATA = Path(__file__).parent / "data" / "compositional"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DATA))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _download(server: str, rel: str, tmp_path: Path) -> tuple[Path, str]:
    sha = sha256_file(DATA / rel)
    out = tmp_path / rel.replace("/", "_")
    fetch_asset({"source": "url", "url": f"{server}/{rel}", "sha256": sha}, out)
    return out, sha


def _load(server: str, tmp_path: Path, name: str, fmt: str, files: dict[str, str]):
    fetched = {key: _download(server, rel, tmp_path) for key, rel in files.items()}
    paths = {k: p for k, (p, _) in fetched.items()}
    return bm.load_benchmark(name, fmt, paths, {k: s for k, (_, s) in fetched.items()}, seed=0)


def test_sugarcrepe(server: str, tmp_path: Path) -> None:
    files = {"swap_att": "sugarcrepe/swap_att.json", "replace_obj": "sugarcrepe/replace_obj.json"}
    items = _load(server, tmp_path, "sugarcrepe", "sugarcrepe", files)
    assert list(items.columns) == bm.COLUMNS and len(items) == 3
    row = items[items["type"] == "swap_att"].iloc[0]
    assert row["image_id"] == "000000565045.jpg" and row["negative"].startswith("White bathroom")


def test_aro_relation_attribution_and_order(server: str, tmp_path: Path) -> None:
    rel = _load(server, tmp_path, "aro", "aro_relation", {"vg": "aro/visual_genome_relation.json"})
    assert list(rel["relation_name"]) == ["on", "behind"] and set(rel["type"]) == {"vg_relation"}
    assert rel[list(bm.CROP_COLUMNS)].iloc[0].tolist() == [10, 20, 30, 40]  # ARO scores the item's region
    att = _load(server, tmp_path, "aro", "aro_attribution", {"vg": "aro/visual_genome_attribution.json"})
    assert att.iloc[0]["negative"] == "the wooden cup and the white table"
    order = _load(server, tmp_path, "coco_order", "aro_order", {"coco": "aro/coco_karpathy_test.json"})
    assert len(order) == 2 * len(bm.ORDER_PERTURBATIONS) and set(order["type"]) == {"order"}
    assert order["caption"].iloc[0] == "a man with a red helmet on a small moped on a dirt road"  # ARO's pre_caption
    for row in order.itertuples():
        assert sorted(row.negative.split()) == sorted(row.caption.split())


def test_valse_and_vlchecklist(server: str, tmp_path: Path) -> None:
    valse = _load(server, tmp_path, "valse", "valse", {"existence": "valse/existence.json"})
    assert valse.iloc[0][["image_id", "negative"]].tolist() == ["v7w_2371044.jpg", "There are people in the picture."]
    vl = _load(server, tmp_path, "vlc", "vlchecklist", {"Attribute/vg/color": "vlchecklist/color.json"})
    assert vl["negative"].tolist() == ["teal knob", "green face"] and set(vl["type"]) == {"Attribute/vg/color"}


def test_wrong_checksum_names_the_file() -> None:
    path = DATA / "valse" / "existence.json"
    with pytest.raises(DataError, match=r"existence\.json: sha256 .* does not match"):
        bm.load_benchmark("valse", "valse", {"existence": path}, {"existence": "0" * 64})


def test_missing_column_names_file_and_column() -> None:
    path = DATA / "valse" / "relations_missing_foil.json"
    with pytest.raises(DataError, match=r"relations_missing_foil\.json: item .* has no column 'foil'"):
        bm.load_benchmark("valse", "valse", {"relations": path}, {})


def test_order_perturbations_are_seeded_permutations() -> None:
    caption = "a man riding a horse on the beach at sunset"
    for name in bm.ORDER_PERTURBATIONS:
        once = bm.perturb(caption, name, 1)
        assert once == bm.perturb(caption, name, 1) and sorted(once.split()) == sorted(caption.split())
    with pytest.raises(ValueError, match="perturbation"):
        bm.perturb(caption, "nope", 0)


def test_tagged_order_perturbations_move_only_nouns_and_adjectives_or_only_the_rest() -> None:
    from taxvlm.compositional.negatives import Lexicon

    lexicon = Lexicon({"man": "NOUN", "red": "ADJ", "horse": "NOUN", "beach": "NOUN", "riding": "VERB"})
    caption = "a man riding a red horse on the beach"
    tagged = {"man", "red", "horse", "beach"}
    nouns = bm.perturb(caption, "shuffle_nouns_and_adj", 3, lexicon).split()
    rest = bm.perturb(caption, "shuffle_allbut_nouns_and_adj", 3, lexicon).split()
    words = caption.split()
    assert sorted(nouns) == sorted(words) and sorted(rest) == sorted(words)
    assert [w for w in nouns if w not in tagged] == [w for w in words if w not in tagged]  # the rest stay put
    assert [w for w in rest if w in tagged] == [w for w in words if w in tagged]
    assert all((a in tagged) == (b in tagged) for a, b in zip(nouns, words))  # same slots
    with pytest.raises(ValueError, match="needs a lexicon"):
        bm.perturb(caption, "shuffle_nouns_and_adj", 3)
    assert [w for w in nouns if w in {"red"}] == ["red"] and nouns.index("red") == words.index("red")  # adj among adj


def test_aro_order_is_one_five_way_ranking_per_caption() -> None:
    """ARO scores a caption against its four perturbations at once (np.argmax over [caption, *perturbations]):
    one decision per caption, lost to any perturbation scoring higher, a tie going to the caption."""
    from taxvlm.compositional.evaluation import accuracy_by_type, score_items
    from taxvlm.compositional.negatives import Lexicon

    lexicon = Lexicon({"man": "NOUN", "red": "ADJ", "helmet": "NOUN", "moped": "NOUN", "road": "NOUN"})
    order = bm.load_benchmark("o", "aro_order", {"coco": DATA / "aro/coco_karpathy_test.json"}, {}, 0, lexicon)
    assert set(order["perturbation"]) == set(bm.ORDER_PERTURBATIONS + bm.TAGGED_PERTURBATIONS)
    assert order.groupby("item").size().tolist() == [4, 4] and set(order["type"]) == {"order"}
    first, second = sorted(order["item"].unique())
    beaten = order[(order["item"] == first) & (order["perturbation"] == "shuffle_trigrams")]["negative"].item()
    tied = order[(order["item"] == second) & (order["perturbation"] == "shuffle_within_trigrams")]["negative"].item()
    captions = set(order["caption"])

    def score(ids: list[str], texts: list[str]) -> np.ndarray:
        return np.array([2.0 if t == beaten else 1.0 if t in captions or t == tied else 0.0 for t in texts])

    scored = score_items(order, score)
    assert scored.groupby("item")["correct"].first().to_dict() == {first: False, second: True}
    assert scored["pair_correct"].sum() == 7  # as separate pairs, 7 of 8 would count
    acc = accuracy_by_type(scored.astype(str), "m")
    assert acc[["type", "n", "correct"]].values.tolist() == [["order", 2, 1]]


def test_a_download_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    page = tmp_path / "visual_genome_relation.json"
    page.write_text("<html>Google Drive can't scan this file for viruses</html>", encoding="utf-8")
    with pytest.raises(DataError, match=r"visual_genome_relation\.json: not a JSON file"):
        bm.load_benchmark("aro", "aro_relation", {"vg_relation": page}, {})


def test_benchmark_items_from_its_typed_section(tmp_path: Path) -> None:
    """The `compositional_benchmark_items` job: its config entry typed (`Benchmark`), each file checked
    against the entry's sha256, items.tsv written."""
    from taxvlm.compositional.stage import benchmark_items
    from taxvlm.io import read_tsv
    from taxvlm.settings.compositional import Benchmark

    path = DATA / "sugarcrepe" / "swap_att.json"
    entry = {"url": "http://unused", "sha256": sha256_file(path)}
    spec = Benchmark.from_config({"format": "sugarcrepe", "files": {"swap_att": entry}, "image_root": "coco"})
    benchmark_items("sugarcrepe", spec, {"swap_att": path}, 0, tmp_path / "items.tsv")
    items = read_tsv(tmp_path / "items.tsv")
    assert len(items) > 0 and set(items["type"]) == {"swap_att"}
