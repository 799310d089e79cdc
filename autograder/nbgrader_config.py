"""nbgrader configuration for the course. The llmcourse pipeline loads this file and adds the
course directory, the gradebook URL and the secret seed (lib/llmcourse/grading/nbgrader_setup.py).

The changes from stock nbgrader, and why:
- GradingExecute replaces Execute: a dead kernel fails the cells it never ran (nbgrader #427).
- TrustedChecks runs right after execution: graded test cells are decided in the grader process,
  from records the student's kernel emitted, against the reference computed here (design.md s.5).
- Feedback drops hidden tests (ClearHiddenTests) and every output a student's own code printed
  (SanitizeFeedback), so neither hidden test source nor hidden inputs reach students.
- Deleted test cells are put back (add_missing_cells), so deleting a test never skips it.
"""

from llmcourse.grading.preprocessors import GradingExecute, SanitizeFeedback, TrustedChecks
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = "llmcourse"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".grading_seed"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

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
c.OverwriteCells.add_missing_cells = True
c.GradingExecute.timeout = 60  # seconds per cell
c.GradingExecute.startup_timeout = 120

c.GenerateFeedback.preprocessors = [
    GetGrades,
    ClearHiddenTests,
    SanitizeFeedback,
    CSSHTMLHeaderPreprocessor,
]
