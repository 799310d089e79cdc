"""bertviz offline (llmcourse.toolbox.bertviz_offline), checked in a real browser with networking off.

Headless Chromium (Debian's /usr/bin/chromium) opens each page with every route out blocked
(a dead proxy and a resolver that resolves nothing), runs its JavaScript, and hands back the DOM
(``--dump-dom``) and a screenshot (``--screenshot``). We count the SVG lines and boxes bertviz drew
inside its container and look at the pixels. Pages and screenshots are kept in
``test-artifacts/bertviz/`` for a human to look at.

Four ways a view is shown:
* a standalone page opened from file://  (``save_standalone``)
* a fragment inserted the way JupyterLab inserts a trusted text/html output (innerHTML, then each
  <script> re-created), on a page without ``require`` and on one with a RequireJS-like
  ``define``/``require`` and its own ``$``/``jQuery``/``d3`` (classic Notebook)
* the same with the scripts stripped (an untrusted notebook): the "trust the notebook" notice shows
* a real JupyterLab server with a trusted notebook whose outputs ``bertviz_offline.head_view`` and
  ``model_view`` produced in a kernel.

Control: bertviz's own HTML, under the same blocking, draws nothing (so the blocking holds and
the fix is needed).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import REPO, chromium, free_port, wait_for_jupyter
from llmcourse.toolbox import bertviz_offline as bv
from llmcourse.toolbox.heads import minilm_attentions, previous_token_scores, sentence_attention, top_heads

ARTIFACTS = REPO / "test-artifacts" / "bertviz"
SENTENCE = "The cat sat on the mat because it was warm."

# d3's schemeCategory10: bertviz colours head h (head view) / layer l (model view) with entry h / l
CATEGORY10 = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]

# http(s) strings allowed in a page: XML namespace names inside d3 (never fetched), d3's licence
# banner, and the credit in bertviz's header comment. Anything else fails the test.
ALLOWED_URLS = {
    "http://www.w3.org/1999/xhtml",
    "http://www.w3.org/1999/xlink",
    "http://www.w3.org/2000/svg",
    "http://www.w3.org/2000/xmlns/",
    "http://www.w3.org/XML/1998/namespace",
    "https://d3js.org",
    "https://github.com/tensorflow/tensor2tensor/blob/master/tensor2tensor/visualization/attention.js",
}

BASE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
]
# every connection goes to a dead proxy, and no host name resolves
NO_NETWORK = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND"]
# the same, except 127.0.0.1 (a local JupyterLab) is reached directly
LOOPBACK_ONLY = [
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


# ----------------------------------------------------------------------------------------------
# the browser


def run_chromium(
    url: str, tmp: Path, *args: str, network=NO_NETWORK, budget_ms: int = 3000, timeout: float = 120
) -> subprocess.CompletedProcess:
    profile = tmp / f"chromium-profile-{time.monotonic_ns()}"
    cmd = [
        chromium(),
        *BASE_FLAGS,
        *network,
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        *args,
        url,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0:
        raise AssertionError(f"chromium exited {proc.returncode} on {url}\n{proc.stderr[-3000:]}")
    return proc


def browse(url: str, tmp: Path, png: Path | None = None, size=(1000, 800), **kw) -> str:
    """Open ``url``, let its scripts run, return the DOM; with ``png``, also save a screenshot
    (one Chromium run does both)."""
    args = ["--dump-dom", f"--window-size={size[0]},{size[1]}"]
    if png is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        png.unlink(missing_ok=True)
        args.append(f"--screenshot={png}")
    dom = run_chromium(url, tmp, *args, **kw).stdout
    assert "<html" in dom, f"chromium returned no DOM for {url}"
    if png is not None:
        assert png.is_file(), f"chromium saved no screenshot at {png}"
    return dom


class BertvizViews(HTMLParser):
    """Every bertviz container in a DOM dump: ``div.llmcourse-bertviz`` (ours) or ``div#bertviz-*``
    (bertviz's own), with the tags drawn inside it and its state attributes."""

    def __init__(self, dom: str):
        super().__init__()
        self.views: list[dict] = []
        self._open: list[list] = []  # [view, div depth]
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for entry in self._open:
            entry[0]["tags"][tag] += 1
            if tag == "div":
                entry[1] += 1
            if "llmcourse-bertviz-notice" in (a.get("class") or "").split():
                entry[0]["notice"] = True
        if tag == "div":
            ours = "llmcourse-bertviz" in (a.get("class") or "").split()
            theirs = (a.get("id") or "").startswith("bertviz-") and not any(e[0]["ours"] for e in self._open)
            if ours or theirs:
                view = {
                    "id": a.get("id"),
                    "ours": ours,
                    "drawn": a.get("data-drawn") == "true",
                    "error": a.get("data-error"),
                    "notice": False,
                    "tags": Counter(),
                }
                self.views.append(view)
                self._open.append([view, 1])

    def handle_endtag(self, tag):
        if tag != "div":
            return
        for entry in self._open:
            entry[1] -= 1
        self._open = [e for e in self._open if e[1] > 0]


class ScriptTags(HTMLParser):
    """The <script> elements of a page, as a browser's tokenizer sees them."""

    def __init__(self, html: str):
        super().__init__()
        self.count = self.with_src = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.count += 1
            self.with_src += any(name == "src" for name, _ in attrs)


def ours(dom: str) -> list[dict]:
    return [v for v in BertvizViews(dom).views if v["ours"]]


def assert_drawn(view: dict, lines: int, where: str):
    assert view["error"] is None, f"{where}: bertviz raised: {view['error']}"
    assert view["drawn"] and not view["notice"], f"{where}: the view's script did not finish: {view}"
    tags = view["tags"]
    assert tags["svg"] >= 1, f"{where}: no <svg> drawn: {dict(tags)}"
    assert tags["line"] == lines, f"{where}: {tags['line']} attention lines drawn, expected {lines}"
    assert tags["rect"] >= 10 and tags["text"] >= 10, f"{where}: token boxes/labels missing: {dict(tags)}"


def colour_pixels(png: Path, hex_colour: str, tol: int = 40) -> int:
    from PIL import Image

    target = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    im = Image.open(png).convert("RGB")
    return sum(n for n, rgb in im.getcolors(1 << 24) if max(abs(c - t) for c, t in zip(rgb, target)) <= tol)


def ink_fraction(png: Path) -> float:
    """Fraction of pixels that are not (near) white."""
    from PIL import Image

    im = Image.open(png).convert("L")
    hist = im.histogram()
    return 1 - sum(hist[245:]) / (im.width * im.height)


# ----------------------------------------------------------------------------------------------
# what is rendered


@pytest.fixture(scope="module")
def rendered():
    attn, mask, tokens = minilm_attentions([SENTENCE])
    attn, tokens = sentence_attention(attn, mask, 0), tokens[0]
    layer, head, score = top_heads(previous_token_scores(attn), 1)[0]
    assert score > 0.5  # MiniLM's previous-token head: the one the head view shows first
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    head_html = bv.head_view_html(attn, tokens, layer=layer, heads=[head])
    model_html = bv.model_view_html(attn, tokens)
    return {
        "attn": attn,
        "tokens": tokens,
        "layer": layer,
        "head": head,
        "L": len(attn),
        "H": attn[0].shape[1],
        "T": len(tokens),
        "head_html": head_html,
        "model_html": model_html,
        "head_page": bv.save_standalone(head_html, ARTIFACTS / "head_view.html", title="head view"),
        "model_page": bv.save_standalone(model_html, ARTIFACTS / "model_view.html", title="model view"),
    }


def test_html_is_self_contained(rendered):
    for key in ("head_html", "model_html"):
        html = rendered[key]
        assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I), f"{key} loads a script file"
        assert not re.search(
            r"<(?:link|img|iframe)[^>]*(?:href|src)\s*=\s*['\"]?(?:https?:)?//|@import|"
            r"url\(\s*['\"]?(?:https?:)?//",
            html,
            re.I,
        ), f"{key} loads a resource"
        assert not re.search(r"require\.config\(\s*\{", html), f"{key} still configures require.js paths"
        assert "cdnjs" not in html and "require.min.js" not in html
        assert not re.search(r"""(?:paths|src|href)\s*[:=]\s*['"]https?:""", html), f"{key} points at a URL"
        urls = set(re.findall(r"https?://[^\s\"'<>)\\]+", html))
        assert urls <= ALLOWED_URLS, f"{key} mentions unexpected URLs: {urls - ALLOWED_URLS}"
        assert "requirejs(['jquery', 'd3']" in html  # bertviz's own script, resolved by the shim
        scripts = ScriptTags(html)
        assert scripts.count == 2 and scripts.with_src == 0  # the libraries, then bertviz (inline)
    page = rendered["head_page"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_bad_input_is_refused(rendered):
    attn, tokens = rendered["attn"], rendered["tokens"]
    with pytest.raises(ValueError, match="tokens"):
        bv.head_view_html(attn, tokens[:-1])
    with pytest.raises(ValueError, match="batch size 2"):
        bv.model_view_html([a.expand(2, -1, -1, -1) for a in attn], tokens)
    with pytest.raises(ValueError, match=r"expected \(1, heads, T, T\)"):
        bv.head_view_html([a[0, 0] for a in attn], tokens)
    with pytest.raises(ValueError, match="non-empty list"):
        bv.head_view_html([], tokens)


def test_bertviz_alone_draws_nothing_offline(rendered, tmp_path):
    """The control: bertviz's own output needs its CDN, which the test browser cannot reach."""
    from bertviz import head_view

    raw = head_view(rendered["attn"], rendered["tokens"], html_action="return").data
    page = tmp_path / "bertviz_raw.html"
    page.write_text(bv.standalone_page(raw), encoding="utf-8")
    views = BertvizViews(
        browse(page.as_uri(), tmp_path, png=ARTIFACTS / "bertviz_alone_offline.png", size=(700, 300))
    ).views
    assert len(views) == 1 and views[0]["tags"]["line"] == 0 and views[0]["tags"]["svg"] == 0
    assert ink_fraction(ARTIFACTS / "bertviz_alone_offline.png") < 0.002  # a blank page


def test_head_view_draws_in_browser(rendered, tmp_path):
    r = rendered
    url = r["head_page"].as_uri()
    png = ARTIFACTS / "head_view.png"
    (view,) = ours(browse(url, tmp_path, png=png, size=(700, 420)))
    # one line per (head, query, key) of the shown layer; unselected heads are drawn transparent
    assert_drawn(view, r["H"] * r["T"] ** 2, "head view")
    assert png.stat().st_size > 5000 and ink_fraction(png) > 0.01
    # the selected head's lines, in its colour (green for head 2): MiniLM's previous-token head
    assert colour_pixels(png, CATEGORY10[r["head"] % 10]) > 300, "the selected head's lines are not visible"


def test_model_view_draws_in_browser(rendered, tmp_path):
    r = rendered
    url = r["model_page"].as_uri()
    png = ARTIFACTS / "model_view.png"
    (view,) = ours(browse(url, tmp_path, png=png, size=(1000, 680)))
    assert_drawn(view, r["L"] * r["H"] * r["T"] ** 2, "model view")  # every thumbnail, every line
    assert png.stat().st_size > 5000 and ink_fraction(png) > 0.1
    for layer in range(r["L"]):  # every layer's row of thumbnails in its colour
        assert colour_pixels(png, CATEGORY10[layer]) > 200, f"layer {layer}'s thumbnails are not visible"


# ----------------------------------------------------------------------------------------------
# embedded like a notebook output

HOSTS = {
    # JupyterLab: no require, no define, no global $ or d3
    "jupyterlab": "",
    # classic Notebook: an AMD loader that must not be used, and the page's own $ / jQuery / d3
    "classic": """
      var amdCalls = 0;
      function define() { amdCalls++; } define.amd = {jQuery: true};
      function require() { amdCalls++; throw new Error("the host's require was called"); }
      var requirejs = require;
      window.$ = "host $"; window.jQuery = "host jQuery"; window.d3 = "host d3";
    """,
}

EMBED = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>notebook-like host</title></head>
<body style="margin:16px;background:#fff">
<script>{host}</script>
<div id="outputs"></div>
<script>
  var fragments = {fragments};
  var outputs = document.getElementById("outputs");
  fragments.forEach(function (html) {{
    var area = document.createElement("div");
    area.className = "output-area";
    area.innerHTML = html;  /* innerHTML never runs scripts ... */
    outputs.appendChild(area);
    if ({trusted}) {{       /* ... so, like JupyterLab's evalInnerHTMLScriptTags, re-create them */
      Array.from(area.getElementsByTagName("script")).forEach(function (script) {{
        var clone = document.createElement("script");
        Array.from(script.attributes).forEach(function (a) {{ clone.setAttribute(a.name, a.value); }});
        clone.textContent = script.textContent;
        script.parentNode.replaceChild(clone, script);
      }});
    }} else {{              /* an untrusted notebook: the sanitizer drops scripts */
      Array.from(area.getElementsByTagName("script")).forEach(function (s) {{ s.remove(); }});
    }}
  }});
  document.body.setAttribute("data-host-ok", String(
    typeof amdCalls === "undefined" ||
    (amdCalls === 0 && window.$ === "host $" && window.jQuery === "host jQuery" && window.d3 === "host d3")));
</script>
</body></html>
"""


@pytest.mark.parametrize("host, trusted", [("jupyterlab", True), ("classic", True), ("jupyterlab", False)])
def test_embedded_like_a_notebook_output(rendered, tmp_path, host, trusted):
    r = rendered
    fragments = json.dumps([r["head_html"], r["model_html"]]).replace("</", "<\\/")
    page = tmp_path / f"embed_{host}_{'trusted' if trusted else 'untrusted'}.html"
    page.write_text(EMBED.format(host=HOSTS[host], fragments=fragments, trusted=str(trusted).lower()), encoding="utf-8")
    shutil.copy(page, ARTIFACTS / page.name)
    dom = browse(page.as_uri(), tmp_path, png=ARTIFACTS / page.with_suffix(".png").name, size=(1000, 1400))
    views = ours(dom)
    assert len(views) == 2
    if trusted:
        assert 'data-host-ok="true"' in dom, "the view touched the host page's require/define/$/jQuery/d3"
        assert_drawn(views[0], r["H"] * r["T"] ** 2, f"head view in a {host} output")
        assert_drawn(views[1], r["L"] * r["H"] * r["T"] ** 2, f"model view in a {host} output")
    else:
        for v in views:
            assert v["notice"] and not v["drawn"] and v["tags"]["line"] == 0
        assert "trust the notebook" in dom.lower()


# ----------------------------------------------------------------------------------------------
# a real JupyterLab, a trusted notebook

NOTEBOOK_CODE = """\
import torch
from llmcourse.toolbox import bertviz_offline as bv
torch.manual_seed(0)
L, H, tokens = 2, 12, ["[CLS]", "the", "cat", "sat", "down", ".", "[SEP]"]
T = len(tokens)
attn = [torch.softmax(3 * torch.randn(1, H, T, T), dim=-1) for _ in range(L)]
bv.head_view(attn, tokens, heads=[0, 1])"""


def test_draws_in_a_trusted_jupyterlab_notebook(tmp_path):
    import nbclient
    import nbformat
    from nbformat.sign import NotebookNotary

    chromium()  # fail early, with the set-up hint, if there is no browser
    root = tmp_path / "lab"
    root.mkdir()
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
    )
    # no "get news?" pop-up over the screenshot
    settings = tmp_path / "cfg/lab/user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"fetchNews": "false"}')
    port = free_port()
    lab = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "lab.log", "w"),
    )
    try:
        # meanwhile: run the notebook in a kernel, as a student would, then trust it
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK_CODE), nbformat.v4.new_code_cell("bv.model_view(attn, tokens)")]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
        for cell in nb.cells:
            (out,) = cell.outputs
            assert out.output_type == "display_data" and "llmcourse-bertviz" in out.data["text/html"]
        Path(env["JUPYTER_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        NotebookNotary(data_dir=env["JUPYTER_DATA_DIR"]).sign(nb)  # what `jupyter trust` does
        nbformat.write(nb, root / "views.ipynb")

        wait_for_jupyter(f"http://127.0.0.1:{port}", lab, tmp_path / "lab.log")

        url = f"http://127.0.0.1:{port}/lab/tree/views.ipynb?reset"
        png = ARTIFACTS / "jupyterlab.png"
        dom = browse(url, tmp_path, png=png, size=(1200, 1000), network=LOOPBACK_ONLY, budget_ms=15000)
        views = ours(dom)
        assert len(views) == 2, f"found {len(views)} bertviz outputs in JupyterLab's page"
        assert "jp-OutputArea-output" in dom
        L, H, T = 2, 12, 7
        assert_drawn(views[0], H * T * T, "head view in JupyterLab")
        assert_drawn(views[1], L * H * T * T, "model view in JupyterLab")
        assert colour_pixels(png, CATEGORY10[0]) > 300 and colour_pixels(png, CATEGORY10[1]) > 300
    finally:
        lab.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()
