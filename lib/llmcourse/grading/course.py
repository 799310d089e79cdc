"""The course: an nbgrader course directory, the repository it grades from, and a run's limits.

Layout of a course directory (nbgrader's own, so instructors can still use plain ``nbgrader``)::

    <course>/source/<assignment>/        copied from the repository's solutions/
    <course>/release/<assignment>/       nbgrader's student version (copied to the repository's assignments/)
    <course>/submitted/<student>/<assignment>/<notebook>.ipynb
    <course>/autograded/...  <course>/feedback/...  <course>/gradebook.db
    <course>/.llmcourse/                 ours: kernel policies, results, stamps, logs, locks

The repository (solutions/, autograder/) is found explicitly (:func:`find_repo`), never assumed to be
the checkout this package was installed from: an installed ``llmcourse`` grades the course it is
pointed at.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from pathlib import Path

from .assignment import Manifest

REPO_ENV = "LLMCOURSE_REPO"
COURSE_ENV = "LLMCOURSE_COURSE_DIR"


class PipelineError(RuntimeError):
    """A clear, user-facing failure (bad path, unknown assignment, nbgrader refused)."""


def _is_repo(folder: Path) -> bool:
    return (folder / "solutions").is_dir() and (folder / "autograder" / "nbgrader_config.py").is_file()


def find_repo(start: str | os.PathLike | None = None) -> Path:
    """The course repository: ``$LLMCOURSE_REPO``, else the current directory or its nearest parent that
    holds ``solutions/`` and ``autograder/nbgrader_config.py``."""
    explicit = os.environ.get(REPO_ENV)
    if explicit:
        repo = Path(explicit).resolve()
        if not _is_repo(repo):
            raise PipelineError(
                f"${REPO_ENV}={explicit} is not a course repository (it needs solutions/ and autograder/nbgrader_config.py)"
            )
        return repo
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if _is_repo(folder):
            return folder
    raise PipelineError(
        f"no course repository at or above {here} (a folder with solutions/ and autograder/nbgrader_config.py): "
        f"run from the repository, or set ${REPO_ENV}"
    )


@dataclasses.dataclass
class Course:
    root: Path
    repo: Path
    db_url: str | None = None

    @classmethod
    def open(
        cls, root: str | os.PathLike | None = None, db_url: str | None = None, repo: str | os.PathLike | None = None
    ) -> Course:
        """The course at ``root`` (default ``$LLMCOURSE_COURSE_DIR``, else ``<repo>/course_work``), made if missing."""
        repo = Path(repo).resolve() if repo else find_repo()
        root = Path(root or os.environ.get(COURSE_ENV) or (repo / "course_work")).resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root=root, repo=repo, db_url=db_url)

    @property
    def solutions(self) -> Path:
        return self.repo / "solutions"

    @property
    def gradebook_url(self) -> str:
        return self.db_url or f"sqlite:///{self.root / 'gradebook.db'}"

    def assignments(self) -> list[str]:
        return sorted(p.name for p in self.solutions.iterdir() if p.is_dir() and list(p.glob("*.ipynb")))

    def check_assignment(self, assignment: str) -> None:
        if assignment not in self.assignments():
            raise PipelineError(f"unknown assignment {assignment!r}; known: {', '.join(self.assignments())}")

    def manifest(self, assignment: str) -> Manifest:
        """The assignment's parts, points, checks and solution code (parsed once per process)."""
        return Manifest.load(self.solutions / assignment)

    def notebooks(self, assignment: str) -> list[str]:
        return list(self.manifest(assignment).notebooks)

    def seed(self) -> int:
        """The secret seed of hidden random cases: made once per course, never committed."""
        path = self.root / ".grading_seed"
        if not path.exists():
            path.write_text(str(secrets.randbelow(2**31)))
        return int(path.read_text().strip())


@dataclasses.dataclass
class GradingOptions:
    """Limits and switches of a grading run (defaults suit a 2-core laptop)."""

    workers: int = max(1, os.cpu_count() or 1)
    cell_timeout: int = 60  # seconds per cell
    notebook_timeout: int = 600  # seconds per notebook
    memory_mb: int = 4096  # address-space cap of the student's kernel
    output_limit: int = 1_000_000  # bytes of ordinary output kept per notebook
    sandbox: bool | None = None  # None: use the namespace sandbox when this machine supports it
    force: bool = False  # regrade students whose result is already recorded
    run_all_cells: bool = False  # also run cells after the last graded one (they cannot change a grade)
    forbidden: str = "zero"  # a part using a call it asks students to write: "zero" it, or only "flag" it
