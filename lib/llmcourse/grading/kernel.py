"""The IPython kernel that runs student notebooks while grading.

It differs from a normal ``python3`` kernel in one way that matters: the answer-key modules of the
assignment (``LLMCOURSE_BLOCKED_MODULES``, e.g. ``llmcourse.tokenization``) cannot be imported, so a
submission that wraps the reference earns nothing. ``LLMCOURSE_GRADING=1`` tells
:func:`llmcourse.checker.check` to emit records instead of comparing in the kernel.

Usage (from a kernelspec's argv)::

    python -m llmcourse.grading.kernel -f {connection_file}
"""
from __future__ import annotations

import importlib.abc
import os
import sys


class AnswerKeyBlocker(importlib.abc.MetaPathFinder):
    """Refuses to import the answer-key modules, with a message that says why."""

    def __init__(self, blocked: list[str]):
        self.blocked = [b for b in blocked if b]

    def find_spec(self, fullname, path=None, target=None):
        for b in self.blocked:
            if fullname == b or fullname.startswith(b + "."):
                raise ImportError(
                    f"{fullname} is the reference solution for this assignment and is not available "
                    "while grading; your notebook must implement the graded functions itself")
        return None


def install_blocker(blocked: list[str]) -> None:
    for name in list(sys.modules):
        if any(name == b or name.startswith(b + ".") for b in blocked):
            del sys.modules[name]
    sys.meta_path.insert(0, AnswerKeyBlocker(blocked))


def main() -> None:
    install_blocker(os.environ.get("LLMCOURSE_BLOCKED_MODULES", "").split(","))
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
