"""Write it yourself, at run time: a record of what a graded function really ran.

Reading an answer's source (:mod:`llmcourse.checks.forbidden`) cannot fold a name built at run time:
``getattr(torch, codecs.decode("fbsgznk", "rot13"))`` is ``torch.softmax``, and so is, one step removed,
``torch.distributions.Categorical(logits=x).probs``. Whatever the spelling, the call ends up in the same
places, and :class:`Recorder` watches them while :func:`~llmcourse.checks.checker.check` runs the cases:

* **ops**: the ATen operators dispatched, seen by a ``TorchDispatchMode`` (``"aten._softmax"``). Composite
  operators have already been decomposed there: ``torch.softmax``, ``F.softmax``, ``Tensor.softmax``,
  ``softmin`` and ``Categorical(...).probs`` all arrive as ``aten._softmax``; ``F.instance_norm`` as
  ``aten.native_batch_norm``. :mod:`llmcourse.checks.forbidden` holds the measured table from a
  forbidden Python path to the operators that betray it.
* **calls**: the Python functions and builtins called (``sys.setprofile``, new threads included), named
  ``module.qualname`` (``"torch.optim.adamw.AdamW.step"``, ``"torch._VariableFunctionsClass.softmax"``,
  ``"torch.Tensor.softmax"``). They catch what ATen cannot tell from honest code: ``torch.optim.AdamW``'s
  for-loop update dispatches the very ``mul_``/``addcdiv_`` a student writes, and a library like
  ``tiktoken`` dispatches nothing at all.

The record goes out with the check's outputs, and the trusted grader decides from it. It is evidence
from an untrusted kernel, like the outputs themselves: a kernel can forge it (docs/grading-security.md
says what that can and cannot do), so the grader keeps reading the source as well, and a record that
is missing, malformed, emptied or marked tampered (the recorder found itself switched off) fails the
part.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

MAX_OPS = 2_000  # distinct ATen operators: a GPT forward and backward dispatches about 60
MAX_CALLS = 20_000  # distinct Python functions: a whole training run calls about 1,500
CANARY = "aten.empty"  # dispatched by the recorder itself once it is on: an honest record is never empty
CANARY_CALL = "llmcourse.checks.dispatch._canary"  # called by the recorder itself once the profile is on


def _canary() -> None:
    """Called once the profile is on, so that a record of calls is never honestly empty (:data:`CANARY_CALL`)."""


def call_name(fn: Any) -> str:
    """``module.qualname`` of a function, a class or a builtin, the same in a kernel and in the grader:
    ``"torch._VariableFunctionsClass.softmax"`` for ``torch.softmax``, ``"torch.Tensor.softmax"`` for a
    tensor's method (bound to any tensor type) and for ``torch.Tensor.softmax`` itself."""
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", "?")
    if owner is not None and not isinstance(owner, types.ModuleType) and not isinstance(owner, type):
        owner = type(owner)  # a method bound to an object: named by its type
    elif owner is None:
        owner = getattr(fn, "__objclass__", None)  # torch.Tensor.softmax: an unbound method descriptor
    if isinstance(owner, type):
        if any(c.__name__ == "TensorBase" and c.__module__ == "torch._C" for c in owner.__mro__):
            return f"torch.Tensor.{name}"
        return f"{owner.__module__}.{owner.__qualname__}.{name}"
    return f"{getattr(fn, '__module__', None)}.{getattr(fn, '__qualname__', name)}"


class Recorder:
    """``with Recorder() as r: ...`` records ``r.ops`` and ``r.calls`` (see the module docstring);
    :meth:`record` is what goes into a check's record. ATen operators are recorded only when torch is
    already imported: a text unit's kernel never pays torch's start-up for it."""

    def __init__(self) -> None:
        self.ops: set[str] = set()
        self.calls: set[str] = set()
        self.intact = True
        self._codes: set[types.CodeType] = set()
        self._builtins: dict[Any, str] = {}
        self._mode = None

    # ----- Python calls

    def _profile(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if code not in self._codes:  # each function is named once: the profile runs on every call
                self._codes.add(code)
                self.calls.add(f"{frame.f_globals.get('__name__')}.{code.co_qualname}")
        elif event == "c_call":
            owner = getattr(arg, "__self__", None)
            key = (type(owner), arg.__name__) if owner is not None else arg
            try:
                name = self._builtins.get(key)
            except TypeError:  # an unhashable callable
                name = None
            if name is None:
                name = call_name(arg)
                try:
                    self._builtins[key] = name
                except TypeError:
                    pass
            self.calls.add(name)

    # ----- the context

    def __enter__(self) -> Recorder:
        torch = sys.modules.get("torch")
        if torch is not None:
            self._mode = _aten_mode(self.ops)
            self._mode.__enter__()
            torch.empty(0)  # the canary (CANARY)
        self._previous = sys.getprofile(), threading.getprofile()
        sys.setprofile(self._profile)
        threading.setprofile(self._profile)  # a thread the answer starts is profiled too
        _canary()
        return self

    def __exit__(self, *exc: Any) -> None:
        mine = sys.getprofile()
        sys.setprofile(self._previous[0])
        threading.setprofile(self._previous[1])
        self.intact = getattr(mine, "__self__", None) is self
        if self._mode is not None:
            from torch.utils._python_dispatch import _get_current_dispatch_mode

            if _get_current_dispatch_mode() is not self._mode:
                self.intact = False  # the answer popped the mode, or left one of its own on top
            try:
                self._mode.__exit__(*exc)
            except Exception:  # noqa: BLE001 - the mode stack was rearranged: the record says so
                self.intact = False

    def record(self) -> dict[str, Any]:
        """``{"ops": [...], "calls": [...], "intact": bool}`` for the check's record. A list over its cap
        is cut (and then is not intact: an answer cannot push a call out of sight by calling many)."""
        ops, calls = sorted(self.ops), sorted(self.calls)
        intact = self.intact and len(ops) <= MAX_OPS and len(calls) <= MAX_CALLS
        return {"ops": ops[:MAX_OPS] if self._mode is not None else None, "calls": calls[:MAX_CALLS], "intact": intact}


def _aten_mode(ops: set[str]):
    """A TorchDispatchMode that adds each operator's name (``"aten._softmax"``) to ``ops``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _RecordOps(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            packet = func.overloadpacket
            ops.add(f"{packet._qualified_op_name.split('::')[0]}.{packet.__name__}")
            return func(*args, **(kwargs or {}))

    return _RecordOps()
