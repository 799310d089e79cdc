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
built from data at run time (``getattr(F, input())``) cannot be seen by any static reader; the
grading sandbox and the answer-key blocker are the other layers.

:func:`forbidden_uses` is the one entry the trusted grader calls: (check name, answer source) ->
findings. :func:`answer_source` and :func:`runtime_aliases` serve ``check()`` in a student's own
kernel, which warns while they work.
"""

from __future__ import annotations

import ast
import dataclasses
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
