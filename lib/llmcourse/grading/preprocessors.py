"""nbgrader preprocessors that make grades honest. Each does one thing to a notebook.

``GradingExecute``   runs the notebook like nbgrader's ``Execute``, but a dead kernel fails every
                     cell that did not run instead of silently leaving them empty (nbgrader #427).
``TrustedChecks``    decides every graded test cell in *this* process: it reads the records that
                     :func:`llmcourse.checks.checker.check` emitted, recomputes the reference on the
                     grader's own inputs, and replaces the cell's outputs with a report that never
                     shows hidden inputs or hidden test source. A test cell whose records are
                     missing (not run, kernel died, check monkeypatched away) fails. A part whose
                     answer uses a library call the part asks students to write themselves
                     (:mod:`llmcourse.grading.write_yourself`) earns zero, or is only flagged.
``SanitizeFeedback`` removes what a student's own code could have printed about hidden inputs
                     before feedback HTML is written.
"""

from __future__ import annotations

import time
from pathlib import Path

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Integer, List, Unicode

from ..checks.checker import MIME, Outcome, verify_record
from .assignment import check_calls, expected_checks
from .write_yourself import MODES, notebook_code, part_findings

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
# a part answered with a call it asks students to write (zeroed); the report names it too
FORBIDDEN_CALL = "ForbiddenCall"
# the prefix of a finding that is only flagged (the part keeps its points); the report collects these lines
FLAGGED = "flagged, write it yourself: "


def _error(ename: str, lines: list[str]) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=lines[0] if lines else "", traceback=lines)


def _stream(text: str) -> NotebookNode:
    return NotebookNode(output_type="stream", name="stdout", text=text)


class GradingExecute(Execute):
    """nbgrader's Execute, plus limits that fail what did not run, never pass it.

    A notebook stops at the first cell that breaks a limit: the kernel died (it exited, crashed or
    was killed), the cell outlived its time limit, hit the memory cap (MemoryError) or printed past
    the output budget. That cell and every later one fail with the reason; nothing after it runs, so
    nothing after it can pass (nbgrader #427 turned unrun cells into passes). Also:

    - a whole-notebook time limit on top of the per-cell one;
    - past the output budget, outputs are dropped (a 1 GB print must not reach the gradebook);
    - code cells after the last graded or solution cell are not run: they cannot change a grade, and
      feedback never shows a student's own outputs (SanitizeFeedback). Demos at the end of a
      notebook (training a tokenizer on Shakespeare, plots) would otherwise cost every student seconds.
    """

    notebook_timeout = Integer(600, help="Seconds for the whole notebook.").tag(config=True)
    output_limit = Integer(1_000_000, help="Bytes of ordinary output kept per notebook.").tag(config=True)
    run_trailing_cells = Bool(False, help="Also run the cells after the last graded or solution cell.").tag(config=True)
    kernel_dirs = List(
        Unicode(),
        help="Where to find the kernelspec (default: Jupyter's usual folders). "
        "The grading kernel is kept out of those, so JupyterLab never offers it.",
    ).tag(config=True)

    # error name in a cell's outputs -> why the notebook stopped there
    BREACHES = {
        "CellTimeoutError": "an earlier cell did not finish within its time limit",
        "MemoryError": "an earlier cell ran out of memory (the grader caps it)",
        "OutputLimit": "an earlier cell printed more output than the grader allows",
    }

    def preprocess(self, nb, resources=None, km=None):
        self._last_needed = (
            len(nb.cells)
            if self.run_trailing_cells
            else max(
                [i for i, c in enumerate(nb.cells) if utils.is_grade(c) or utils.is_solution(c)], default=len(nb.cells)
            )
        )
        self._stopped = ""  # why the notebook stopped, once it did
        self._deadline = time.monotonic() + self.notebook_timeout
        self._output_bytes = 0
        try:
            return super().preprocess(nb, resources, km)
        except DeadKernelError:
            # raised again while shutting the dead kernel down: the cells already carry the reason
            return nb, resources

    def create_kernel_manager(self):
        if not self.kernel_dirs:
            return super().create_kernel_manager()
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager(kernel_dirs=list(self.kernel_dirs), config=self.config)
        self.km = self.kernel_manager_class(kernel_name=self.kernel_name, kernel_spec_manager=specs, config=self.config)
        return self.km

    def _get_timeout(self, cell):
        remaining = max(1, int(self._deadline - time.monotonic()))
        timeout = super()._get_timeout(cell)
        return min(timeout, remaining) if timeout else remaining

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if index > self._last_needed:
            cell.execution_count = None
            cell.outputs = [
                _stream("[not run while grading: cells after the last graded cell cannot change a grade]\n")
            ]
            return cell, resources
        if not self._stopped and time.monotonic() >= self._deadline:
            self._stopped = f"the notebook used up its {self.notebook_timeout} s time limit"
        if self._stopped:
            cell.outputs = [_error("NotRun", [f"not run: {self._stopped}"])]
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._stopped = "the kernel died in an earlier cell"
            cell.outputs.append(
                _error(
                    "KernelDied", ["the kernel died while running this cell (it exited, crashed or ran out of memory)"]
                )
            )
            return cell, resources
        except CellTimeoutError:
            self._stopped = "an earlier cell did not finish within its time limit and ignored the interrupt"
            cell.outputs.append(
                _error("CellTimeoutError", ["the cell did not finish within its time limit and ignored the interrupt"])
            )
            return cell, resources
        for out in cell.outputs:
            if out.get("output_type") == "error" and out.get("ename") in self.BREACHES:
                self._stopped = self.BREACHES[out["ename"]]
                break
        return cell, resources

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        data = content.get("data") or {}
        if MIME in data:  # check records have their own size cap in the checker
            return super().output(outs, msg, display_id, cell_index)
        size = len(content.get("text", "")) + sum(len(str(v)) for v in data.values())
        if self._output_bytes + size > self.output_limit:
            if self._output_bytes <= self.output_limit:
                outs.append(
                    _error(
                        "OutputLimit",
                        [f"output beyond {self.output_limit} bytes was dropped (the notebook printed too much)"],
                    )
                )
            self._output_bytes = self.output_limit + 1
            return None
        self._output_bytes += size
        return super().output(outs, msg, display_id, cell_index)


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
    expected = expected_checks(cell.source)
    records = _records(cell)
    used = [False] * len(records)
    outcomes: list[Outcome] = []
    for name, hidden in expected:
        record = None
        for i, r in enumerate(records):
            if not used[i] and isinstance(r, dict) and r.get("check") == name and r.get("hidden") == hidden:
                used[i], record = True, r
                break
        if record is None:
            outcomes.append(
                Outcome(
                    name,
                    hidden,
                    False,
                    0,
                    [
                        "this check did not run (an earlier error stopped the cell, the kernel died, "
                        "or the check was tampered with)"
                    ],
                )
            )
        else:
            outcomes.append(verify_record(record, name, hidden, seed, near=near))
    errors = _kernel_errors(cell)
    if not expected and cell.get("execution_count") is None and not errors:
        errors = ["this test cell did not run"]
    passed = all(o.passed for o in outcomes) and not errors
    lines = [o.report() for o in outcomes] + errors
    return passed, lines


class TrustedChecks(NbGraderPreprocessor):
    """Decide graded test cells in the grader process (see module docstring)."""

    seed = Integer(0, help="Seed of the hidden random cases; the kernel gets the same one.").tag(config=True)
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
        return super().preprocess(nb, resources)

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
        passed, lines = judge_cell(cell, self.seed)
        findings = part_findings(check_calls(cell.source), *self._code)
        if findings and self.forbidden == "zero":
            passed = False
            lines = findings + lines  # first: the report quotes an error's first line
            limits = limits or [FORBIDDEN_CALL]
        elif findings:
            lines = lines + [FLAGGED + f for f in findings]
        text = "\n".join(lines) + "\n"
        # keep a limit's name (timeout, dead kernel...) as the error name: the report shows it
        cell.outputs = (
            [_stream(text)]
            if passed
            else [_error(limits[0] if limits else "CheckFailed", text.rstrip("\n").split("\n"))]
        )
        return cell, resources


class SanitizeFeedback(NbGraderPreprocessor):
    """Keep only trusted outputs in feedback: a student's own cells could print hidden inputs they saw."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and not (utils.is_grade(cell) and not utils.is_solution(cell)):
            cell.outputs = []
        return cell, resources
