"""bertviz's head view and model view, drawn with no network at all.

bertviz (pinned 1.4.1) emits HTML that loads require.js 2.3.6, d3 5.7.0 and jQuery 2.0 from a
CDN, so on a laptop without internet, behind a proxy, or in a page exported from a notebook,
the view stays empty. Here we run bertviz's *own* code path (``head_view`` / ``model_view`` with
``html_action="return"``) and then make its output self-contained:

* the ``<script src=".../require.min.js">`` tag and bertviz's ``require.config({paths: ...})``
  (the CDN URLs) are removed;
* d3 v5 (shipped by the pinned package ``mpld3``: ``mpld3/js/d3.v5.min.js``) and jQuery
  (shipped by ``nbgrader``: ``formgrader/static/node_modules/jquery/dist/jquery.min.js``) are
  inlined, each run inside a function that hides any AMD ``define`` / CommonJS ``module`` of the
  host page, so they neither register with a page's RequireJS nor overwrite its ``d3``, ``$`` or
  ``jQuery`` (jQuery is taken back with ``noConflict(true)``). Both end up in one private global,
  ``window.__llmcourse_bertviz``, filled once per page however many views it shows;
* bertviz's script is wrapped in a function whose *local* ``require`` / ``requirejs`` shim
  resolves ``['jquery', 'd3']`` to those libraries. The page's own ``require`` (classic Notebook)
  or its absence (JupyterLab, a plain file) does not matter and is never touched.

A small notice ("JavaScript did not run ...") sits above each view and is removed by the script
once the view has drawn; if drawing throws, the notice shows the error instead. In an
untrusted notebook (scripts stripped) the notice stays, telling the reader what to do.

    >>> from llmcourse.toolbox.heads import minilm_attentions, sentence_attention
    >>> from llmcourse.toolbox import bertviz_offline as bv
    >>> attn, mask, tokens = minilm_attentions(["The cat sat on the mat."])
    >>> bv.head_view(sentence_attention(attn, mask, 0), tokens[0])      # draws in a notebook
    >>> html = bv.model_view_html(sentence_attention(attn, mask, 0), tokens[0])
    >>> bv.save_standalone(html, "model_view.html")                      # opens from file://

Attention weights are rounded to ``decimals`` (4) before they are written into the page, which
keeps the page small (a 6 x 12 head model on 13 tokens: ~0.54 MB, 0.33 MB of it d3 + jQuery).
"""

from __future__ import annotations

import functools
import html as _html
import re
from collections.abc import Sequence
from pathlib import Path

from .packaged import package_file, write_atomic

__all__ = [
    "head_view_html",
    "model_view_html",
    "save_standalone",
    "show",
    "head_view",
    "model_view",
    "standalone_page",
    "libraries_js",
    "LIBS_GLOBAL",
]

# the one global name the inlined libraries live under (per page, shared by every view)
LIBS_GLOBAL = "__llmcourse_bertviz"

_D3 = ("mpld3", "js/d3.v5.min.js")
_JQUERY = ("nbgrader", "server_extensions/formgrader/static/node_modules/jquery/dist/jquery.min.js")

_NOTICE = (
    "bertviz: JavaScript did not run, so the attention view is not drawn. In Jupyter, trust the "
    "notebook and re-run the cell: in JupyterLab, open the command palette (Ctrl+Shift+C, or View &gt; "
    "Activate Command Palette) and run <b>Trust Notebook</b>; or, in a terminal, <code>jupyter trust NOTEBOOK</code>. "
    "In a browser, allow scripts for this file."
)

# What bertviz 1.4.1 emits around its script (checked, so a bertviz upgrade fails loudly here
# instead of silently drawing nothing).
_REQUIRE_TAG = re.compile(r'<script\s+src="https?://[^"]*require[^"]*"\s*>\s*</script>', re.I)
_SCRIPT_OPEN = '<script type="text/javascript">'
_REQUIRE_CONFIG = re.compile(r"require\.config\(\s*\{.*?\}\s*\}\s*\);", re.S)
_ROOT_ID = re.compile(r'<div id="(bertviz-[0-9a-f]+)"')


# ----------------------------------------------------------------------------------------------
# the JavaScript libraries, read from installed packages


def _script_safe(js: str) -> str:
    """Text that can sit inside <script>...</script>: ``</script`` may only appear in strings,
    regexes or comments, where ``<\\/script`` means the same."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.I)


@functools.lru_cache(maxsize=1)
def libraries_js() -> str:
    """JavaScript that defines ``window.__llmcourse_bertviz = {d3, jquery}`` once per page,
    from the d3 and jQuery files inside the installed ``mpld3`` and ``nbgrader`` packages."""
    d3 = package_file(*_D3).read_text(encoding="utf-8")
    jquery = package_file(*_JQUERY).read_text(encoding="utf-8")
    return _script_safe(f"""
(function () {{
  var libs = window.{LIBS_GLOBAL} = window.{LIBS_GLOBAL} || {{}};
  if (libs.d3 && libs.jquery) return;
  /* d3 v5 (BSD-3-Clause, from the mpld3 package). Its UMD wrapper writes "this.d3";
     define/module/exports are hidden so a page's RequireJS never sees it. */
  var box = {{}};
  (function (define, module, exports) {{
{d3}
  }}).call(box);
  libs.d3 = box.d3;
  /* jQuery (MIT, from the nbgrader package); noConflict(true) gives back the page's $ and jQuery. */
  (function (define, module, exports) {{
{jquery}
  }}).call(window);
  libs.jquery = window.jQuery.noConflict(true);
}})();
""")


# ----------------------------------------------------------------------------------------------
# input checks


def _prepare(attention, tokens, decimals: int | None):
    """Per-layer float64 tensors of shape (1, H, T, T), rounded, checked against ``tokens``."""
    import torch

    if isinstance(attention, torch.Tensor) and attention.dim() == 5:  # stacked (L, 1, H, T, T)
        attention = list(attention)
    if not isinstance(attention, (list, tuple)) or len(attention) == 0:
        raise ValueError(
            "attention must be a non-empty list of per-layer tensors of shape (1, heads, T, T), "
            "as a Hugging Face model returns with output_attentions=True"
        )
    out = []
    for i, a in enumerate(attention):
        a = torch.as_tensor(a).detach().to("cpu", torch.float64)
        if a.dim() == 3:
            a = a.unsqueeze(0)
        if a.dim() != 4 or a.shape[-1] != a.shape[-2]:
            raise ValueError(f"attention[{i}] has shape {tuple(a.shape)}; expected (1, heads, T, T)")
        if a.shape[0] != 1:
            raise ValueError(
                f"attention[{i}] has batch size {a.shape[0]}; bertviz shows one sequence: "
                "pass [a[i:i+1] for a in attention] (llmcourse.toolbox.heads.sentence_attention "
                "also strips the padding)"
            )
        if out and a.shape[1:] != out[0].shape[1:]:
            raise ValueError(f"attention[{i}] has shape {tuple(a.shape)}, attention[0] {tuple(out[0].shape)}")
        if decimals is not None:
            a = a.round(decimals=decimals)
        out.append(a)
    tokens = [str(t) for t in tokens]
    if len(tokens) != out[0].shape[-1]:
        raise ValueError(f"{len(tokens)} tokens but the attention covers {out[0].shape[-1]} positions")
    return out, tokens


# ----------------------------------------------------------------------------------------------
# making bertviz's output self-contained


def _offline(bertviz_html: str) -> str:
    """bertviz's returned HTML (require.js tag + container + script) -> self-contained HTML."""
    html, n = _REQUIRE_TAG.subn("", bertviz_html, count=1)
    start = html.find(_SCRIPT_OPEN)
    end = html.rfind("</script>")
    root = _ROOT_ID.search(html)
    if n != 1 or start < 0 or end < start or root is None:
        raise RuntimeError(
            "bertviz's HTML is not laid out as bertviz 1.4.1 writes it; "
            "llmcourse.toolbox.bertviz_offline needs updating for this bertviz version"
        )
    container = html[:start].strip()
    vis_js, m = _REQUIRE_CONFIG.subn("", html[start + len(_SCRIPT_OPEN) : end], count=1)
    if m != 1 or "requirejs(['jquery', 'd3']" not in vis_js.replace('"', "'"):
        raise RuntimeError(
            "bertviz's script does not load ['jquery', 'd3'] through require.config "
            "as in bertviz 1.4.1; llmcourse.toolbox.bertviz_offline needs updating"
        )
    root_id = root.group(1)
    wrap_id = f"llmcourse-{root_id}"
    script = f"""
(function () {{
  var wrap = document.getElementById("{wrap_id}");
  var notice = wrap && wrap.querySelector(".llmcourse-bertviz-notice");
  try {{
    var libs = window.{LIBS_GLOBAL};
    /* a local require/requirejs: resolves bertviz's ['jquery', 'd3'] to the inlined copies */
    var requirejs = function (deps, callback) {{
      return callback.apply(null, deps.map(function (name) {{
        if (!libs || !libs[name]) throw new Error("bertviz asked for the library '" + name + "', which is not inlined");
        return libs[name];
      }}));
    }};
    var require = requirejs;
    require.config = function () {{}};
    /* ---- bertviz's script (bertviz 1.4.1, Apache-2.0), its require.config removed ---- */
{vis_js}
    /* ---- end of bertviz ---- */
    if (notice) notice.parentNode.removeChild(notice);
    if (wrap) wrap.setAttribute("data-drawn", "true");
  }} catch (err) {{
    if (notice) notice.textContent = "bertviz failed to draw: " + err;
    if (wrap) wrap.setAttribute("data-error", String(err));
    throw err;
  }}
}})();
"""
    return (
        f'<div class="llmcourse-bertviz" id="{wrap_id}" style="overflow-x:auto;max-width:100%">\n'
        f'<div class="llmcourse-bertviz-notice" style="color:#a33;font:13px sans-serif;margin:4px 0">{_NOTICE}</div>\n'
        f"{container}\n"
        f'<script type="text/javascript">\n{libraries_js()}\n</script>\n'
        f'<script type="text/javascript">\n{_script_safe(script)}\n</script>\n'
        f"</div>\n"
    )


def head_view_html(
    attention: Sequence,
    tokens: Sequence[str],
    *,
    layer: int | None = None,
    heads: Sequence[int] | None = None,
    sentence_b_start: int | None = None,
    include_layers: Sequence[int] | None = None,
    prettify_tokens: bool = True,
    decimals: int | None = 4,
) -> str:
    """Self-contained HTML of bertviz's head view (lines from each token to the tokens it
    attends to, one colour per head).

    attention: per-layer tensors of shape (1, H, T, T) (a Hugging Face model's ``.attentions``
    with ``output_attentions=True``; (H, T, T) is accepted too). tokens: the T token strings.
    layer: the layer shown first; heads: the heads selected first (default all);
    sentence_b_start: index of sentence B's first token, for a sentence pair.
    """
    from bertviz import head_view as _bv_head_view

    attention, tokens = _prepare(attention, tokens, decimals)
    out = _bv_head_view(
        attention=attention,
        tokens=tokens,
        sentence_b_start=sentence_b_start,
        prettify_tokens=prettify_tokens,
        layer=layer,
        heads=list(heads) if heads is not None else None,
        include_layers=list(include_layers) if include_layers is not None else None,
        html_action="return",
    )
    return _offline(out.data)


def model_view_html(
    attention: Sequence,
    tokens: Sequence[str],
    *,
    include_layers: Sequence[int] | None = None,
    include_heads: Sequence[int] | None = None,
    sentence_b_start: int | None = None,
    display_mode: str = "light",
    prettify_tokens: bool = True,
    decimals: int | None = 4,
) -> str:
    """Self-contained HTML of bertviz's model view: a grid of thumbnails, one per (layer, head);
    click one to enlarge it. ``display_mode`` is "light" (default here) or "dark" (bertviz's)."""
    from bertviz import model_view as _bv_model_view

    if display_mode not in ("light", "dark"):
        raise ValueError(f"display_mode must be 'light' or 'dark', not {display_mode!r}")
    attention, tokens = _prepare(attention, tokens, decimals)
    out = _bv_model_view(
        attention=attention,
        tokens=tokens,
        sentence_b_start=sentence_b_start,
        prettify_tokens=prettify_tokens,
        display_mode=display_mode,
        include_layers=list(include_layers) if include_layers is not None else None,
        include_heads=list(include_heads) if include_heads is not None else None,
        html_action="return",
    )
    return _offline(out.data)


# ----------------------------------------------------------------------------------------------
# output


def standalone_page(html: str, title: str = "bertviz") -> str:
    """A complete HTML document around a view (or several, concatenated)."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_html.escape(title)}</title>\n</head>\n"
        '<body style="margin:16px;background:#fff">\n'
        f"{html}\n</body>\n</html>\n"
    )


def save_standalone(html: str, path, title: str = "bertviz") -> Path:
    """Write ``html`` (one or more views) as a complete page that draws when opened from file://,
    with no network. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, standalone_page(html, title))


def show(html: str) -> None:
    """Display a view in a notebook (it draws once the notebook is trusted)."""
    from IPython.display import HTML, display

    display(HTML(html))


def head_view(attention, tokens, **kw) -> None:
    """Display bertviz's head view inline (see :func:`head_view_html` for the arguments)."""
    show(head_view_html(attention, tokens, **kw))


def model_view(attention, tokens, **kw) -> None:
    """Display bertviz's model view inline (see :func:`model_view_html` for the arguments)."""
    show(model_view_html(attention, tokens, **kw))
