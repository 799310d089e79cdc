"""nbgrader preprocessors that make grades honest. Each does one thing to a notebook.

``RestoreTestCells`` nbgrader's ``OverwriteCells``, warning only about test cells a student really edited.
``TrustedChecks``    decides every graded test cell in *this* process: it reads the records that
                     :func:`llmcourse.checks.checker.check` emitted, recomputes the reference on the
                     grader's own inputs, and replaces the cell's outputs with a report that never
                     shows hidden inputs or hidden test source. A test cell whose records are
                     missing (not run, kernel died, check monkeypatched away) fails. A part earns
                     its visible share, or all its points (:mod:`llmcourse.grading.scoring`). A part whose
                     answer uses a library call the part asks students to write themselves
                     (:mod:`llmcourse.grading.write_yourself`) earns zero, or is only flagged: in its
                     source, or in the record of the operators and calls it ran while the checks ran
                     (a record of what ran that is missing or tampered with fails the part).
                     A part graded for speed is judged on the speed the grader measured
                     (:mod:`llmcourse.grading.timing`), never on the kernel's.
The notebook itself runs in :class:`llmcourse.grading.execute.GradingExecute`.

``SanitizeFeedback`` removes what a student's own code could have printed about hidden inputs
                     before feedback HTML is written.
``CheckCellMetadata`` nbgrader's, validating each distinct cell metadata once per process.
"""

from __future__ import annotations

import copy
import json
import traceback
from pathlib import Path

from nbformat.notebooknode import NotebookNode
from nbgrader import preprocessors as nbgrader_preprocessors
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor, OverwriteCells
from traitlets import Bool, Integer, Unicode

from ..checks.checker import MIME, Outcome, verify_record
from .assignment import check_calls, expected_checks
from .scoring import graded_outputs, part_score
from .timing import RESOURCE_KEY
from .write_yourself import MODES, notebook_code, part_findings, runtime_findings

# errors whose message is safe to show (it cannot carry hidden inputs); these also tell the
# instructor why a submission lost points (see submission.failure_reasons)
LIMIT_ERRORS = {
    "CellTimeoutError",
    "DeadKernelError",
    "KernelDied",
    "NotRun",
    "OutputLimit",
    "MemoryError",
    "KeyboardInterrupt",
}
SAFE_ERRORS = {
    "NameError",
    "ImportError",
    "ModuleNotFoundError",
    "SyntaxError",
    "IndentationError",
    "CheckFailed",
} | LIMIT_ERRORS
# a part answered with a call it asks students to write (zeroed), or whose record of what it ran was missing or
# tampered with (zeroed in either mode); the report names it too
FORBIDDEN_CALL = "ForbiddenCall"
# the prefix of a finding that is only flagged (the part keeps its points); the report collects these lines
FLAGGED = "flagged, write it yourself: "


def _error(ename: str, lines: list[str]) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=lines[0] if lines else "", traceback=lines)


def _stream(text: str) -> NotebookNode:
    return NotebookNode(output_type="stream", name="stdout", text=text)


def _records(cell: NotebookNode) -> list:
    out = []
    for o in cell.get("outputs", []):
        data = o.get("data") if isinstance(o, dict) else None
        if o.get("output_type") in ("display_data", "execute_result") and isinstance(data, dict) and MIME in data:
            out.append(data[MIME])
    return out


def _kernel_errors(cell: NotebookNode) -> list[str]:
    lines = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            ename = str(o.get("ename", "Error"))
            evalue = str(o.get("evalue", ""))[:300] if ename in SAFE_ERRORS else ""
            lines.append(f"the cell raised {ename}" + (f": {evalue}" if evalue else ""))
    return lines


def judge_cell(cell: NotebookNode, seed: int, near: Path | None = None) -> tuple[bool, list[str]]:
    """Decide one executed test cell from its records. Returns (passed, report lines).

    ``near``: a student's own folder whose shipped expected outputs may stand in for the answer key
    (``llmcourse validate`` on a student install). The grader never passes it: a submission folder
    could hold a forged file."""
    outcomes, errors = judge_outcomes(cell, seed, near)
    passed = all(o.passed for o in outcomes) and not errors
    return passed, [o.report() for o in outcomes] + errors


def judge_outcomes(
    cell: NotebookNode, seed: int, near: Path | None = None, measured: dict[str, float] | None = None
) -> tuple[list[Outcome], list[str]]:
    """(one Outcome per check the cell's source names, the errors the cell raised) of an executed test cell.

    ``measured``: check name -> the speed the grader measured for a part graded for speed (a check missing
    from it counts as 0); None keeps the kernel's own figures (a student's ``llmcourse validate``)."""
    expected = expected_checks(cell.source)
    records = _records(cell)
    used = [False] * len(records)
    errors = _kernel_errors(cell)
    unanswered = any("NotImplementedError" in e for e in errors)
    missing = (
        "not answered yet (the code it checks still raises NotImplementedError)"
        if unanswered
        else "this check did not run (an earlier error stopped the cell, the kernel died, "
        "or the check was tampered with)"
    )
    outcomes: list[Outcome] = []
    for name, hidden in expected:
        record = None
        for i, r in enumerate(records):
            if not used[i] and isinstance(r, dict) and r.get("check") == name and r.get("hidden") == hidden:
                used[i], record = True, r
                break
        if record is None:
            outcomes.append(Outcome(name, hidden, False, 0, [missing]))
        else:
            speed = None if measured is None else measured.get(name, 0.0)
            outcomes.append(verify_record(record, name, hidden, seed, near=near, measured=speed))
    if not expected and cell.get("execution_count") is None and not errors:
        errors = ["this test cell did not run"]
    return outcomes, errors


class TrustedChecks(NbGraderPreprocessor):
    """Decide graded test cells in the grader process (see module docstring)."""

    seed = Integer(0, help="Seed of the hidden random cases, when no seed_file is set.").tag(config=True)
    seed_file = Unicode(
        "",
        help="File holding the seed of the hidden random cases (the course's .grading_seed), read when a "
        "notebook is graded, so the secret never sits in the Config that formgrader displays.",
    ).tag(config=True)
    enabled = Bool(True).tag(config=True)
    forbidden = Unicode(
        "zero",
        help="A part whose answer uses a call the part asks students to write: 'zero' (it earns nothing) "
        "or 'flag' (it keeps its points; the report names the call).",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        if self.forbidden not in MODES:
            raise ValueError(f"TrustedChecks.forbidden must be one of {MODES}, not {self.forbidden!r}")
        # the student's answers as they ran (nbgrader restored the test cells from the release before)
        self._code = notebook_code(nb)
        self._seed = self._read_seed()
        return super().preprocess(nb, resources)

    def _read_seed(self) -> int:
        if not self.seed_file:
            return self.seed
        try:
            return int(Path(self.seed_file).read_text().strip())
        except (OSError, ValueError) as e:
            raise ValueError(f"TrustedChecks.seed_file must name a file holding an integer: {e}") from None

    def preprocess_cell(self, cell, resources, index):
        if not self.enabled or cell.cell_type != "code" or not utils.is_grade(cell) or utils.is_solution(cell):
            return cell, resources
        limits = [
            o.get("ename")
            for o in cell.get("outputs", [])
            if o.get("output_type") == "error" and o.get("ename") in LIMIT_ERRORS
        ]
        # a timeout interrupts the kernel: name the timeout, not the KeyboardInterrupt it caused
        limits.sort(key=lambda ename: ename == "KeyboardInterrupt")
        # the speeds the grader measured for this cell (GradingExecute); never the kernel's (timing.py)
        timings = resources.get(RESOURCE_KEY, {}).get(index, {})
        outcomes, errors = judge_outcomes(cell, self._seed, measured={n: m.ratio for n, m in timings.items()})
        points = float(cell.metadata["nbgrader"].get("points", 0))
        score = part_score(points, outcomes, errors)  # visible and hidden shares (scoring.py)
        lines = [o.report() for o in outcomes] + errors + [m.line for m in timings.values()]
        checks = check_calls(cell.source)
        ran, tampered = runtime_findings(checks, _records(cell))
        findings = part_findings(checks, *self._code) + ran
        if tampered:  # like a missing check record: never only flagged
            score = 0.0
            lines = tampered + findings + lines
            limits = limits or [FORBIDDEN_CALL]
        elif findings and self.forbidden == "zero":
            score = 0.0
            lines = findings + lines  # first: the report quotes an error's first line
            limits = limits or [FORBIDDEN_CALL]
        elif findings:
            lines = lines + [FLAGGED + f for f in findings]
        # keep a limit's name (timeout, dead kernel...) as the error name: the report shows it
        ename = limits[0] if limits else "CheckFailed"
        cell.outputs = graded_outputs(score, points, lines, ename, cell.execution_count)
        return cell, resources


class SanitizeFeedback(NbGraderPreprocessor):
    """Keep only trusted outputs in feedback: a student's own cells could print hidden inputs they saw."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and not (utils.is_grade(cell) and not utils.is_solution(cell)):
            cell.outputs = []
        return cell, resources


class RestoreTestCells(OverwriteCells):
    """nbgrader's OverwriteCells, warning only about real edits: a released test cell lacks its hidden tests by
    design, so one whose source is the gradebook's with the hidden tests cleared gets them back silently."""

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and utils.is_locked(cell):
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                source_cell = None
            if source_cell is not None and source_cell.source != cell.source:
                released = copy.deepcopy(cell)
                released.source = source_cell.source
                ClearHiddenTests(config=self.config)._remove_hidden_test_region(released)
                if released.source == cell.source:
                    cell.source = source_cell.source
        return super().preprocess_cell(cell, resources, cell_index)


class _KnownMetadataValidator(MetadataValidator):
    """nbgrader's metadata validator, remembering the cells it has passed: ``jsonschema.validate`` checks
    the schema itself before each cell, and every student's notebook repeats the release's metadata. The
    verdict depends on a cell's type and its nbgrader metadata only (the source appears only in error
    messages), so those are the key; a failure is never remembered."""

    passed: set[tuple[str, str]] = set()  # per process: a grading worker serves many students

    def validate_cell(self, cell: NotebookNode) -> None:
        key = (cell.cell_type, json.dumps(cell.metadata.get("nbgrader"), sort_keys=True, default=str))
        if key not in self.passed:
            super().validate_cell(cell)
            self.passed.add(key)


class CheckCellMetadata(nbgrader_preprocessors.CheckCellMetadata):
    """nbgrader's CheckCellMetadata with :class:`_KnownMetadataValidator` (nbgrader's check cost a
    grading worker as much CPU per student as running the trusted checks)."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        try:
            _KnownMetadataValidator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            raise ValidationError("Notebook failed to validate; the nbgrader metadata may be corrupted.") from None
        return nb, resources
