"""Grading worker: ``python -m llmcourse.grading.worker --serve`` reads one JSON job per line on stdin
and answers each with one JSON result line on stdout; ``python -m llmcourse.grading.worker JOB`` grades
one job and exits.

The parent (a thread of the local pool, or a Dask task) gives every job a hard deadline and kills this
process group past it; the student's kernel dies with it (PR_SET_PDEATHSIG). Staying alive between
jobs saves the imports (seconds) for every student after the first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import warnings
from pathlib import Path

from .pipeline import Course, GradingOptions, grade_one


def grade(job: dict) -> dict:
    course = Course(Path(job["root"]), Path(job["repo"]), job["db_url"])
    return dataclasses.asdict(grade_one(course, job["assignment"], job["student"], GradingOptions(**job["options"])))


def main() -> int:
    # The grader itself is capped too: a flood that slips past the kernel's limits must crash this
    # worker (reported, batch goes on), not the machine.
    cap = (2 * GradingOptions().memory_mb + 2048) << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    warnings.simplefilter("ignore")
    # Results travel on the real stdout; anything a library prints goes to stderr (the worker log).
    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    jobs = sys.stdin if sys.argv[1:] == ["--serve"] else [sys.argv[1]]
    for line in jobs:
        if line.strip():
            results.write(json.dumps(grade(json.loads(line))) + "\n")
            results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
