"""The course as a static web site that reads without running (``make site``).

Lectures are committed without outputs, so a reader browsing ``course/`` sees no figure, and bertviz
draws only in a trusted, running notebook. This module runs every lecture once and writes what came
out as plain HTML pages, with an index::

    python -m llmcourse.toolbox.site OUT                                   # every lecture in course/
    python -m llmcourse.toolbox.site OUT --lecture course/04_attention.ipynb

Four steps per lecture, each one idea:

1. **Run it.** A fresh kernel executes the notebook in its own folder, as a reader would. The whole
   notebook gets a time budget (120 s, the lectures' budget in design.md): each cell may wait only for
   what is left of it. ``MPLBACKEND`` is removed from the kernel's environment, so matplotlib draws
   inline PNGs instead of nothing (``make test`` exports ``Agg``); hub downloads are switched off.
2. **Math without MathJax.** MathJax would come from a CDN. Each ``$...$`` and ``$$...$$`` of the
   markdown is drawn to SVG by matplotlib's mathtext and embedded in the page; a formula mathtext
   cannot parse stays as its TeX source, in ``<code>``.
3. **HTML.** nbconvert's ``lab`` template with every image embedded, then every ``<script src>`` and
   ``<link href>`` that points off the page is removed (require.js, MathJax, jQuery, the widget
   manager): the page must not even try the network. bertviz's views need none of it:
   :mod:`llmcourse.toolbox.bertviz_offline` put d3 and jQuery inside the output, so they draw. Widgets
   cannot run without a kernel; each one is replaced by a note saying so.
4. **Index.** ``index.html`` links every lecture with its title and how long it took to run.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import functools
import html
import io
import os
import re
import sys
import time
from pathlib import Path

import nbformat

from .packaged import write_atomic

BUDGET_S = 120.0  # a lecture's time budget (design.md, section 7)
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    '<div class="llmcourse-widget-note"><em>An interactive widget is here: it needs a running kernel. '
    "Open the notebook in Jupyter to use it.</em></div>"
)


class SiteError(RuntimeError):
    """A lecture that cannot become a page: it failed, ran over its budget, or is not a notebook."""


@dataclasses.dataclass(frozen=True)
class Page:
    """One lecture as built: where its page is, its title and how long it ran."""

    source: Path
    html_name: str
    title: str
    seconds: float


# ----------------------------------------------------------------------------------------------
# 1. run the lecture


def execute(path: Path, budget_s: float = BUDGET_S) -> tuple[nbformat.NotebookNode, float]:
    """Run the notebook at ``path`` top to bottom in a fresh kernel; (executed notebook, seconds)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:
        raise SiteError(f"{path}: not a readable notebook ({type(e).__name__}: {e})") from None
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # Agg would draw no figure
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # nothing may be downloaded
    deadline = time.monotonic() + budget_s

    def time_left(cell) -> int:
        # the budget is the whole notebook's: a cell may wait only for what the earlier ones left
        return max(1, int(deadline - time.monotonic()) + 1)

    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout_func=time_left,
        # kept, though widgets become notes on the page (prepare drops the state): with it off, nbclient's
        # Output-widget hook fails on the first clear_output (KeyError in widget_state, nbclient 0.11)
        store_widget_state=True,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    start = time.monotonic()
    try:
        client.execute(env=env)
    except CellTimeoutError:
        raise SiteError(f"{path.name}: did not finish within its {budget_s:.0f} s budget") from None
    except CellExecutionError as e:
        first = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
        raise SiteError(f"{path.name}: a cell failed: {first}") from None
    seconds = time.monotonic() - start
    if seconds > budget_s:  # the last cell may have finished just past the deadline
        raise SiteError(f"{path.name}: took {seconds:.0f} s, over its {budget_s:.0f} s budget")
    return nb, seconds


# ----------------------------------------------------------------------------------------------
# 2. math, drawn by matplotlib instead of MathJax

# code spans and fences first, so a `$` inside code is never taken for math
_CODE_OR_MATH = re.compile(
    r"(?P<fence>```.*?```)|(?P<code>`[^`\n]*`)|\$\$(?P<display>.+?)\$\$|(?<![\\$])\$(?P<inline>[^$\n]+?)\$",
    re.S,
)


# mathtext knows most of TeX's math but spells a few commands differently, or not at all
_TEX_SPELLINGS = [
    (re.compile(r"\\sqrt\s*([A-Za-z0-9])"), r"\\sqrt{\1}"),  # \sqrt d -> \sqrt{d}
    (re.compile(r"\\(ge|le)(?![a-zA-Z])"), r"\\\1q"),  # \ge -> \geq
    (re.compile(r"\\dots(?![a-zA-Z])"), r"\\ldots"),
    (re.compile(r"\\qquad(?![a-zA-Z])"), r"\\quad\\quad"),
    (re.compile(r"\\!"), ""),  # a negative thin space: nothing to see without it
    (re.compile(r"\s*\n\s*"), " "),
]


def mathtext_tex(tex: str) -> str:
    """TeX as matplotlib's mathtext spells it."""
    for pattern, replacement in _TEX_SPELLINGS:
        tex = pattern.sub(replacement, tex)
    return tex.strip()


@functools.lru_cache(maxsize=1024)
def math_svg(tex: str, fontsize: float = 12.0) -> str | None:
    """``tex`` (the inside of ``$...$``) as an SVG document, or None when mathtext cannot parse it."""
    import matplotlib

    matplotlib.use("Agg")  # drawing to a buffer needs no screen
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    buf = io.BytesIO()
    try:
        mathtext.math_to_image(f"${mathtext_tex(tex)}$", buf, prop=FontProperties(size=fontsize), format="svg")
    except ValueError:  # mathtext knows a subset of TeX (no \text, no environments)
        return None
    return buf.getvalue().decode("utf-8")


def _math_html(tex: str, display: bool) -> str:
    svg = math_svg(tex, 14.0 if display else 12.0)
    if svg is None:
        fence = "&#36;&#36;" if display else "&#36;"  # escaped, so the markdown renderer sees no math
        return f"<code>{fence}{html.escape(tex)}{fence}</code>"
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    img = (
        f'<img class="llmcourse-math" alt="{html.escape(tex, quote=True)}" '
        f'src="data:image/svg+xml;base64,{data}" style="vertical-align: middle">'
    )
    return f'<div style="text-align: center">{img}</div>' if display else img


def render_math(markdown: str) -> str:
    """Markdown with every formula replaced by an embedded SVG image (its TeX kept as ``alt``)."""

    def replace(m: re.Match) -> str:
        if m.group("fence") or m.group("code"):
            return m.group(0)
        if m.group("display") is not None:
            return _math_html(m.group("display"), display=True)
        return _math_html(m.group("inline"), display=False)

    return _CODE_OR_MATH.sub(replace, markdown)


# ----------------------------------------------------------------------------------------------
# 3. HTML that never reaches for the network

_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>\s*</script>", re.I)
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref=[\"']?(?:https?:)?//[^>]*>", re.I)
_REMOTE_IMPORT = re.compile(
    r"<script\b[^>]*type=[\"']module[\"'][^>]*>(?:(?!</script>).)*?https?://.*?</script>", re.I | re.S
)


def offline_html(page: str) -> str:
    """Remove every script and stylesheet the page would fetch from another host."""
    for pattern in (_REMOTE_SCRIPT, _REMOTE_LINK, _REMOTE_IMPORT):
        page = pattern.sub("", page)
    return page


def prepare(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """An executed notebook made fit for a static page: math drawn, widgets replaced by a note."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = render_math(cell.source)
        for output in cell.get("outputs", []):
            if WIDGET_MIME in output.get("data", {}):
                output["data"] = {"text/html": WIDGET_NOTE}
    nb.metadata.pop("widgets", None)
    return nb


def to_html(nb: nbformat.NotebookNode, title: str) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True)
    page, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    back = '<p style="margin: 1em 2em"><a href="index.html">&larr; all lectures</a></p>'
    body = re.search(r"<body\b[^>]*>", page)  # the link back goes first in the body
    page = page[: body.end()] + back + page[body.end() :] if body else back + page
    return offline_html(page)


def title_of(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first markdown heading, without its #s."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#+\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return fallback


# ----------------------------------------------------------------------------------------------
# 4. the site


def index_html(pages: list[Page]) -> str:
    rows = "\n".join(
        f'<li><a href="{html.escape(p.html_name)}">{html.escape(p.title)}</a> '
        f'<span class="meta">({html.escape(p.source.name)}, ran in {p.seconds:.0f} s)</span></li>'
        for p in pages
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LLM course: lectures</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 48em; margin: 2em auto; line-height: 1.5; padding: 0 1em }}
li {{ margin: 0.4em 0 }} .meta {{ color: #666; font-size: 0.9em }}
</style></head>
<body>
<h1>Large language models, piece by piece: the lectures</h1>
<p>Every lecture of <code>course/</code>, run once and saved with its outputs: figures, tables and the
bertviz attention views (they draw with no network). Widgets need a running kernel: open the notebooks
in Jupyter for those, and to change the code.</p>
<ul>
{rows}
</ul>
</body></html>
"""


def build(out: str | os.PathLike, lectures: list[Path], budget_s: float = BUDGET_S, log=print) -> list[Page]:
    """Run each lecture and write its page and ``index.html`` into ``out``; the pages, in order."""
    if not lectures:
        raise SiteError("no lectures to build")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pages = []
    for path in lectures:
        log(f"running {path.name} (budget {budget_s:.0f} s) ...")
        nb, seconds = execute(path, budget_s)
        title = title_of(nb, path.stem)
        page = Page(path, f"{path.stem}.html", title, seconds)
        write_atomic(out / page.html_name, to_html(prepare(nb), title))
        log(f"  {page.html_name}: {seconds:.1f} s")
        pages.append(page)
    write_atomic(out / "index.html", index_html(pages))
    log(f"site: {out / 'index.html'} ({len(pages)} lectures)")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmcourse.toolbox.site", description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder to write the site into (created)")
    parser.add_argument("--course", default="course", help="folder of the lecture notebooks (default: course)")
    parser.add_argument("--lecture", action="append", default=[], help="build only this notebook (repeatable)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds each lecture may run (default 120)")
    args = parser.parse_args(argv)
    lectures = [Path(p) for p in args.lecture] or sorted(Path(args.course).glob("*.ipynb"))
    missing = [str(p) for p in lectures if not p.is_file()]
    if missing:
        print(f"error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        build(args.out, lectures, args.budget)
    except SiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
