"""Write it yourself: find the library calls a part asks students to write, in an answer's source.

Checks compare outputs, so they cannot tell a student's softmax from ``torch.softmax``. A
:class:`~llmcourse.checks.checker.Spec` therefore names the calls its part replaces
(``forbidden=("torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax", ...)``) and
:func:`find_forbidden` looks for them in source code, without running it (pure ``ast``):

1. **Bindings.** Every name the source binds to a dotted path: ``import torch.nn.functional as G``
   (G -> torch.nn.functional), ``from torch import softmax as s`` (s -> torch.softmax),
   ``G = importlib.import_module("torch.nn.functional")``, ``sm = F.softmax``. Names the source does
   not bind fall back to the notebook conventions (``F``, ``nn``, ``torch``) or to the aliases the
   caller passes (:func:`runtime_aliases` reads them from a live kernel's globals).
2. **Resolution.** An expression resolves to the dotted paths it can stand for: attribute chains,
   ``getattr(obj, "name")``, ``obj.__dict__["name"]``, ``vars(obj)["name"]``, ``sys.modules["m"]``,
   ``__import__("m")``, ``importlib.import_module("m")``. A name given as a string is folded when it is
   a constant expression: ``"soft" + "max"``, ``"".join([...])``, f-strings, slices, ``.lower()``,
   a variable assigned such a string.
3. **Findings.** A use is forbidden when its path is a forbidden entry or lies under one
   (``torch.ops.aten._softmax.default`` under ``torch.ops.aten._softmax``). An entry
   ``torch.Tensor.<method>`` also matches ``<anything>.<method>`` whose owner is not a known module
   (``x.softmax(-1)``), except ``self.<method>`` when the source defines that method itself. Strings
   run by ``eval``/``exec``/IPython magics (``%time ...``) are scanned too when they are constants.

Allowed calls stay allowed (``torch.exp``, ``x.max()``): only the listed paths are found. What is
built from data at run time (``getattr(F, input())``, rot13, ``Categorical(logits=x).probs``) cannot be
seen by any static reader: :func:`runtime_uses` judges the record of what the function really ran
(:mod:`llmcourse.checks.dispatch`), from the same ``forbidden`` paths through :data:`ATEN_OPS`.

:func:`forbidden_uses` is the one entry the trusted grader calls: (check name, answer source) ->
findings; :func:`runtime_uses` and :func:`record_problem` judge a check's record of what ran.
:func:`answer_source` and :func:`runtime_aliases` serve ``check()`` in a student's own kernel, which
warns while they work.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import textwrap
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# the notebooks' conventions: a cell's source uses these names without importing them itself
CONVENTIONAL_ALIASES = {
    "torch": "torch",
    "F": "torch.nn.functional",
    "nn": "torch.nn",
    "np": "numpy",
    **{m: m for m in ("importlib", "operator", "sys", "builtins")},
}

TENSOR = "torch.Tensor."
_EXEC_LIKE = {"eval", "exec", "compile", "run_cell"}
_STR_METHODS = {"lower", "upper", "strip", "lstrip", "rstrip", "replace", "capitalize", "title", "swapcase"}


@dataclasses.dataclass(frozen=True)
class Finding:
    """``code`` on ``line`` (1-based, of the source scanned) uses the forbidden ``name``."""

    name: str
    line: int
    code: str

    def __str__(self) -> str:
        return f"line {self.line}: `{self.code}` uses {self.name}"


def find_forbidden(source: str, forbidden: Iterable[str], aliases: Mapping[str, str] | None = None) -> list[Finding]:
    """Every use of a ``forbidden`` dotted path in ``source`` (see the module docstring)."""
    forbidden = tuple(forbidden)
    if not forbidden:
        return []
    tree = _parse(source)
    if tree is None:
        return []  # code that does not parse never ran, so it used nothing
    scanner = _Scanner(source, tree, forbidden, {**CONVENTIONAL_ALIASES, **(aliases or {})})
    return scanner.findings()


def forbidden_uses(check_name: str, source: str, context: str = "") -> list[Finding]:
    """For the trusted grader: the forbidden calls of check ``check_name`` that ``source`` makes.

    ``source`` is the answer's code (its solution cell); ``context`` is the code its names may come
    from (the notebook's other code cells: ``import torch.nn.functional as G`` in a set-up cell).
    Only ``source`` is searched, so a visible test cell that calls ``F.gelu`` to compare is no finding.
    """
    from .checker import get_spec

    return find_forbidden(source, get_spec(check_name).forbidden, bindings(context))


def bindings(source: str) -> dict[str, str]:
    """The names ``source`` binds to one dotted path each (imports, aliases), e.g. {"G": "torch.nn.functional"}."""
    tree = _parse(source)
    if tree is None:
        return {}
    return _Scanner(source, tree, (), CONVENTIONAL_ALIASES)._aliases()


# --------------------------------------------------------------------------- the student's kernel


def answer_source(obj: Any, max_objects: int = 20) -> list[tuple[str, str, int]]:
    """``[(name, source, first line), ...]`` of a graded function or class and of the helpers it calls
    that are defined next to it (same module: the notebook's ``__main__``), so a helper cannot hide a
    call. ``first line`` is where the source starts in its file or notebook cell.

    Classes defined in a notebook have no source file on Python < 3.13; their methods do, and are
    read one by one.
    """
    found: list[tuple[str, str, int]] = []
    seen: set[int] = set()
    todo = [obj]
    home = getattr(obj, "__module__", None)
    while todo and len(found) < max_objects:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        functions = _functions_of(item)
        for piece in [item] if _has_source(item) else functions:
            lines, first = inspect.getsourcelines(piece)
            found.append((piece.__qualname__, textwrap.dedent("".join(lines)), first))
        for fn in functions:
            for name in _names_used(fn.__code__):
                helper = fn.__globals__.get(name)
                if (inspect.isfunction(helper) or inspect.isclass(helper)) and helper.__module__ == home:
                    todo.append(helper)
    return found


def _has_source(obj: Any) -> bool:
    try:
        inspect.getsourcelines(obj)
        return True
    except (OSError, TypeError):
        return False


def runtime_aliases(obj: Any, forbidden: Iterable[str]) -> dict[str, str]:
    """Aliases read from a live kernel: the globals of ``obj``'s functions that are modules
    (``G`` -> ``torch.nn.functional``) or are a forbidden object itself (``s`` -> ``torch.softmax``)."""
    targets = {}
    for path in forbidden:
        target = resolve_path(path)
        if target is not None:
            targets[id(target)] = path
    aliases: dict[str, str] = {}
    for fn in _functions_of(obj):
        for name, value in fn.__globals__.items():
            if isinstance(value, types.ModuleType):
                aliases[name] = value.__name__
            elif id(value) in targets:
                aliases[name] = targets[id(value)]
    return aliases


def resolve_path(path: str) -> Any | None:
    """The object a dotted path names (``"torch.nn.functional.softmax"``), or None."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _functions_of(obj: Any) -> list[types.FunctionType]:
    if inspect.isfunction(obj):
        return [obj]
    if not inspect.isclass(obj):
        return []
    out = []
    for value in vars(obj).values():
        value = getattr(value, "__func__", value)  # staticmethod, classmethod
        if isinstance(value, property):
            value = value.fget
        if inspect.isfunction(value):
            out.append(value)
    return out


def _names_used(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


# --------------------------------------------------------------------------- the scanner


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    try:  # notebook cells may hold IPython syntax (%magics, !shell); IPython turns it into Python
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))
    except (ImportError, SyntaxError):
        return None


class _Scanner:
    def __init__(self, source: str, tree: ast.Module, forbidden: tuple[str, ...], defaults: dict[str, str]):
        self.source, self.tree, self.forbidden, self.defaults = source, tree, forbidden, defaults
        self.methods = {f[len(TENSOR) :] for f in forbidden if f.startswith(TENSOR) and "." not in f[len(TENSOR) :]}
        self.paths: dict[str, set[str]] = {}  # name -> dotted paths it is bound to
        self.strings: dict[str, set[str]] = {}  # name -> constant strings it is bound to
        self.local: set[str] = set()  # names the source binds to anything (defaults no longer apply)
        self.defined: set[str] = set()  # functions and classes the source defines
        self.star: list[str] = []  # modules imported with *
        self._bind()

    # ----- pass 1: what names stand for

    def _bind(self) -> None:
        assigns: list[tuple[str, ast.expr]] = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self._add(a.asname, {a.name})
                    else:
                        top = a.name.split(".")[0]
                        self._add(top, {top})
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name == "*":
                        self.star.append(node.module)
                    else:
                        self._add(a.asname or a.name, {f"{node.module}.{a.name}"})
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.local.add(node.name)
                self.defined.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    assigns += self._targets(target, node.value)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
                assigns += self._targets(node.target, node.value)
            elif isinstance(node, ast.NamedExpr):
                assigns += self._targets(node.target, node.value)
            elif isinstance(node, ast.arg):
                self.local.add(node.arg)
            elif isinstance(node, (ast.For, ast.comprehension, ast.withitem)):
                target = getattr(node, "target", None) or getattr(node, "optional_vars", None)
                for name in ast.walk(target) if target is not None else ():
                    if isinstance(name, ast.Name):
                        self.local.add(name.id)
        for name, _ in assigns:
            self.local.add(name)
        for _ in range(4):  # a few rounds: an alias of an alias of an alias
            changed = False
            for name, value in assigns:
                changed |= self._add(name, self.resolve(value))
                folded = self.fold(value)
                if folded is not None and folded not in self.strings.setdefault(name, set()):
                    self.strings[name].add(folded)
                    changed = True
            if not changed:
                break

    def _targets(self, target: ast.expr, value: ast.expr) -> list[tuple[str, ast.expr]]:
        if isinstance(target, ast.Name):
            return [(target.id, value)]
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
            if len(target.elts) == len(value.elts):
                return [p for t, v in zip(target.elts, value.elts) for p in self._targets(t, v)]
        for name in ast.walk(target):
            if isinstance(name, ast.Name):
                self.local.add(name.id)
        return []

    def _add(self, name: str, paths: set[str]) -> bool:
        self.local.add(name)
        known = self.paths.setdefault(name, set())
        new = paths - known
        known |= new
        return bool(new)

    # ----- what an expression stands for

    def resolve(self, node: ast.expr) -> set[str]:
        """The dotted paths ``node`` may evaluate to (empty: unknown, e.g. a tensor)."""
        if isinstance(node, ast.Name):
            if node.id in self.paths:
                return set(self.paths[node.id])
            if node.id in self.local:
                return set()
            if node.id in self.defaults:
                return {self.defaults[node.id]}
            return {f"{m}.{node.id}" for m in self.star}
        if isinstance(node, ast.Attribute):
            return {f"{p}.{node.attr}" for p in self.resolve(node.value)}
        if isinstance(node, ast.Subscript):
            key = self.fold(node.slice)
            if key is None:
                return set()
            owner = node.value
            if isinstance(owner, ast.Attribute) and owner.attr == "__dict__":
                return {f"{p}.{key}" for p in self.resolve(owner.value)}
            if isinstance(owner, ast.Call) and self._is(owner.func, "vars") and len(owner.args) == 1:
                return {f"{p}.{key}" for p in self.resolve(owner.args[0])}
            if "sys.modules" in self.resolve(owner):
                return {key}
            return set()
        if isinstance(node, ast.Call):
            return self._resolve_call(node)
        if isinstance(node, ast.NamedExpr):
            return self.resolve(node.value)
        return set()

    def _resolve_call(self, node: ast.Call) -> set[str]:
        func, args = node.func, node.args
        if self._is(func, "getattr") and len(args) >= 2:
            name = self.fold(args[1])
            return {f"{p}.{name}" for p in self.resolve(args[0])} if name is not None else set()
        if self._is(func, "importlib.import_module") and args:
            name = self.fold(args[0])
            return {name} if name is not None else set()
        if self._is(func, "__import__") and args:
            name = self.fold(args[0])
            if name is None:
                return set()
            fromlist = [k for k in node.keywords if k.arg == "fromlist"] or args[3:4]
            return {name} if fromlist else {name.split(".")[0]}
        if isinstance(func, ast.Call) and self._is(func.func, "operator.attrgetter") and func.args and args:
            name = self.fold(func.args[0])
            return {f"{p}.{name}" for p in self.resolve(args[0])} if name is not None else set()
        return set()

    def _is(self, node: ast.expr, path: str) -> bool:
        """Whether ``node`` names the builtin or library function ``path``."""
        if "." not in path and isinstance(node, ast.Name) and node.id == path and path not in self.local:
            return True
        return path in self.resolve(node) or f"builtins.{path}" in self.resolve(node)

    def fold(self, node: ast.expr) -> str | None:
        """The constant string ``node`` always evaluates to, or None."""
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, str) else None
        if isinstance(node, ast.Name):
            options = self.strings.get(node.id, set())
            return next(iter(options)) if len(options) == 1 else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.fold(node.left), self.fold(node.right)
            return left + right if left is not None and right is not None else None
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                inner = value.value if isinstance(value, ast.FormattedValue) else value
                text = self.fold(inner)
                if text is None:
                    return None
                parts.append(text)
            return "".join(parts)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            text = self.fold(node.value)
            bounds = [self._int(b) for b in (node.slice.lower, node.slice.upper, node.slice.step)]
            if text is None or any(b is False for b in bounds):
                return None
            return text[slice(*bounds)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = self.fold(node.func.value)
            if owner is None or node.keywords:
                return None
            if node.func.attr == "join" and len(node.args) == 1 and isinstance(node.args[0], (ast.List, ast.Tuple)):
                parts = [self.fold(e) for e in node.args[0].elts]
                return owner.join(parts) if all(p is not None for p in parts) else None
            if node.func.attr in _STR_METHODS:
                args = [self.fold(a) for a in node.args]
                return getattr(owner, node.func.attr)(*args) if all(a is not None for a in args) else None
        if isinstance(node, ast.Call) and self._is(node.func, "chr") and len(node.args) == 1:
            code = self._int(node.args[0])
            return chr(code) if isinstance(code, int) and 0 <= code < 0x110000 else None
        return None

    def _int(self, node: ast.expr | None) -> int | None | bool:
        """A constant int, None for an absent bound, False when not constant."""
        if node is None:
            return None
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self._int(node.operand)
            return -inner if type(inner) is int else False
        return False

    # ----- pass 2: the uses

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        self._visit(self.tree, out)
        unique, seen = [], set()
        for f in out:
            if (f.name, f.line, f.code) not in seen:
                seen.add((f.name, f.line, f.code))
                unique.append(f)
        return unique

    def _visit(self, node: ast.AST, out: list[Finding]) -> None:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                self._report({f"{node.module}.{a.name}"}, node, out)
        elif isinstance(node, ast.Import):
            for a in node.names:
                self._report({a.name}, node, out)
        elif isinstance(node, ast.Call) and (
            self._report(self.resolve(node.func), node, out) or self._method(node.func, out, shown=node)
        ):
            self._visit_arguments(node, out)  # ``F.softmax(...)``: shown as the whole call
            return
        elif isinstance(node, ast.expr) and not isinstance(getattr(node, "ctx", ast.Load()), (ast.Store, ast.Del)):
            if self._report(self.resolve(node), node, out) or self._method(node, out):
                self._visit_arguments(node, out)
                return
            if isinstance(node, ast.Call) and self._exec_like(node.func) and node.args:
                code = self.fold(node.args[-1] if self._is_magic(node.func) else node.args[0])
                if code is not None:
                    inner = find_forbidden(code, self.forbidden, self._aliases())
                    out += [Finding(f.name, node.lineno, self._segment(node)) for f in inner]
        for child in ast.iter_child_nodes(node):
            self._visit(child, out)

    def _visit_arguments(self, node: ast.AST, out: list[Finding]) -> None:
        """After a finding on ``getattr(x, ...)`` or ``f(...)``, the inner expressions may hold more."""
        if isinstance(node, ast.Call):
            for arg in list(node.args) + [k.value for k in node.keywords]:
                self._visit(arg, out)

    def _report(self, paths: set[str], node: ast.AST, out: list[Finding]) -> bool:
        hit = False
        for path in sorted(paths):
            for name in self.forbidden:
                if path == name or path.startswith(name + "."):
                    out.append(Finding(name, node.lineno, self._segment(node)))
                    hit = True
        return hit

    def _method(self, node: ast.expr, out: list[Finding], shown: ast.AST | None = None) -> bool:
        """``<tensor>.softmax`` or ``getattr(<tensor>, "softmax")`` for a forbidden Tensor method."""
        if not self.methods:
            return False
        if isinstance(node, ast.Attribute):
            owner, attr = node.value, node.attr
        elif isinstance(node, ast.Call) and self._is(node.func, "getattr") and len(node.args) >= 2:
            owner, attr = node.args[0], self.fold(node.args[1])
        else:
            return False
        if attr not in self.methods or self.resolve(owner):
            return False  # a module's attribute is judged by its path
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls") and attr in self.defined:
            return False  # the student's own method of that name
        out.append(Finding(TENSOR + attr, node.lineno, self._segment(shown or node)))
        return True

    def _exec_like(self, func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            return func.id in _EXEC_LIKE and func.id not in self.local
        return isinstance(func, ast.Attribute) and (func.attr == "run_cell" or self._is_magic(func))

    @staticmethod
    def _is_magic(func: ast.expr) -> bool:
        """``get_ipython().run_line_magic("time", code)``: what IPython makes of ``%time code``."""
        return isinstance(func, ast.Attribute) and func.attr in ("run_line_magic", "run_cell_magic")

    def _aliases(self) -> dict[str, str]:
        """Single-path bindings, for code that ``exec`` runs in this source's namespace."""
        return {name: next(iter(paths)) for name, paths in self.paths.items() if len(paths) == 1}

    def _segment(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or ast.unparse(node)
        text = " ".join(text.split())
        return text if len(text) <= 80 else text[:77] + "..."


def forbidden_report(check_name: str, forbidden: tuple[str, ...], obj: Callable) -> str:
    """The warning ``check()`` prints in a student's kernel, or "" when the answer is clean."""
    if not forbidden:
        return ""
    aliases = runtime_aliases(obj, forbidden)
    lines = []
    for where, source, first in answer_source(obj):
        for f in find_forbidden(source, forbidden, aliases):
            lines.append(f"  - {where}, line {first + f.line - 1}: `{f.code}` uses {f.name}")
    if not lines:
        return ""
    return (
        f"WARNING {check_name}: this part asks you to write it yourself, without "
        + ", ".join(forbidden)
        + ".\n  Your code uses:\n"
        + "\n".join(lines)
        + "\n  The grader looks for these calls too: replace them with your own code."
    )


# --------------------------------------------------------------------------- at run time

# The ATen operators a forbidden call dispatches, measured on CPU with torch 2.13 under a TorchDispatchMode
# (tests/checks/test_forbidden.py measures every row again). Composite operators arrive decomposed: torch.softmax,
# F.softmax, Tensor.softmax, nn.Softmax, F.softmin and Categorical(logits=x).probs all dispatch aten._softmax;
# F.instance_norm and F.batch_norm dispatch aten.native_batch_norm; sdpa dispatches
# aten._scaled_dot_product_flash_attention_for_cpu on 4-d inputs and aten._safe_softmax (with bmm) on 3-d ones
# or with dropout; nn.MultiheadAttention in eval under no_grad dispatches aten._native_multi_head_attention.
# A row lists every fused kernel that computes the forbidden thing, not only the one its own path reaches: the
# LayerNorm part forbids F.layer_norm, and F.instance_norm on a reshaped input is the same normalisation.
# Honest answers dispatch none of them: exp, sum, amax, mean, var, sqrt, rsqrt, pow, matmul, masked_fill, where,
# erf, tanh, lerp_, addcdiv_ (measured on every reference and solution, tests/grading/test_dispatch.py).
# What ATen cannot tell from honest code is judged by the Python calls in the record: torch.optim's for-loop
# AdamW dispatches mul_/addcdiv_/lerp_ as a student does, but runs torch.optim's code; F.rms_norm and
# F.cosine_similarity decompose into plain operators on CPU, but call torch.rms_norm / torch.cosine_similarity.
_SOFTMAX = ("aten._softmax", "aten._safe_softmax", "aten._log_softmax")
_NORMS = (
    "aten.native_layer_norm",
    "aten.native_group_norm",
    "aten.native_batch_norm",
    "aten._native_batch_norm_legit",
    "aten._native_batch_norm_legit_no_training",
    "aten._batch_norm_with_update",
    "aten._batch_norm_no_update",
)
_ATTENTION = (
    "aten._scaled_dot_product_flash_attention_for_cpu",
    "aten._scaled_dot_product_attention_math",
    "aten._scaled_dot_product_efficient_attention",
    "aten._scaled_dot_product_flash_attention",
    "aten._scaled_dot_product_cudnn_attention",
    "aten._scaled_dot_product_fused_attention_overrideable",
    "aten._safe_softmax",
    "aten._native_multi_head_attention",
)
_NLL = ("aten.nll_loss_forward", "aten.nll_loss2d_forward")
_CONV = ("aten.convolution", "aten._convolution")
_OPTIM = ("aten._fused_adamw_", "aten._fused_adam_", "aten._fused_sgd_", "aten._fused_adagrad_")
# The Python paths of the library calls parts ask students to write, by idea: the spec modules name these
# (checks/attention.py, transformer.py, llama.py), and ATEN_OPS maps them to the operators that betray them.
SOFTMAX_PATHS = (
    "torch.softmax",
    "torch.nn.functional.softmax",
    "torch.Tensor.softmax",
    "torch.special.softmax",
    "torch.nn.Softmax",
    "torch._softmax",
    "torch.ops.aten._softmax",
    "torch.ops.aten.softmax",
    "torch.log_softmax",
    "torch.nn.functional.log_softmax",
    "torch.Tensor.log_softmax",
    "torch.special.log_softmax",
    "torch.nn.LogSoftmax",
)
LAYER_NORM_PATHS = (
    "torch.nn.functional.layer_norm",
    "torch.nn.LayerNorm",
    "torch.layer_norm",
    "torch.native_layer_norm",
    "torch.ops.aten.layer_norm",
    "torch.ops.aten.native_layer_norm",
    "torch.nn.functional.group_norm",
    "torch.nn.GroupNorm",
    "torch.group_norm",
)
GELU_PATHS = ("torch.nn.functional.gelu", "torch.nn.GELU", "torch._C._nn.gelu", "torch.ops.aten.gelu")
ATTENTION_PATHS = (
    "torch.nn.functional.scaled_dot_product_attention",
    "torch._C._nn.scaled_dot_product_attention",
    "torch.ops.aten.scaled_dot_product_attention",
    "torch.ops.aten._scaled_dot_product_attention_math",
    "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu",
    "torch.nn.functional.multi_head_attention_forward",
    "torch.nn.MultiheadAttention",
)
ATEN_OPS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        SOFTMAX_PATHS,
        _SOFTMAX,
    ),
    **dict.fromkeys(
        LAYER_NORM_PATHS,
        _NORMS,
    ),
    **dict.fromkeys(GELU_PATHS, ("aten.gelu",)),
    **dict.fromkeys(
        ATTENTION_PATHS,
        _ATTENTION,
    ),
    **dict.fromkeys(
        (
            "torch.nn.functional.cross_entropy",
            "torch.nn.functional.nll_loss",
            "torch.nn.CrossEntropyLoss",
            "torch.nn.NLLLoss",
        ),
        _NLL,
    ),
    **dict.fromkeys(("torch.logsumexp", "torch.Tensor.logsumexp", "torch.special.logsumexp"), ("aten.logsumexp",)),
    **dict.fromkeys(
        ("torch.nn.functional.rms_norm", "torch.nn.RMSNorm", "torch.rms_norm", "torch.ops.aten.rms_norm"),
        ("aten._fused_rms_norm",),  # CPU decomposes rms_norm into pow/mean/rsqrt: the calls tell (see above)
    ),
    "torch.ops.aten._fused_rms_norm": ("aten._fused_rms_norm",),
    **dict.fromkeys(("torch.nn.functional.mse_loss", "torch.nn.MSELoss"), ("aten.mse_loss",)),
    **dict.fromkeys(("torch.nn.functional.unfold", "torch.nn.Unfold"), ("aten.im2col",)),
    "torch.Tensor.unfold": ("aten.unfold",),
    **dict.fromkeys(("torch.nn.functional.conv2d", "torch.nn.Conv2d", "torch.conv2d"), _CONV),
    "torch.optim": _OPTIM,
}
# Python-level names that stand for a forbidden path besides its own (the C function a Python wrapper calls)
EXTRA_CALLS: dict[str, tuple[str, ...]] = {
    "torch.nn.functional.cross_entropy": ("torch._C._nn.cross_entropy_loss",),
    "torch.nn.functional.nll_loss": ("torch._C._nn.nll_loss_nd", "torch._C._nn.nll_loss", "torch._C._nn.nll_loss2d"),
    "torch.nn.functional.mse_loss": ("torch._C._nn.mse_loss",),
    "torch.nn.functional.unfold": ("torch._C._nn.im2col",),
    "torch.nn.functional.layer_norm": ("torch._VariableFunctionsClass.layer_norm",),
    "torch.nn.functional.group_norm": ("torch._VariableFunctionsClass.group_norm",),
    "torch.nn.functional.rms_norm": ("torch._VariableFunctionsClass.rms_norm",),
}


@dataclasses.dataclass(frozen=True)
class RuntimeForbidden:
    """What betrays a spec's forbidden paths in a record: ATen operators, exact Python call names, and
    name prefixes (a module's code, a class's methods), each mapped to the forbidden path it stands for."""

    ops: dict[str, str]
    calls: dict[str, str]
    prefixes: dict[str, str]


@functools.cache
def runtime_forbidden(forbidden: tuple[str, ...]) -> RuntimeForbidden:
    """Derive, from a spec's ``forbidden`` paths, the operators and calls a record must not hold."""
    ops, calls, prefixes = {}, {}, {}
    for path in forbidden:
        for op in ATEN_OPS.get(path, ()):
            ops.setdefault(op, path)
        for name in EXTRA_CALLS.get(path, ()):
            calls.setdefault(name, path)
        for name in _call_names(path):
            calls.setdefault(name, path)
        for prefix in _call_prefixes(path):
            prefixes.setdefault(prefix, path)
    return RuntimeForbidden(ops, calls, prefixes)


def _call_names(path: str) -> list[str]:
    """The names :class:`~llmcourse.checks.dispatch.Recorder` gives a call of ``path``: the path itself (a
    library's function is named where it is defined), and for torch, whose paths re-export, the name of the
    object it resolves to (``torch.softmax`` -> ``torch._VariableFunctionsClass.softmax``)."""
    from .dispatch import call_name

    if path in _EVERYWHERE:
        return []
    names = [path]
    obj = _resolve_torch(path)
    if path.startswith(TENSOR):
        return names
    while isinstance(obj, types.FunctionType):  # a decorated function runs its wrapper and what it wraps
        names.append(f"{obj.__globals__.get('__name__')}.{obj.__code__.co_qualname}")
        obj = getattr(obj, "__wrapped__", None)
    if isinstance(obj, (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType)):
        names.append(call_name(obj))
    return names


# Paths a source may not name but which every PyTorch program runs through: at run time they say nothing
# (an entry under them, ``torch.ops.aten._softmax``, is judged by its operator and its exact name instead)
_EVERYWHERE = ("torch._C", "torch.ops")


def _call_prefixes(path: str) -> list[str]:
    """Name prefixes: what runs inside a module (``torch.optim.``) or a class (its methods)."""
    if any(path == p or path.startswith(p + ".") for p in _EVERYWHERE):
        return []
    obj = _resolve_torch(path)
    if isinstance(obj, types.ModuleType):
        return sorted({path + ".", obj.__name__ + "."})
    if isinstance(obj, type):
        return sorted({path + ".", f"{obj.__module__}.{obj.__qualname__}."})
    return [path + "."]


def _resolve_torch(path: str) -> Any | None:
    """The object a torch path names (torch re-exports: ``torch.nn.LayerNorm`` lives in
    ``torch.nn.modules.normalization``). Other libraries are never imported by the grader for this: their
    paths name where things are defined, and importing ``transformers`` would cost every grading process."""
    if path.split(".")[0] != "torch":
        return None
    try:
        return resolve_path(path)
    except Exception:  # noqa: BLE001 - a path this torch lacks: judged by its name alone
        return None


def runtime_uses(forbidden: Iterable[str], record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``[(what ran, the forbidden path it betrays), ...]`` in a check's record of what ran (a record
    with no usable lists yields nothing here: :func:`record_problem` judges its shape)."""
    table = runtime_forbidden(tuple(forbidden))
    found: dict[str, str] = {}
    ops = record.get("ops")
    for op in ops if isinstance(ops, list) else ():
        if isinstance(op, str) and op in table.ops:
            found.setdefault(op, table.ops[op])
    calls = record.get("calls")
    for name in calls if isinstance(calls, list) else ():
        if not isinstance(name, str):
            continue
        if name in table.calls:
            found.setdefault(name, table.calls[name])
            continue
        for prefix, path in table.prefixes.items():
            if name.startswith(prefix) or name == prefix[:-1]:
                found.setdefault(name, path)
                break
    # one finding per forbidden path is enough to say what happened: its operator if ATen saw it
    by_path: dict[str, str] = {}
    for what, path in sorted(found.items(), key=lambda kv: not kv[0].startswith("aten.")):
        by_path.setdefault(path, what)
    return [(what, path) for path, what in by_path.items()]


def record_problem(forbidden: Iterable[str], record: Mapping[str, Any]) -> str | None:
    """Why a check's record of what ran cannot be trusted (None: it can). ``ops`` must be a list holding the
    recorder's own canary when the spec has forbidden operators, ``calls`` a list that is not empty, and
    ``intact`` true (the recorder found itself still in place). A kernel that forges the whole record can
    pass this; one that strips, empties or switches off the recording cannot."""
    from .dispatch import CANARY, CANARY_CALL

    table = runtime_forbidden(tuple(forbidden))
    ops, calls = record.get("ops"), record.get("calls")
    if record.get("intact") is not True:
        return "the recording of what your function ran was switched off or overflowed while the cases ran"
    if not isinstance(calls, list) or not all(isinstance(c, str) for c in calls) or CANARY_CALL not in calls:
        return "the record of the Python calls your function made is missing or was tampered with"
    if table.ops and (not isinstance(ops, list) or not all(isinstance(o, str) for o in ops) or CANARY not in ops):
        return "the record of the PyTorch operators your function dispatched is missing or was tampered with"
    return None


def runtime_finding(target: str, what: str, path: str) -> str:
    """One sentence for a forbidden call seen at run time (the grader's report and the student's warning)."""
    kind = "dispatched" if what.startswith("aten.") else "called"
    return f"{target} {kind} {what} while the checks ran: that is {path}, which this part asks you to write yourself"


def runtime_report(check_name: str, forbidden: tuple[str, ...], record: Mapping[str, Any]) -> str:
    """The warning ``check()`` prints when the record of what ran holds a forbidden call ("" when clean)."""
    uses = runtime_uses(forbidden, record)
    if not uses:
        return ""
    lines = [f"  - {runtime_finding('your function', what, path)}" for what, path in uses]
    return (
        f"WARNING {check_name}: at run time, whatever the spelling:\n"
        + "\n".join(lines)
        + "\n  The grader sees this record too: replace these calls with your own code."
    )
