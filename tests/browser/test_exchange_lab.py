"""nbgrader in the browser, offline (issue 10 item 6, issue 9 part 4), on assignment 04:

- the TA's formgrader shows a graded submission with its equations typeset by MathJax served from the
  installed ``jupyter-server-mathjax`` (no CDN: the network is blocked) and no JavaScript error;
- a student's Assignments tab (nbgrader's JupyterLab extension) lists the assignment they fetched from
  the course's exchange. Screenshots in test-artifacts/browser/.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import labkit
import nbformat
from conftest import BIN
from labkit import REPO, WAIT_MS, WRONG_SOFTMAX, Lab, new_page, screenshot

browser = labkit.browser  # registered here: a tests/browser/conftest.py would shadow tests/conftest.py

A, NB = "04_attention", "attention"
# Is the text "expected <x>, got <y>" inside the visible part of its scroll box (no horizontal scrolling needed)?
FITS = """(pre) => {
    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
        const m = /expected \\S+, got \\S+/.exec(node.textContent);
        if (!m) continue;
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const text = range.getBoundingClientRect();
        let box = pre;
        while (box && box.scrollWidth <= box.clientWidth + 1 && box.parentElement) box = box.parentElement;
        const edge = (box.scrollWidth > box.clientWidth + 1 ? box : pre).getBoundingClientRect();
        return {found: true, fits: text.left >= edge.left - 1 && text.right <= edge.right + 1,
                text: [text.left, text.right], box: [edge.left, edge.right], match: m[0]};
    }
    return {found: false};
}"""


def sh(args: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def graded_course() -> Path:
    """04 generated, one solution submission graded, the assignment released to the exchange."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import instructor_env, make_submission, solution_code

    course = REPO / "test-artifacts" / "browser" / "course_exchange"  # inside the served root, as formgrader needs
    shutil.rmtree(course, ignore_errors=True)
    env = instructor_env(course)
    sh([str(BIN / "llmcourse"), "generate", A, "--no-update-repo"], REPO, env)
    make_submission(course / "submitted", "ada", A, NB, solution_code(A, NB))
    sh([str(BIN / "llmcourse"), "autograde", A, "--workers", "1"], REPO, env)
    sh([str(BIN / "nbgrader"), "release_assignment", A, "--force"], REPO, env)
    return course


def test_formgrader_typesets_equations_offline_and_a_student_sees_the_fetched_assignment(browser, tmp_path):
    course = graded_course()
    (submission_id,) = sqlite3.connect(course / "gradebook.db").execute("SELECT id FROM submitted_notebook").fetchone()

    # --- the TA: formgrader on the graded submission; 04's text has equations ($q_i$, $\sqrt{d}$)
    lab = Lab("lab", tmp_path / "ta", course_dir=course)
    page = new_page(browser)
    try:
        page.goto(f"{lab.url}/formgrader/submissions/{submission_id}/")
        page.locator("#notebook-container").first.wait_for()
        typeset = page.locator(".MathJax_CHTML, .MathJax, .MathJax_Display")
        typeset.first.wait_for(timeout=120_000)  # MathJax replaced the LaTeX with its own elements
        screenshot(page, "7-formgrader-equations")
        assert typeset.count() >= 2, typeset.count()
        assert page.errors == [], page.errors  # formgrade.js calls MathJax.Hub: a missing MathJax raises here
        assert page.external == [], f"formgrader asked the internet for {page.external}"
        assert "\\sqrt" not in page.locator("#notebook-container").first.inner_text()  # no raw LaTeX left
    finally:
        page.close()
        lab.stop()

    # --- a student on a JupyterHub: their server runs in their home, whose Jupyter config names the course
    # and the exchange; they fetch (from the terminal, as `nbgrader fetch_assignment`), then open the tab
    home = tmp_path / "home"
    (home / ".jupyter").mkdir(parents=True)
    (home / ".jupyter" / "nbgrader_config.py").write_text(
        f'c = get_config()\nc.CourseDirectory.course_id = "llmcourse"\nc.Exchange.root = {str(course / "exchange")!r}\n'
    )
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"))
    env.pop("LLMCOURSE_COURSE_DIR", None)
    sh([str(BIN / "nbgrader"), "fetch_assignment", A], home, env)
    fetched_nb = home / A / f"{NB}.ipynb"
    nb = nbformat.read(fetched_nb, as_version=4)  # the student answers part 1 wrongly
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "softmax"]
    cell.source = WRONG_SOFTMAX
    nbformat.write(nb, fetched_nb)
    (tmp_path / "student" / "cfg").mkdir(parents=True)  # the server's JUPYTER_CONFIG_DIR (labkit.Lab)
    shutil.copy(home / ".jupyter" / "nbgrader_config.py", tmp_path / "student" / "cfg" / "nbgrader_config.py")
    lab = Lab("hub", tmp_path / "student", home=home)
    page = new_page(browser)
    try:
        page.goto(f"{lab.url}/lab?reset")
        page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
        page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
        fetched = page.locator("#fetched_assignments_list_placeholder, #fetched_assignments_list")
        row = page.locator("#fetched_assignments_list .list_item", has_text=A)
        try:
            row.first.wait_for(timeout=120_000)
        finally:
            screenshot(page, "8-student-assignments-tab")
        assert fetched.count() >= 1
        assert page.errors == [], page.errors
        assert "course directory root is not a subdirectory" not in lab.log()

        # --- the notebook's Validate button: the "expected ... got ..." of the failing part is readable
        page.goto(f"{lab.url}/lab/tree/{A}/{NB}.ipynb")
        page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for()
        page.locator(".jp-NotebookPanel:visible .jp-Toolbar", has_text="Validate").first.get_by_text("Validate").click()
        dialog = page.locator(".jp-Dialog", has_text="Validation Results")
        error = dialog.locator("pre", has_text="expected").first
        error.wait_for(timeout=WAIT_MS)  # nbgrader runs the notebook on the server first
        screenshot(page, "9-validate-dialog")
        shown = page.evaluate(FITS, error.element_handle())
        assert shown["found"], error.inner_text()
        assert shown["fits"], f"the dialog cuts 'expected ... got ...' off: {shown}"
        assert "along dim 0" in error.inner_text() and "tampered" not in dialog.inner_text()
    finally:
        page.close()
        lab.stop()
