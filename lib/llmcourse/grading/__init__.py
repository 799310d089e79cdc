"""Grading: nbgrader underneath, honest grades on top. One module per verb, as nbgrader's apps/:

course.py          the course directory, the repository it grades from, a run's options, the seed
assignment.py      an assignment's manifest (parts, points, checks, answer keys, solution code), parsed once
nbgrader_setup.py  the grading kernelspec, its policies and the nbgrader Config every tool shares
release.py         generate: solutions/ -> nbgrader generate_assignment -> assignments/
collect.py         import an LMS zip export into submitted/
submission.py      one student: precheck, grade through nbgrader, read the scores, record the result
worker.py          the grading worker process and the parent's half of its protocol (one Job per student)
autograde.py       a class in parallel (threads or Dask), resumable, one run at a time
feedback.py        HTML feedback per student, CSV export of the gradebook
validate.py        students' self-check of a notebook
bundle.py          a student distribution: lectures, releases, a wheel without unreleased answer keys
bundle_wheel.py    the student wheel (allow-list, stubs for withheld keys)
bundle_scan.py     the leak scan of a distribution
integrity.py       similarity report (winnowing.py: normalised tokens and fingerprints)
preprocessors.py   the nbgrader preprocessors that decide grades in the grader process
scoring.py         partial credit: a part's visible share (40 %) and hidden share (60 %), as nbgrader records it
policy.py          the course policy cell (autograder/policy.md filled in) that generate writes into every release
kernel.py          the sandboxed kernel that runs student code (kept import-light: it starts per student)
sandbox.py         bubblewrap's command line for a grading kernel (own PID/network namespaces, allow-listed files)

This package's ``__init__`` stays import-light too: the kernel and the workers import it first.
"""

import sys as _sys

# jsonschema (imported by nbformat) loads rfc3987_syntax when it is installed, which builds a parser
# grammar at import time: ~2 s per grading process, for a URI format check notebooks never use.
# Marking it absent makes jsonschema skip that one format checker.
_sys.modules.setdefault("rfc3987_syntax", None)
