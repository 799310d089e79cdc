"""``GradingExecute``: nbgrader's ``Execute`` preprocessor, run the way grading needs it.

- A dead kernel fails every cell that did not run instead of silently leaving them empty (nbgrader #427);
  so do a cell timeout, the memory cap, an output flood and the notebook's own time limit.
- Cells after the last graded or solution cell are not run (they cannot change a grade) unless
  ``run_trailing_cells``.
- A test cell whose check is graded for speed is followed by the grader's own timed call of the student's
  function (:mod:`llmcourse.grading.timing`); the measurement goes to TrustedChecks in ``resources``.
- The kernel is the grading kernelspec found in ``kernel_dirs`` (never on JUPYTER_PATH, so students'
  JupyterLab never lists it), started with ipc transport in a stage folder of its own: in its sandbox
  (:mod:`llmcourse.grading.sandbox`) it has an empty network namespace, so TCP to the grader is impossible.
- That kernel works in a throwaway copy of the notebook's folder (``private_copy``), not in the folder
  nbgrader writes the graded notebook into: the executed notebook comes back over the kernel protocol (it is
  in this process's memory), so whatever the kernel leaves on disk (a link to the gradebook in place of its
  notebook, a FIFO, a sparse 100 GB file, 10,000 files) is never read back or written through; the copy is
  deleted with the kernel.
"""

from __future__ import annotations

import os
import time

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import Bool, Enum, Integer, List, Unicode

from ..checks.checker import MIME
from . import timing
from .preprocessors import _error, _stream
from .safe_files import copy_plain_tree, remove_tree

# Not copied into a kernel's working copy: notebooks (the kernel runs its cells from this process; the
# notebook on disk holds the restored hidden tests) and caches.
NOT_COPIED = ("*.ipynb", ".ipynb_checkpoints", "__pycache__")


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
      notebook (training a tokenizer on Shakespeare, plots) would otherwise cost every student seconds;
    - the kernel is killed when the notebook is done: no code of the student's runs after its cells.
    """

    notebook_timeout = Integer(600, help="Seconds for the whole notebook.").tag(config=True)
    output_limit = Integer(1_000_000, help="Bytes of ordinary output kept per notebook.").tag(config=True)
    run_trailing_cells = Bool(False, help="Also run the cells after the last graded or solution cell.").tag(config=True)
    time_parts = Bool(
        True,
        help="Time the parts graded for speed with the grader's own clock (llmcourse.grading.timing). "
        "Off only where the answer key is not installed (llmcourse validate on a student's machine).",
    ).tag(config=True)
    probe_timeout = Integer(60, help="Seconds for one timed call of a student's function.").tag(config=True)
    private_copy = Bool(
        True,
        help="Run the grading kernel (kernel_dirs) in a throwaway copy of the notebook's folder, deleted after: "
        "nothing it leaves on disk reaches the folder nbgrader writes the graded notebook into.",
    ).tag(config=True)
    kernel_dirs = List(
        Unicode(),
        help="Where to find the kernelspec (default: Jupyter's usual folders). "
        "The grading kernel is kept out of those, so JupyterLab never offers it.",
    ).tag(config=True)

    # The kernel is killed once its notebook is done, not asked to shut down: a graceful shutdown waits for
    # it to exit (0.1-0.2 s of idle core per student) and first runs the student's atexit handlers.
    shutdown_kernel = Enum(["graceful", "immediate"], default_value="immediate").tag(config=True)

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
        self._stage = None  # the grading kernel's stage folder, made with its kernel manager
        self._scratch = []  # the kernels' throwaway working copies (one per kernel started)
        # cell index -> check name -> Measurement, read by TrustedChecks; present (maybe empty) when timing is on
        self._timings = {}
        if self.time_parts:
            resources = resources if resources is not None else {}
            resources[timing.RESOURCE_KEY] = self._timings
        try:
            return super().preprocess(nb, resources, km)
        except DeadKernelError:
            # raised again while shutting the dead kernel down: the cells already carry the reason
            return nb, resources
        finally:
            # the kernel is gone: its connection file and sockets go too, and its working copy with whatever
            # it left there (removed, never followed or read)
            for folder in [self._stage, *self._scratch]:
                if folder:
                    remove_tree(folder)

    def _private_cwd(self, kwargs: dict) -> dict:
        """``start_kernel``'s arguments with ``cwd`` moved to a fresh copy of the notebook's folder (plain files
        and folders only, no notebooks), named like it: the kernel finds its assignment's policy by that name
        (``kernel.load_policy``). A stage-named folder, so one left by a killed grader is cleaned up too."""
        path = kwargs.get("cwd") or self.resources.get("metadata", {}).get("path")
        if not (self.kernel_dirs and self.private_copy and path):
            return kwargs
        from .sandbox import make_stage

        scratch = make_stage()
        self._scratch.append(scratch)
        work = os.path.join(scratch, os.path.basename(os.path.normpath(path)))
        copy_plain_tree(path, work, skip=NOT_COPIED)
        return {**kwargs, "cwd": work}

    async def async_start_new_kernel(self, **kwargs) -> None:
        await super().async_start_new_kernel(**self._private_cwd(kwargs))

    start_new_kernel = run_sync(async_start_new_kernel)

    def create_kernel_manager(self):
        """The grading kernel (``kernel_dirs``) has no network: it talks over Unix sockets (``transport="ipc"``)
        in a fresh stage folder that its sandbox binds in, one folder per kernel (a shared runtime folder
        would show a kernel the other kernels' sockets and keys)."""
        if not self.kernel_dirs:
            return super().create_kernel_manager()
        from jupyter_client.kernelspec import KernelSpecManager

        from .sandbox import make_stage

        self._stage = make_stage()
        connection = os.path.join(self._stage, "kernel.json")
        specs = KernelSpecManager(kernel_dirs=list(self.kernel_dirs), config=self.config)
        self.km = self.kernel_manager_class(
            kernel_name=self.kernel_name,
            kernel_spec_manager=specs,
            transport="ipc",
            connection_file=connection,
            ip=os.path.join(self._stage, "kernel-ipc"),
            config=self.config,
        )
        return self.km

    def _get_timeout(self, cell):
        remaining = max(1, int(self._deadline - time.monotonic()))
        probe = cell is not None and cell.metadata.get("llmcourse_probe")
        timeout = self.probe_timeout if probe else super()._get_timeout(cell)
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
        if self.time_parts and utils.is_grade(cell) and not utils.is_solution(cell):
            self._time_parts(cell, index)
        return cell, resources

    def _time_parts(self, cell, index: int) -> None:
        """Time the checks of this test cell that are graded for speed, from here (see timing.py). A cell that
        raised (its part earns nothing) or a notebook that stopped is not timed: the speed then counts as 0."""
        checks = timing.timed_checks(cell.source)
        if not checks:
            return
        failed = self._stopped or any(o.get("output_type") == "error" for o in cell.outputs)
        measured = self._timings.setdefault(index, {})
        for spec, target in checks:
            if failed:
                measured[spec.name] = timing.Measurement(0.0, "speed not measured: the test cell did not pass")
            else:
                measured[spec.name] = timing.measure(spec, lambda args, t=target: self._probe(t, args, index))

    def _probe(self, target: str, args: tuple, index: int) -> tuple[list, float]:
        """Send one timed call of the student's ``target`` and read this process's clock around it."""
        probe = nbformat.v4.new_code_cell(timing.probe_source(target, args), metadata={"llmcourse_probe": True})
        test_cell = self.nb.cells[index]  # nbclient puts the cell it ran at its index: the test cell goes back
        start = time.perf_counter()
        try:
            self.execute_cell(probe, index, store_history=False)
        except DeadKernelError:
            self._stopped = "the kernel died while the grader timed a function"
            return [_error("KernelDied", ["the kernel died"])], time.perf_counter() - start
        except CellTimeoutError:
            self._stopped = "the kernel ignored the interrupt after a timed call ran out of time"
            return [_error("CellTimeoutError", ["timed out"])], time.perf_counter() - start
        finally:
            self.nb.cells[index] = test_cell
        return probe.outputs, time.perf_counter() - start

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
