"""Every lecture notebook in course/ runs top to bottom in a fresh kernel with no errors, is committed
without outputs, and imports answer keys only of units before its own.

Why the import rule (issue 9): an instructor may hand out lecture NN while assignment NN is open, and the
student package then has no answer key of unit NN or of any later unit. So lecture NN may use the answer
keys of earlier units (``llmcourse.tokenization`` from lecture 02 on), the toolbox and ``llmcourse.checks``;
for its own topic it demonstrates with independent implementations or with code written in the lecture.
Which module is which unit's answer key comes from the assignment manifest (``blocked_modules``).

The rule is enforced twice:

1. **statically**, fast: every code cell is parsed (``import llmcourse.x``, ``from llmcourse import x``,
   ``from llmcourse.x import y``, ``importlib.import_module("llmcourse.x")``, ``__import__``, and
   ``llmcourse.x`` attribute chains), and so are the module-level imports of every course module a
   lecture imports, transitively (a toolbox module that imports an answer key at import time counts);
2. **at run time**: the lecture runs with those answer keys unimportable, as in a student's package, so an
   import that only happens inside a called function (``smollm2()`` building a ``llmcourse.llama.Llama``)
   fails the run too.

(Their time budget, 120 s here, is measured by bench/bench_notebooks.py.)
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from llmcourse.grading.assignment import Manifest
from nbclient import NotebookClient

LECTURES = sorted((REPO / "course").glob("*.ipynb"))
LIB = REPO / "lib"
UNITS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


# ----------------------------------------------------------------------------------------------
# which modules a lecture may not import


@functools.cache
def answer_keys() -> dict[str, str]:
    """Answer-key module -> its unit, e.g. ``{"llmcourse.attention": "04_attention", ...}``."""
    return {key: unit for unit in UNITS for key in Manifest.load(REPO / "solutions" / unit).blocked_modules()}


def unreleased_keys(lecture: str) -> dict[str, str]:
    """The answer keys a student may lack when given ``lecture``: its own unit's and every later unit's.
    Units are ordered by their folder names (``05_transformer`` < ``05b_modern_decoder`` < ``06_pretraining``)."""
    if lecture not in UNITS:
        raise ValueError(f"lecture {lecture!r} has no unit of the same name in solutions/ (units: {UNITS})")
    later = set(UNITS[UNITS.index(lecture) :])
    return {key: unit for key, unit in answer_keys().items() if unit in later}


def _matches(module: str, key: str) -> bool:
    return module == key or module.startswith(key + ".")


# ----------------------------------------------------------------------------------------------
# what a piece of code imports


def _python(source: str) -> str:
    """A cell's source with IPython's ``%magic`` and ``!shell`` lines blanked (line numbers kept)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def imported_modules(tree: ast.AST, package: str = "", top_level_only: bool = False) -> list[tuple[str, int]]:
    """``(dotted module, line)`` for every ``llmcourse`` module the code imports or names.

    ``package``: the package a module's relative imports start from (``llmcourse.toolbox`` for
    ``toolbox/smollm2.py``). ``top_level_only``: only what runs at import time (not inside functions or
    classes' methods, not under ``if TYPE_CHECKING:``)."""
    found: list[tuple[str, int]] = []

    def resolve(module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        base = package.split(".")[: len(package.split(".")) - (level - 1)]
        return ".".join(base + ([module] if module else []))

    def visit(node: ast.AST) -> None:
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if top_level_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = resolve(node.module, node.level)
            found.append((module, node.lineno))
            found.extend((f"{module}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if callee in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.args[0].value, node.lineno))
        elif isinstance(node, ast.Attribute):  # llmcourse.attention.softmax after `import llmcourse`
            parts, inner = [], node
            while isinstance(inner, ast.Attribute):
                parts.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "llmcourse":
                found.append((".".join(["llmcourse", *reversed(parts)]), node.lineno))
                return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [(m, line) for m, line in found if m == "llmcourse" or m.startswith("llmcourse.")]


def _module_file(module: str) -> Path | None:
    base = LIB.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None  # a name inside a module (llmcourse.transformer.GPT), not a module


@functools.cache
def import_time_imports(module: str) -> tuple[str, ...]:
    """The course modules that importing ``module`` imports: its parent packages and what its file
    imports at module level, transitively."""
    parts = module.split(".")
    todo = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    seen: list[str] = []
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen.append(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        todo += [m for m, _ in imported_modules(tree, package, top_level_only=True)]
    return tuple(seen)


def violations(nb: nbformat.NotebookNode, lecture: str) -> list[str]:
    """One message per import of an unreleased answer key in ``nb``'s code cells, naming the lecture,
    the cell (index and id), the line and the module (with the chain when it comes through another)."""
    keys, out = unreleased_keys(lecture), []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"{lecture}, cell {index} (id {cell.get('id')})"
        try:
            tree = ast.parse(_python(cell.source))
        except SyntaxError as e:  # a cell we cannot read could hide an import: refuse it
            out.append(f"{where}: cannot parse the cell ({e}), so its imports cannot be checked")
            continue
        reported = set()  # (line, key): `from llmcourse.attention import softmax` is one violation, not two
        for module, line in imported_modules(tree):
            chain = [module, *(m for m in import_time_imports(module) if m != module)]
            for via in chain:
                for key, unit in keys.items():
                    if _matches(via, key) and (line, key) not in reported:
                        reported.add((line, key))
                        how = "" if via == module else f" (imported by {module} when it loads)"
                        out.append(
                            f"{where}, line {line}: imports {via}{how}, the answer key of unit {unit}; lecture "
                            f"{lecture} may use answer keys of earlier units only"
                        )
    return out


# ----------------------------------------------------------------------------------------------
# the run, with the unreleased answer keys unavailable as in a student's package

BLOCKER = """\
import importlib.abc as _abc
import sys as _sys


class _UnreleasedAnswerKeys(_abc.MetaPathFinder):
    def __init__(self, keys):
        self.keys = keys

    def find_spec(self, fullname, path=None, target=None):
        for key, unit in self.keys.items():
            if fullname == key or fullname.startswith(key + "."):
                raise ImportError(f"{fullname} is the answer key of unit {unit}, not in the student package "
                                  f"that comes with lecture {LECTURE}")
        return None


_sys.meta_path.insert(0, _UnreleasedAnswerKeys(KEYS))
del _abc, _sys, _UnreleasedAnswerKeys
"""


def blocker_source(lecture: str) -> str:
    """Code that makes the answer keys ``lecture`` may not use unimportable (run before the lecture)."""
    return BLOCKER.replace("KEYS", repr(unreleased_keys(lecture))).replace("LECTURE", repr(lecture))


@pytest.mark.parametrize("path", LECTURES, ids=[p.stem for p in LECTURES])
def test_lecture_imports_only_earlier_answer_keys(path):
    nb = nbformat.read(path, as_version=4)
    assert not violations(nb, path.stem), "\n".join(violations(nb, path.stem))


@pytest.mark.parametrize("path", LECTURES, ids=[p.stem for p in LECTURES])
def test_lecture_runs_clean(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "commit notebooks without outputs"
    nb.cells.insert(0, nbformat.v4.new_code_cell(blocker_source(path.stem)))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [
        (i - 1, o.get("ename"), o.get("evalue"))  # i - 1: the lecture's own cell numbers, without the blocker
        for i, c in enumerate(nb.cells)
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, errors


def test_there_are_lectures():
    assert LECTURES
    assert {p.stem for p in LECTURES} <= set(UNITS), "every lecture is named after its unit's solutions/ folder"


# ----------------------------------------------------------------------------------------------
# the rule itself can fail


def _lecture(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a lecture")] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


@pytest.mark.parametrize(
    "bad",
    [
        "from llmcourse import attention as at",
        "import llmcourse.attention",
        "from llmcourse.attention import softmax",
        "import llmcourse.transformer as tf",  # a later unit's key
        "from llmcourse import transformer",
        "import importlib\nm = importlib.import_module('llmcourse.attention')",
        "m = __import__('llmcourse.attention')",
        "import llmcourse\nx = llmcourse.attention.softmax",
        "%matplotlib inline\nif True:\n    from llmcourse.transformer import GPT",
    ],
)
def test_a_planted_import_of_an_unreleased_key_is_named(bad):
    found = violations(_lecture("import torch", bad), "04_attention")
    assert found, f"not caught: {bad!r}"
    assert all(f.startswith("04_attention, cell 2 (id ") for f in found), found
    assert any("llmcourse.attention" in f or "llmcourse.transformer" in f for f in found), found


def test_an_answer_key_imported_by_a_toolbox_module_counts():
    # toolbox/smollm2.py imports llmcourse.tokenization (unit 01) when it loads: not for lecture 01 ...
    found = violations(_lecture("from llmcourse.toolbox.smollm2 import chat_prompt"), "01_tokenization")
    assert len(found) == 1 and "imports llmcourse.tokenization (imported by llmcourse.toolbox.smollm2" in found[0]
    # ... and fine from lecture 02 on, where the key of 01 is released
    assert not violations(_lecture("from llmcourse.toolbox.smollm2 import chat_prompt"), "02_embeddings")


def test_earlier_keys_the_toolbox_and_the_checker_are_allowed():
    good = _lecture(
        "from llmcourse.tokenization import Tokenizer\nfrom llmcourse import embeddings",
        "from llmcourse.toolbox import viz, data\nimport llmcourse.toolbox.heads\nfrom llmcourse.checks import check",
        "import llmcourse\nprint(llmcourse.__file__)",
    )
    assert not violations(good, "04_attention")
    assert violations(good, "02_embeddings")  # the same cells in lecture 02: embeddings is its own key


def test_an_unparsable_cell_is_refused():
    assert violations(_lecture("from llmcourse import (attention"), "04_attention")


def test_the_blocker_makes_unreleased_keys_unimportable():
    code = blocker_source("04_attention") + (
        "import llmcourse.tokenization\n"  # unit 01: released
        "try:\n    import llmcourse.attention\nexcept ImportError as e:\n    print('refused:', e)\n"
        "try:\n    from llmcourse.transformer import GPT\nexcept ImportError as e:\n    print('refused:', e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == (
        "refused: llmcourse.attention is the answer key of unit 04_attention, not in the student package "
        "that comes with lecture 04_attention"
    )
    assert lines[1].startswith("refused: llmcourse.transformer is the answer key of unit 05_transformer")


def test_units_follow_the_curriculum_order():
    assert UNITS.index("05_transformer") < UNITS.index("05b_modern_decoder") < UNITS.index("06_pretraining")
    assert answer_keys()["llmcourse.attention"] == "04_attention"
    assert set(unreleased_keys("05b_modern_decoder")) >= {"llmcourse.llama", "llmcourse.training"}
    assert not {"llmcourse.tokenization", "llmcourse.transformer"} & set(unreleased_keys("05b_modern_decoder"))
