"""Helpers of the browser walks: JupyterLab started the README's way, and headless Chromium driving it
with every route off this machine blocked (Playwright for Python on Debian's ``chromium``, no browser
download; the approach of JupyterLab's own Galata tests).

A server is started from the command ``make -n start`` (or ``make -n lab``) prints, so the walk
follows the Makefile: if the recipe loses its environment (the venv on PATH, no MPLBACKEND) the walk
sees what a student would. Only the folder it serves, the port and the token-less login are changed.

Waits are on conditions (a selector, a cell's prompt number, a file's content), never on sleeps, and
generous: the CI box has two cores and may be busy. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import urllib.request
from pathlib import Path

import pytest
from conftest import BIN, REPO, chromium, free_port, wait_for_jupyter

ARTIFACTS = REPO / "test-artifacts" / "browser"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # every connection goes to a dead proxy and no host name resolves; 127.0.0.1 (the Lab) is reached
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
WAIT_MS = 300_000  # a wait for the kernel (torch imports, a lecture run) on a busy 2-core machine
# 04's softmax as a student first writes it: right on rows, wrong on columns (the tests type it into Lab)
WRONG_SOFTMAX = """def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    m = x.amax(dim=-1, keepdim=True)  # forgets `dim`: right on rows, wrong on columns
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    s = e.sum(dim=-1, keepdim=True)
    return e / torch.where(s == 0, torch.ones_like(s), s)"""
VENV_BIN = str(BIN)


def make_command(target: str) -> str:
    """The line of ``make -n TARGET`` that starts JupyterLab: the exact command the README's path runs."""
    out = subprocess.run(["make", "-n", "-s", target], cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines() if re.search(r"\bjupyter lab\b", line)]
    assert len(lines) == 1, f"`make -n {target}` starts no (or several) JupyterLab: {out.stdout}\n{out.stderr}"
    return lines[0]


class Lab:
    """A JupyterLab server started by ``make``'s command line, serving ``root`` (None: as written)."""

    def __init__(
        self,
        target: str,
        state: Path,
        root: Path | None = None,
        course_dir: Path | None = None,
        home: Path | None = None,
    ):
        """``target``: a Makefile target, or ``"hub"``: a student's server on a JupyterHub, ``jupyter lab``
        started in their ``home`` (its working folder and HOME), which holds their nbgrader_config.py."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        state.mkdir(parents=True, exist_ok=True)
        self.log_path = state / f"lab-{target}-{self.port}.log"
        if target == "hub":
            assert home is not None, "a hub server runs in a student's home"
            command, root = f"{shlex.quote(VENV_BIN)}/jupyter lab --notebook-dir={shlex.quote(str(home))}", None
        else:
            command = make_command(target)
        if root is not None:
            command, n = re.subn(r"--notebook-dir=\S+", f"--notebook-dir={shlex.quote(str(root))}", command)
            assert n == 1, f"no --notebook-dir in {command}"
        command += f" --no-browser --allow-root --port={self.port} --ServerApp.token= --ServerApp.password="
        command += " --LabApp.news_url=None"
        # The calling shell of a student: MPLBACKEND=Agg exported (as `make test` does) and the venv NOT on
        # PATH, so plots and `llmcourse` in the terminal work only if the recipe itself sees to them.
        path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != VENV_BIN)
        env = dict(os.environ, MPLBACKEND="Agg", PATH=path, HF_HUB_OFFLINE="1")
        # Jupyter's state in this test's folder, never the machine's home or the checkout's .jupyter
        for var, sub in [("JUPYTER_CONFIG_DIR", "cfg"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "rt")]:
            env[var] = str(state / sub)
        env["IPYTHONDIR"] = str(state / "ipython")
        if course_dir is not None:
            env["LLMCOURSE_COURSE_DIR"] = str(course_dir)
        if home is not None:
            env["HOME"] = str(home)
        settings = state / "cfg/lab/user-settings/@jupyterlab"
        for name, value in [
            ("apputils-extension/notification", {"fetchNews": "false"}),  # no "get news?" toast on screenshots
            ("notebook-extension/tracker", {"windowingMode": "none"}),  # every cell in the DOM, for the locators
        ]:
            (settings / f"{name}.jupyterlab-settings").parent.mkdir(parents=True, exist_ok=True)
            (settings / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
        self.command = command
        self.proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=home or REPO,  # `make` runs recipes in the repository: nbgrader_config.py is read from here
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "w"),
            start_new_session=True,
        )
        try:
            wait_for_jupyter(self.url, self.proc, self.log_path, seconds=180)
        except AssertionError as e:
            self.stop()
            raise AssertionError(f"JupyterLab did not start: {command}\n{e}") from None
        # no token, so the server wants its XSRF cookie echoed on POST/DELETE, as the Lab's own page does
        with urllib.request.urlopen(f"{self.url}/lab", timeout=60) as response:
            cookies = [v.split(";")[0] for k, v in response.headers.items() if k.lower() == "set-cookie"]
        self.cookie = "; ".join(cookies)
        xsrf = [c.split("=", 1)[1] for c in cookies if c.startswith("_xsrf=")]
        assert xsrf, f"JupyterLab set no _xsrf cookie: {cookies}"
        self.headers = {"Cookie": self.cookie, "X-XSRFToken": xsrf[0]}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=self.headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # the server shuts its kernels and terminals down on SIGTERM
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)  # its own session: the server and the kernels it started
                self.proc.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
        yield b
        b.close()


def new_page(browser, viewport=(1280, 1000)):
    """A page that may reach only 127.0.0.1; anything else is aborted and recorded in ``page.external``."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.set_default_timeout(WAIT_MS)
    page.external, page.errors = [], []

    def route(r):
        if r.request.url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")):
            r.continue_()
        else:
            page.external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)
