"""Grading: nbgrader underneath, honest grades on top.

pipeline.py       generate, autograde (parallel, resumable), feedback, export, validate
preprocessors.py  the nbgrader preprocessors that decide grades in the grader process
kernel.py         the sandboxed kernel that runs student code (kept import-light: it starts per student)
worker.py         one student's grading in its own process
"""

import sys as _sys

# jsonschema (imported by nbformat) loads rfc3987_syntax when it is installed, which builds a parser
# grammar at import time: ~2 s per grading process, for a URI format check notebooks never use.
# Marking it absent makes jsonschema skip that one format checker.
_sys.modules.setdefault("rfc3987_syntax", None)
