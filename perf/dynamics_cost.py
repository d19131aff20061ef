"""Projected GPU cost of evaluation along training (`training.eval_every`) for the paper grid.

Reads each LM's measured scoring rate (questions/s of our scorer) from the table "The paper's LMs on
this machine" in `perf/results-h200.md` (written by `perf/run.py --device cuda --paper-lms`)
and prints, for `config/things.yaml`'s runs, the extra evaluation passes that keeping a point every
`--every` epochs adds (each kept point before the last is one more pass over the test questions) and
their GPU hours. Run: `python perf/dynamics_cost.py [--every 1]`.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from projection import things_runs, things_workload  # noqa: E402
from workload import EPOCHS, PAPER_LMS, ROOT, SAME_SHAPE  # noqa: E402

RESULTS = ROOT / "perf/results-h200.md"


def measured_qps(text: str) -> dict[str, float]:
    """LM display name → our scorer's questions/s, from the paper-LM table's `generate / ours` column."""
    rates = {}
    for name, *_ in PAPER_LMS.values():
        row = re.search(rf"^\| {re.escape(name)} \|.*$", text, flags=re.MULTILINE)
        if row:
            cells = [c.strip() for c in row.group(0).strip("|").split("|")]
            rates[name] = float(cells[4].split("/")[1])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=1.0, help="epochs between kept points")
    every = parser.parse_args().every
    qps = measured_qps(RESULTS.read_text())
    _, test_imgs, q_per_image = things_workload()
    questions = test_imgs * q_per_image
    extra_passes = len([k for k in range(1, int(EPOCHS / every) + 1) if k * every < EPOCHS])
    runs = collections.Counter(SAME_SHAPE.get(r.lm, r.lm) for r in things_runs())
    total_h, total_passes = 0.0, 0
    print(f"Keeping a point every {every:g} epoch(s) of {EPOCHS}: {extra_passes} extra evaluation passes per run, "
          f"{questions:,.0f} test questions each; rates from {RESULTS.relative_to(ROOT)} (H200).\n")
    print("| LM | runs | extra passes | s per pass | extra GPU hours |\n|---|---|---|---|---|")
    for lm, n in sorted(runs.items()):
        name = PAPER_LMS[lm][0]
        seconds = questions / qps[name]
        hours = n * extra_passes * seconds / 3600
        total_h, total_passes = total_h + hours, total_passes + n * extra_passes
        print(f"| {name} | {n} | {n * extra_passes} | {seconds:.1f} | {hours:.2f} |")
    print(f"| **all** | {sum(runs.values())} | {total_passes} | | **{total_h:.2f}** |")


if __name__ == "__main__":
    main()
