"""Check specifications, one module per topic (``checks/tokenization.py`` for assignment 01).

Each module exposes ``SPECS: list[Spec]``. A spec names its reference by string and builds its
cases without importing the reference, because the grading kernel runs with the answer key
unavailable. See :mod:`llmcourse.checker` for how specs are used.
"""
