"""Checks: the one function every test cell calls, and the cases each graded function is checked on.

    from llmcourse.checks import check
    check("attention.softmax", softmax)

``checker.py`` is the machinery (cases, specs, encoding, comparison, reports); each topic has a spec
module here (``checks/tokenization.py`` for assignment 01) that exposes ``SPECS: list[Spec]``. A spec
names its reference by string and builds its cases without importing the reference, because the
grading kernel runs with the answer key unavailable. Spec modules are written on the kit,
``_kit.py`` (seeds, tensors, masks, parameter layouts, build-and-load, the one-thread guard), and a
graded class is run through an adapter with an explicit signature (``run_layernorm(cls, *, ndim,
bias, eps, weights_seed, x)``), so a failure report shows a call that really happened.
``forbidden.py`` finds the library calls a part asks students to write themselves.

Check names: ``"<topic>.<name>"``. ``<topic>`` is the spec module and the answer-key module
(``checks/attention.py`` grades against ``llmcourse/attention.py``). ``<name>`` is what the student
writes, as the answer key calls it: the function or class name as written (``tokenization.merge``,
``transformer.LayerNorm``), or a class name in snake_case (``attention.multi_head_attention`` for
``MultiHeadAttention``), or the name of the method the part adds (``transformer.generate``, a method
of ``GPT``). ``tests/checks/test_specs.py`` holds every spec to this rule.
"""

from .checker import CheckFailed, check

__all__ = ["check", "CheckFailed"]
