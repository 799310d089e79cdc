"""nbgrader underneath: the grading kernel, its policies, and the Config every tool grades with.

Three things must agree wherever a notebook is graded (``llmcourse``, ``nbgrader``, formgrader):

1. **The grading kernelspec** (``<course>/.kernels/``), found through ``GradingExecute.kernel_dirs`` and
   not JUPYTER_PATH, so a JupyterLab on the same machine never offers it to students (in it, visible
   tests emit records and print no PASS or FAIL).
2. **The kernel policies** (``<course>/.llmcourse/kernel/<assignment>.json``): the answer-key modules to
   block and the files to mask, read by :mod:`llmcourse.grading.kernel` before any student code runs. The
   sandbox (bubblewrap) is an allow-list: what it does not bind in does not exist for the kernel; the
   masks only matter for what lies inside the trees it binds (the answer keys next to the toolbox).
3. **The Config**: ``autograder/nbgrader_config.py`` (preprocessors) plus this course's paths, seed
   and limits.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..toolbox.packaged import write_atomic
from .course import Course, GradingOptions, PipelineError

GRADING_KERNEL = "llmcourse-grading"


def autograder_config(course: Course) -> Path:
    return course.repo / "autograder" / "nbgrader_config.py"


def sandbox_available() -> bool:
    """The grading sandbox (bubblewrap: own PID, network, user and mount namespaces) runs here: the
    interpreter was started in it once (see :func:`llmcourse.grading.sandbox.sandbox_problem` for why not)."""
    from .sandbox import sandbox_problem

    return not sandbox_problem()


def hidden_paths(course: Course, assignment: str) -> list[str]:
    """What the student's kernel must not see: answer keys (their source; the sandbox masks their bytecode
    folder too), and, should the sandbox ever bind a tree holding them, solutions, tests, history and the
    course."""
    import importlib.util

    from jupyter_core.paths import jupyter_runtime_dir

    paths = [
        course.root,
        course.repo / "solutions",
        course.repo / "tests",
        course.repo / ".git",
        course.repo / "bench",
        course.repo / "autograder",
        Path(jupyter_runtime_dir()),
    ]
    for module in course.manifest(assignment).blocked_modules():
        spec = importlib.util.find_spec(module)
        if spec and spec.origin:
            paths += [Path(spec.origin), Path(importlib.util.cache_from_source(spec.origin))]
    return [str(p) for p in paths if p.exists()]


def data_paths(course: Course) -> list[str]:
    """Course data a notebook may read while graded, shown read-only in the sandbox (whose file system is
    an allow-list): the models the project trained itself (``checkpoints/``, e.g. 08 fine-tunes the
    Shakespeare GPT of 06). Nothing in them is an answer."""
    return [str(p) for p in [course.repo / "checkpoints"] if p.is_dir()]


def write_kernel_policies(course: Course, sandbox: bool, only: str | None = None) -> Path:
    """One grading policy per assignment (answer-key modules to block, paths to hide, course data to show
    read-only). ``_any`` is the union, for a notebook outside every known assignment: when in doubt, block
    and hide it all. One kernelspec thus serves every assignment, so nbgrader's own tools (formgrader) can
    use it.

    ``only``: write that assignment's policy and nothing else (``llmcourse autograde``: its kernels run in
    that assignment's folders only). Every policy needs the answer-key modules of its checks, which imports
    their spec modules, torch included: for all thirteen units that is seconds before the first student.
    ``_any`` is then left as it is; where it is missing, a kernel outside the assignment refuses to start.
    """
    folder = course.root / ".llmcourse" / "kernel"
    folder.mkdir(parents=True, exist_ok=True)
    union: dict[str, set] = {"blocked": set(), "hide": set(), "data": set()}
    for assignment in [only] if only else course.assignments():
        policy = {
            "blocked": course.manifest(assignment).blocked_modules(),
            "hide": hidden_paths(course, assignment) if sandbox else [],
            "data": data_paths(course) if sandbox else [],
        }
        for key in union:
            union[key].update(policy[key])
        # atomic: a starting kernel sees the old or the new policy, never half of one
        write_atomic(folder / f"{assignment}.json", json.dumps(policy, indent=1))
    if only:
        return folder
    write_atomic(folder / "_any.json", json.dumps({key: sorted(values) for key, values in union.items()}, indent=1))
    return folder


def venv_bin_on_path() -> None:
    """nbgrader's gradebook shells out to ``alembic``, which lives next to this Python."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def prepare_environment(course: Course, options: GradingOptions | None = None, only: str | None = None) -> None:
    """alembic on PATH; the grading kernelspec and the policies of every assignment (or ``only`` that one)
    written."""
    from ..toolbox.mathjax import install_templates

    options = options or GradingOptions()
    venv_bin_on_path()
    install_templates()  # feedback HTML typesets equations with the installed MathJax, never a CDN
    spec_dir = course.root / ".kernels" / "kernels" / GRADING_KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    sandbox = sandbox_available() if options.sandbox is None else options.sandbox
    if sandbox and not sandbox_available():  # asked for explicitly: never grade without it
        from .sandbox import sandbox_problem

        raise PipelineError(f"cannot grade in the sandbox: {sandbox_problem()}")
    write_kernel_policies(course, sandbox, only)
    env = {
        "LLMCOURSE_GRADING": "1",
        "LLMCOURSE_GRADING_SEED": str(course.seed()),
        "LLMCOURSE_COURSE_ROOT": str(course.root),
        "LLMCOURSE_MEMORY_LIMIT_MB": str(options.memory_mb),
        "LLMCOURSE_SANDBOX": "1" if sandbox else "0",
        "LLMCOURSE_OUTPUT_LIMIT": str(options.output_limit + 1000),
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
    }
    # The kernel enters its sandbox itself (kernel.py, stage 1). Interrupts travel as messages: in a new
    # session and PID namespace, a signal to the process the grader started would not reach the kernel.
    argv = [sys.executable, "-m", "llmcourse.grading.kernel", "-f", "{connection_file}"]
    spec = {
        "argv": argv,
        "display_name": "llmcourse grading",
        "language": "python",
        "interrupt_mode": "message",
        "env": env,
    }
    write_atomic(spec_dir / "kernel.json", json.dumps(spec, indent=1))


def nbgrader_config(course: Course, options: GradingOptions | None = None):
    """The course's nbgrader Config: autograder/nbgrader_config.py plus this course's paths."""
    from traitlets.config.loader import PyFileConfigLoader

    options = options or GradingOptions()
    path = autograder_config(course)
    config = PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    config.CourseDirectory.root = str(course.root)
    config.CourseDirectory.db_url = course.gradebook_url
    course.seed()  # made once per course; TrustedChecks reads it from the file, formgrader never shows it
    config.TrustedChecks.seed_file = str(course.root / ".grading_seed")
    config.TrustedChecks.forbidden = options.forbidden
    config.GradingExecute.kernel_name = GRADING_KERNEL
    config.GradingExecute.kernel_dirs = [str(course.root / ".kernels" / "kernels")]
    config.GradingExecute.timeout = options.cell_timeout
    config.GradingExecute.notebook_timeout = options.notebook_timeout
    config.GradingExecute.output_limit = options.output_limit
    config.GradingExecute.run_trailing_cells = options.run_all_cells
    return config


_TOOLS_READY: set[str] = set()


def tool_config(course: Course | None = None):
    """The Config that nbgrader's own tools (formgrader, the ``nbgrader`` command) load from the
    repository's root ``nbgrader_config.py``: the same course directory, gradebook, preprocessors,
    sandboxed grading kernel and secret seed as ``llmcourse``, so a grade never depends on the tool. The
    Validate button warns about the damage the grader repairs, as ``llmcourse validate`` does."""
    from .repair import validate_button_config

    course = course or Course.open()
    if str(course.root) not in _TOOLS_READY:  # formgrader reloads its config on every page
        prepare_environment(course)
        _TOOLS_READY.add(str(course.root))
    config = nbgrader_config(course)
    config.merge(validate_button_config())
    return config


def nbgrader_api(course: Course, options: GradingOptions | None = None, prepare: bool = True):
    """nbgrader's API on this course (``prepare``: write the kernelspec and policies first)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    if prepare:
        prepare_environment(course, options)
    config = nbgrader_config(course, options)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def run_nbgrader(result: dict, what: str) -> None:
    """NbGraderAPI reports failure only in its result dict; turn that into an exception."""
    if not result.get("success"):
        detail = (result.get("error") or result.get("log") or "").strip().splitlines()[-15:]
        raise PipelineError(f"{what} failed:\n" + "\n".join(detail))
