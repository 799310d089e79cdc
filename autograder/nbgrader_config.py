"""nbgrader configuration for the course. The llmcourse pipeline loads this file and adds the
course directory, the gradebook URL and the secret seed (lib/llmcourse/grading/nbgrader_setup.py).

The changes from stock nbgrader, and why:
- GradingExecute replaces Execute: a dead kernel fails the cells it never ran (nbgrader #427).
- TrustedChecks runs right after execution: graded test cells are decided in the grader process,
  from records the student's kernel emitted, against the reference computed here (design.md s.5).
- Feedback drops hidden tests (ClearHiddenTests) and every output a student's own code printed
  (SanitizeFeedback), so neither hidden test source nor hidden inputs reach students.
- Deleted test cells are put back (add_missing_cells), so deleting a test never skips it; edited ones are
  restored, with a warning only for real edits (RestoreTestCells: a released test cell lacks its hidden
  tests by design, which stock nbgrader reports as "checksum has changed").
- Submissions are read through RepairingExporter (lib/llmcourse/grading/repair.py): a damaged notebook
  (split, duplicated, merged, re-typed or metadata-stripped cells, a renamed copy, an old nbformat, a
  truncated or non-UTF-8 file) is graded from the student's answers, never zeroed (issue 24), and the
  student's file is left as it is.
- CheckCellMetadata validates each distinct cell metadata once per grading worker, not once per cell
  per student (nbgrader's re-checks its JSON schema for every cell).
"""

from llmcourse.grading.execute import GradingExecute
from llmcourse.grading.preprocessors import CheckCellMetadata, RestoreTestCells, SanitizeFeedback, TrustedChecks
from llmcourse.grading.repair import RepairingExporter
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    ClearHiddenTests,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    OverwriteKernelspec,
    SaveAutoGrades,
)

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = "llmcourse"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".grading_seed"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

c.Autograde.exporter_class = RepairingExporter  # reads the submitted notebook, repaired, before any preprocessor
c.Autograde.autograde_preprocessors = [
    GradingExecute,
    TrustedChecks,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
c.Autograde.sanitize_preprocessors = [
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    RestoreTestCells,
    CheckCellMetadata,
]
c.OverwriteCells.add_missing_cells = True  # RestoreTestCells is an OverwriteCells: it reads this too
c.GradingExecute.timeout = 60  # seconds per cell
c.GradingExecute.startup_timeout = 120

c.GenerateFeedback.preprocessors = [
    GetGrades,
    ClearHiddenTests,
    SanitizeFeedback,
    CSSHTMLHeaderPreprocessor,
]
