"""Wall time of every notebook against its budget (design.md s.7): solutions <= 90 s, lectures <= 120 s.

Baseline named in the table: the budget itself (ratio = time / budget, must stay below 1).
Run: python bench/bench_notebooks.py [glob ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
BUDGETS = {"solutions": 90.0, "course": 120.0}


def run(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def main(patterns: list[str]) -> int:
    paths = [p for pat in (patterns or ["solutions/*/*.ipynb", "course/*.ipynb"]) for p in sorted(REPO.glob(pat))]
    print(f"{'notebook':<50} {'time (s)':>9} {'budget (s)':>11} {'time/budget':>12}")
    over = 0
    for path in paths:
        budget = BUDGETS[path.relative_to(REPO).parts[0]]
        seconds = run(path)
        over += seconds > budget
        print(f"{str(path.relative_to(REPO)):<50} {seconds:>9.1f} {budget:>11.0f} {seconds / budget:>12.2f}")
    print("all within budget" if not over else f"{over} notebook(s) over budget")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
