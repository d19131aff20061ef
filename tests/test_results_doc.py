"""docs/default-results.md cannot go stale: it records the resolved config it came from."""

from __future__ import annotations

import re
from pathlib import Path

from spec_builders import preset, validated

from taxvlm.provenance import FINGERPRINT_LINE, config_fingerprint

REPO = Path(__file__).resolve().parents[1]


def test_default_results_come_from_the_committed_default_config():
    document = (REPO / "docs/default-results.md").read_text()
    found = re.search(re.escape(FINGERPRINT_LINE) + r"`([0-9a-f]{64})`", document)
    assert found, f"docs/default-results.md has no '{FINGERPRINT_LINE}' line: regenerate it with `make run && make docs`"
    config = validated(preset("config/config.yaml"))
    assert found.group(1) == config_fingerprint(config), (
        "docs/default-results.md came from another config than the committed config/config.yaml: "
        "regenerate it with `make run && make docs`"
    )


def test_the_fingerprint_ignores_key_order_and_written_defaults():
    config = preset("config/config.yaml")
    reordered = dict(reversed(list(config.items())))
    assert config_fingerprint(validated(config)) == config_fingerprint(validated(reordered))
    explicit = preset("config/config.yaml") | {"evaluation": {"batch_size": 64}}
    assert config_fingerprint(validated(explicit)) == config_fingerprint(validated(config))


def test_the_document_opens_with_its_provenance_and_the_answer(tmp_path):
    from taxvlm.io import write_json, write_text
    from taxvlm.analysis.results_doc import results_document

    analysis = tmp_path / "analysis"
    write_json({"config_sha256": "a" * 64, "code_version": "abc123"}, analysis / "provenance.json")
    write_text("The answer sentence.\n", analysis / "answer.txt")
    write_text("| answer |\n", analysis / "tables/answer.md")
    write_text("| headline |\n", analysis / "tables/headline.md")
    write_text("_not in this grid_\n", analysis / "tables/dynamics.md")
    document = results_document(analysis, "fig.png")
    order = [document.index(part) for part in (FINGERPRINT_LINE, "abc123", "The answer sentence.", "fig.png", "| answer |", "| headline |")]
    assert order == sorted(order)
    assert "Readouts along training" not in document  # a table not in this grid is left out
