"""Checks: the one function every test cell calls, and the cases each graded function is checked on.

    from llmcourse.checks import check
    check("attention.softmax", softmax)

``checker.py`` is the machinery (cases, specs, encoding, comparison, reports); each topic has a spec
module here (``checks/tokenization.py`` for assignment 01) that exposes ``SPECS: list[Spec]``. A spec
names its reference by string and builds its cases without importing the reference, because the
grading kernel runs with the answer key unavailable.
"""

from .checker import CheckFailed, check

__all__ = ["check", "CheckFailed"]
