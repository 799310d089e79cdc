"""A student's and a TA's day in JupyterLab, walked in headless Chromium with the network blocked
(issue 10). Each step fails on a problem a real student hit:

1. `make start` again must not erase answers (the restart step: answers still there);
2. plots show in assignments even when the calling shell exported MPLBACKEND=Agg (the "Try it" cell);
3. `llmcourse validate` is found in JupyterLab's terminal (PASS lines, not "command not found");
4. running a lecture changes no tracked file (course/ and assignments/ hashed before and after);
5. nbgrader's exchange works: no "Unwritable directory", the Assignments tab's course list answers,
   formgrader shows no warning banner.

The student's Lab serves a workspace made in a temporary folder by the same command ``make start``
runs (so the checkout's own work/ is never touched); the server itself is ``make -n start``'s line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

import labkit
import nbformat
import pytest
from labkit import REPO, WAIT_MS, WRONG_SOFTMAX, Lab, new_page, screenshot
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

# The browser fixture, registered in this module: a tests/browser/conftest.py would shadow tests/conftest.py
# (both would be the top-level module `conftest`).
browser = labkit.browser

LECTURE = "course/01_tokenization.ipynb"
ASSIGNMENT = "assignments/04_attention/attention.ipynb"

RIGHT_SOFTMAX = WRONG_SOFTMAX.replace("dim=-1, keepdim", "dim=dim, keepdim").replace(
    "  # forgets `dim`: right on rows, wrong on columns", "  # the student's fix"
)
SDPA = """def scaled_dot_product_attention(q, k, v, mask=None, causal=False):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if causal:
        Tq, Tk = scores.shape[-2:]
        scores = scores.masked_fill(~torch.ones(Tq, Tk, dtype=torch.bool).tril(), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    return weights @ v, weights"""


def tree_hash(*folders: str) -> dict[str, str]:
    return {
        str(p.relative_to(REPO)): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted((REPO / folder).rglob("*"))
        if p.is_file()
    }


def sync_workspace(work: Path) -> str:
    """`make start`'s first step, the workspace line of ``make -n start``, into ``work``."""
    printed = subprocess.run(["make", "-n", "-s", "start"], cwd=REPO, capture_output=True, text=True, timeout=120)
    (sync,) = [line for line in printed.stdout.splitlines() if "llmcourse.workspace" in line]
    proc = subprocess.run(f"{sync} --work {work}", shell=True, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


# ------------------------------------------------------------------------------------ notebook driving


def open_notebook(page, lab: Lab, rel: str) -> None:
    page.goto(f"{lab.url}/lab/tree/{rel}?reset")
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for()
    # JupyterLab asks "Select Kernel" when it opens a notebook before it knows which kernels there are (seen
    # once in CI, under load). The notebook's own kernel is preselected; a student clicks Select, and so do we.
    idle = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']"
    page.wait_for_function(
        f"() => document.querySelector({idle!r}) || [...document.querySelectorAll('.jp-Dialog')]"
        ".some(d => d.textContent.includes('Select Kernel'))",
        timeout=WAIT_MS,
    )
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count():
        screenshot(page, "select-kernel-dialog")
        dialog.locator("button.jp-mod-accept").click()
    # the kernel started and the notebook's toolbar shows it idle: the Lab's commands now apply to it
    page.locator(".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()


def run_all_cells(page) -> None:
    """Run > Run All Cells, and see the cells queued ([*]) or numbered. Right after a notebook opens the
    Lab may still be connecting its kernel and a Run All then passes over the cells without running them
    (they stay [ ]), as a student sees it; like the student, click again (three tries)."""
    run_all = page.locator(
        ".lm-Menu-item", has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))
    )
    queued = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
        .every(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"""
    for attempt in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        # the item is disabled (and a click does nothing) until the notebook is the Lab's current widget
        page.wait_for_function("el => !el.classList.contains('lm-mod-disabled')", arg=run_all.element_handle())
        run_all.click()
        try:
            page.wait_for_function(queued, timeout=30_000)
            return
        except PlaywrightTimeout:
            screenshot(page, f"run-all-not-started-{attempt}")
    raise AssertionError("Run > Run All Cells never started the lecture's cells (see run-all-not-started-*.png)")


def code_cell(page, text: str):
    """The code cell whose source contains ``text``."""
    cell = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").filter(
        has=page.locator(".jp-InputArea-editor", has_text=text)
    )
    expect(cell, f"not one code cell contains {text!r}").to_have_count(1, timeout=60_000)  # waits for the render
    return cell


def run_cell(page, cell) -> str:
    """Run one cell (Shift+Enter in its editor) and wait for its new prompt number; return its output text."""
    prompt = cell.locator(".jp-InputPrompt").first
    before = prompt.inner_text()
    for attempt in range(3):  # as with Run All: a run sent while the kernel still connects is passed over
        cell.locator(".cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(
                "([el, before]) => /\\[(\\*|\\d+)\\]/.test(el.textContent) && el.textContent.trim() !== before.trim()",
                arg=[prompt.element_handle(), before],
                timeout=30_000,
            )
            break
        except PlaywrightTimeout:
            assert attempt < 2, f"Shift+Enter never ran the cell: {cell.inner_text()[:200]}"
    page.wait_for_function(
        "([el, before]) => /\\[\\d+\\]/.test(el.textContent) && el.textContent.trim() !== before.trim()",
        arg=[prompt.element_handle(), before],
        timeout=WAIT_MS,
    )
    return cell.locator(".jp-OutputArea").first.inner_text()


def type_into(page, cell, code: str) -> None:
    """Replace a cell's source the way a student pastes an answer."""
    cell.locator(".cm-content").first.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(code)


def save(page, path: Path, text: str) -> None:
    """Click the notebook toolbar's Save button, wait for the server to answer the save (a PUT of the
    contents API; waiting inside Playwright lets its network route pass the request on), then require the
    file on disk to hold ``text``."""
    with page.expect_response(
        lambda r: r.request.method == "PUT" and "/api/contents/" in r.url, timeout=WAIT_MS
    ) as response:
        page.locator('.jp-NotebookPanel:visible .jp-Toolbar [data-command="docmanager:save"]').first.click()
    assert response.value.ok, f"saving failed: {response.value.status} {response.value.text()[:500]}"
    assert text in path.read_text(), f"{path} does not hold {text!r} after saving"


# ------------------------------------------------------------------------------------ the terminal


def terminal_run(lab: Lab, command: str, timeout: float = 900) -> str:
    """Run ``command`` in a JupyterLab terminal (the REST API creates it, its websocket drives it, as the
    Terminal tab does) and return what the terminal showed up to the exit status."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    name = lab.api("/api/terminals", "POST", {})["name"]

    async def drive() -> str:
        url = f"ws://127.0.0.1:{lab.port}/terminals/websocket/{name}"
        ws = await websocket_connect(HTTPRequest(url, headers={"Cookie": lab.cookie}))
        ws.write_message(json.dumps(["stdin", f"{command}; echo EXIT:$?\r"]))
        shown, deadline = "", time.monotonic() + timeout
        while not re.search(r"EXIT:\d+", shown):
            message = await asyncio.wait_for(ws.read_message(), max(1.0, deadline - time.monotonic()))
            assert message is not None, f"the terminal closed:\n{shown}"
            kind, *rest = json.loads(message)
            if kind == "stdout":
                shown += rest[0]
        ws.close()
        return shown

    try:
        # in a thread of its own: Playwright's sync API already runs an event loop in this one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: asyncio.run(drive())).result()
    finally:
        lab.api(f"/api/terminals/{name}", "DELETE")


# ------------------------------------------------------------------------------------ the walk


def test_a_students_day(browser, tmp_path):
    tracked_before = tree_hash("course", "assignments")
    work = tmp_path / "work"
    sync_workspace(work)
    course_dir = tmp_path / "course_work"  # the nbgrader course nbgrader_config.py opens; not the checkout's
    lab = Lab("start", tmp_path / "state1", root=work, course_dir=course_dir)
    page = new_page(browser)
    try:
        # --- a lecture, run top to bottom: figures show; the repository stays clean
        open_notebook(page, lab, LECTURE)
        run_all_cells(page)
        # done when the kernel is idle and no cell is queued or running ([*]); a cell that raises stops the
        # run and leaves the rest unnumbered, which the next assertion reports with the error's text
        page.wait_for_function(
            """() => {
                const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
                const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
                const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
                return status && status.dataset.status === 'idle' && prompts.some(p => /\\[\\d+\\]/.test(p))
                    && !prompts.some(p => p.includes('[*]'));
            }""",
            timeout=WAIT_MS,
        )
        prompts = page.locator(".jp-NotebookPanel:visible .jp-CodeCell .jp-InputPrompt").all_inner_texts()
        stderr = page.locator('.jp-NotebookPanel:visible .jp-OutputArea-output[data-mime-type*="stderr"]')
        assert all(re.search(r"\[\d+\]", p) for p in prompts), f"Run All stopped: {prompts}\n" + "\n".join(
            stderr.all_inner_texts()
        )
        figures = page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output img")
        assert figures.count() >= 1, "the lecture ran but shows no figure"
        figures.first.scroll_into_view_if_needed()
        screenshot(page, "1-lecture-run")
        save(page, work / LECTURE, '"image/png"')  # the student's copy holds the run ...

        # --- assignment 04: a wrong softmax, readable feedback, then the right one
        open_notebook(page, lab, ASSIGNMENT)
        run_cell(page, code_cell(page, "from llmcourse.checks import check"))
        answer, test = code_cell(page, "def softmax(x"), code_cell(page, 'check("attention.softmax"')
        type_into(page, answer, WRONG_SOFTMAX)
        run_cell(page, answer)
        feedback = run_cell(page, test)
        assert "expected" in feedback and "got" in feedback and "along dim 0" in feedback, feedback
        line = test.locator(".jp-OutputArea-output", has_text="expected").first
        assert line.is_visible()
        # readable: the "expected ... got ..." line is not cut off by a horizontal scroll box
        assert line.evaluate("el => el.scrollWidth <= el.clientWidth + 1"), "the feedback is cut off"
        line.scroll_into_view_if_needed()
        screenshot(page, "2-wrong-answer-feedback")
        type_into(page, answer, RIGHT_SOFTMAX)
        run_cell(page, answer)
        feedback = run_cell(page, test)
        assert "PASS attention.softmax" in feedback and "Error" not in feedback, feedback
        screenshot(page, "3-right-answer-passes")

        # --- the "Try it" plot shows, though the calling shell exported MPLBACKEND=Agg
        run_cell(page, code_cell(page, "def padding_mask("))
        sdpa = code_cell(page, "def scaled_dot_product_attention(q")
        type_into(page, sdpa, SDPA)
        run_cell(page, sdpa)
        assert "PASS" in run_cell(page, code_cell(page, 'check("attention.scaled_dot_product_attention"'))
        plot = code_cell(page, "plt.subplots(1, 3")
        run_cell(page, plot)
        assert plot.locator(".jp-OutputArea-output img").count() == 1, (
            "the Try it cell drew no plot: " + plot.locator(".jp-OutputArea").inner_text()
        )
        plot.scroll_into_view_if_needed()
        screenshot(page, "4-try-it-plot")
        save(page, work / ASSIGNMENT, "dim=dim, keepdim")

        # --- nbgrader's Assignments tab: its course list answers, the exchange is writable
        courses = lab.api("/courses")
        assert courses.get("success"), courses
    finally:
        screenshot(page, "student-last-view")  # where the walk ended, passed or not
        page.close()
        lab.stop()
    assert "Unwritable directory" not in lab.log(), lab.log()[-2000:]
    # ... and the repository does not
    assert tree_hash("course", "assignments") == tracked_before, "running the course changed tracked files"

    # --- restart the course the README's way: `make start` again (sync, then a new server)
    report = sync_workspace(work)
    assert f"kept  work/{ASSIGNMENT}" in report, report
    lab = Lab("start", tmp_path / "state2", root=work, course_dir=course_dir)
    page = new_page(browser)
    try:
        open_notebook(page, lab, ASSIGNMENT)
        answer = code_cell(page, "def softmax(x")
        assert "the student's fix" in answer.inner_text(), "the answer is gone after restarting"
        screenshot(page, "5-answers-kept-after-restart")
        nb = nbformat.read(work / ASSIGNMENT, as_version=4)
        assert any("the student's fix" in c.source for c in nb.cells)

        # --- Validate from JupyterLab's terminal, as the assignment's text says
        # the terminal opens in the server's working folder (the repository); the student cds to the workspace
        shown = terminal_run(lab, f"cd '{work}' && llmcourse validate {ASSIGNMENT}")
        assert "command not found" not in shown, shown
        assert re.search(r"PASS\W+.*softmax", shown), shown
        assert re.search(r"EXIT:[1-9]", shown), "validate passed a notebook with unanswered parts:\n" + shown
        (tmp_path / "terminal.txt").write_text(shown)
    finally:
        page.close()
        lab.stop()


@pytest.mark.parametrize("target", ["lab"])
def test_a_tas_formgrader_has_no_error_banner(browser, tmp_path, target):
    """The TA's Lab (`make lab`, the whole repository): formgrader opens with no warning banner and the
    server never complains about nbgrader's exchange."""
    course_dir = REPO / "test-artifacts" / "browser" / "course_work"  # inside the served root, as formgrader needs
    lab = Lab(target, tmp_path / "state", course_dir=course_dir)
    page = new_page(browser)
    try:
        page.goto(f"{lab.url}/formgrader")
        page.locator("#main_table, table").first.wait_for()
        banners = page.locator(".alert-warning:visible, .alert-danger:visible")
        screenshot(page, "6-formgrader")
        assert banners.count() == 0, banners.all_inner_texts()
        assert lab.api("/courses").get("success")
        assert page.external == [], page.external  # MathJax too comes from the machine (toolbox/mathjax.py)
    finally:
        page.close()
        lab.stop()
    assert "Unwritable directory" not in lab.log(), lab.log()[-2000:]
