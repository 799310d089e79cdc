"""Grade one submission in its own process: ``python -m llmcourse.grading.worker '<json>'``.

The parent (a thread of the local pool, or a Dask task) gives it a hard deadline and kills its whole
process group past it; the student's kernel dies with it (PR_SET_PDEATHSIG). The result is the last
line of stdout, as JSON.
"""
from __future__ import annotations

import dataclasses
import json
import resource
import sys
import warnings
from pathlib import Path

from .pipeline import Course, GradingOptions, grade_one


def main() -> int:
    job = json.loads(sys.argv[1])
    options = GradingOptions(**job["options"])
    # The grader itself gets a memory cap too: a flood that slips past the kernel's limits must
    # crash this worker (reported, batch goes on), not the machine.
    cap = (options.memory_mb * 2 + 2048) << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    warnings.simplefilter("ignore")
    course = Course(Path(job["root"]), Path(job["repo"]), job["db_url"])
    result = grade_one(course, job["assignment"], job["student"], options)
    print(json.dumps(dataclasses.asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
