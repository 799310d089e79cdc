"""Grading: nbgrader underneath, honest grades on top.

pipeline.py       generate, autograde (parallel, resumable), feedback, export, validate
preprocessors.py  the nbgrader preprocessors that decide grades in the grader process
kernel.py         the sandboxed kernel that runs student code (kept import-light: it starts per student)
worker.py         one student's grading in its own process
"""
