"""The student package: a wheel of ``llmcourse`` with the answer keys of released units only.

It is written with ``zipfile`` from an allow-list, so its content is exactly what is intended:

    llmcourse/__init__.py, cli.py      the package's front door and the ``llmcourse`` command
    llmcourse/toolbox/, checks/        data, models, plots; ``check()`` and every spec module
    llmcourse/grading/<the few>.py     what ``llmcourse validate`` imports (found by following its imports)
    llmcourse/<topic>.py               the answer key of a released unit, or else a stub:
                                       ``import llmcourse.attention`` -> ImportError("... the answer key of
                                       unit 04 (04_attention) is not part of the student package ...")
    llmcourse-<version>.dist-info/     METADATA (the repository's pins), WHEEL, entry_points.txt, RECORD

Which module is whose answer key comes from each assignment's manifest (``Manifest.blocked_modules``),
never from a table kept by hand. Timestamps are fixed, so the same inputs make the same wheel, byte for byte.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import re
import tomllib
import zipfile
from pathlib import Path

from .assignment import Manifest
from .course import PipelineError

PACKAGE = "llmcourse"
WHEEL_TAG = "py3-none-any"
# What a student's package holds besides the answer keys: the package's front door, the toolbox, the checks,
# and the grading modules that `llmcourse validate` (the student-side command) imports.
STUDENT_FILES = ("__init__.py", "cli.py")
STUDENT_FOLDERS = ("toolbox", "checks")
STUDENT_ENTRY_MODULES = ("llmcourse.grading.validate",)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------- units and their answer keys


def units(repo: Path) -> list[str]:
    """Every unit of the course in teaching order: the folders of ``solutions/`` (``01_tokenization``, ...)."""
    return sorted(p.name for p in (repo / "solutions").iterdir() if p.is_dir() and list(p.glob("*.ipynb")))


def resolve_unit(token: str, known: list[str]) -> str:
    """A unit named the way an instructor types it: ``04``, ``4``, ``05b``, ``04_attention`` or ``attention``."""
    t = token.strip().lower()
    if re.fullmatch(r"\d[a-z]?", t):
        t = "0" + t
    for unit in known:
        number, _, topic = unit.partition("_")
        if t in (unit.lower(), number.lower(), topic.lower()):
            return unit
    raise ValueError(f"unknown unit {token!r}: expected a number or name of one of {', '.join(known)}")


def answer_keys(repo: Path) -> dict[str, str]:
    """Answer-key module -> the unit it answers, from each assignment's manifest (``llmcourse.attention`` -> 04)."""
    owner: dict[str, str] = {}
    for unit in units(repo):
        for module in Manifest.load(repo / "solutions" / unit).blocked_modules():
            if owner.setdefault(module, unit) != unit:
                raise PipelineError(f"{module} is the answer key of both {owner[module]} and {unit}")
    return owner


def stub_source(module: str, unit: str) -> str:
    """The stand-in for a withheld answer key: importing it raises ImportError that says why."""
    number = unit.partition("_")[0]
    message = (
        f"{module}: the answer key of unit {number} ({unit}) is not part of the student package; "
        f"your instructor releases it after the assignment's due date"
    )
    return (
        f'"""Withheld: the answer key of unit {number} ({unit}).\n\n'
        "The student package holds the answer keys of released units only. Write these functions yourself in\n"
        f"assignments/{unit}/; the checks there compare with the expected outputs shipped with the release.\n"
        '"""\n\n'
        f"raise ImportError({message!r}, name={module!r})\n"
    )


# --------------------------------------------------------------------------- the wheel


def _local_imports(path: Path, module: str) -> set[str]:
    """``llmcourse.*`` modules a file imports (anywhere in it, relative or absolute), as dotted names."""
    found = set()
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(PACKAGE + ".")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            if base.startswith(PACKAGE):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}  # `from . import x`: x may be a module
    return found


def _module_file(lib: Path, module: str) -> Path | None:
    base = lib.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def student_grading_files(lib: Path) -> list[str]:
    """The ``grading/`` files the student-side commands import, following imports from the entry modules."""
    seen, todo = set(), list(STUDENT_ENTRY_MODULES)
    while todo:
        module = todo.pop()
        path = _module_file(lib, module)
        if module in seen or path is None or not module.startswith(f"{PACKAGE}.grading"):
            continue
        seen.add(module)
        todo += sorted(_local_imports(path, module))
    seen.add(f"{PACKAGE}.grading")  # the package's __init__
    return sorted(str(_module_file(lib, m).relative_to(lib / PACKAGE)) for m in seen)


def wheel_files(repo: Path, released: list[str]) -> dict[str, bytes]:
    """Archive path -> bytes of the package part of a student wheel (answer keys of ``released`` units only)."""
    lib = repo / "lib"
    root = lib / PACKAGE
    names = list(STUDENT_FILES) + student_grading_files(lib)
    for folder in STUDENT_FOLDERS:
        names += [str(p.relative_to(root)) for p in sorted((root / folder).rglob("*.py"))]
    files = {f"{PACKAGE}/{name}": (root / name).read_bytes() for name in names}
    for module, unit in answer_keys(repo).items():
        arcname = module.replace(".", "/") + ".py"
        if unit in released:
            files[arcname] = (lib / arcname).read_bytes()
        else:
            files[arcname] = stub_source(module, unit).encode()
    return files


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(files: dict[str, bytes], folder: Path, repo: Path, summary: str) -> Path:
    """A pure-Python wheel of ``files`` with the project's name, version, entry point and pins (PEP 427)."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    pins = [line.strip() for line in (repo / "requirements.txt").read_text().splitlines()]
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
        f"Requires-Python: {project.get('requires-python', '>=3.10')}",
    ] + [f"Requires-Dist: {pin}" for pin in pins if pin and not pin.startswith("#")]
    scripts = "".join(f"{k} = {v}\n" for k, v in project.get("scripts", {}).items())
    dist_info = f"{name}-{version}.dist-info"
    files = dict(files)
    files[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: llmcourse bundle\nRoot-Is-Purelib: true\nTag: {WHEEL_TAG}\n"
    ).encode()
    files[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{scripts}".encode()
    files[f"{dist_info}/top_level.txt"] = f"{PACKAGE}\n".encode()
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in sorted(files.items()))
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    wheel = folder / f"{name}-{version}-{WHEEL_TAG}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():  # RECORD last, as installers expect
            info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return wheel
