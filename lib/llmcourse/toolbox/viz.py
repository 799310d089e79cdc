"""Small plotting and widget helpers reused by the lecture notebooks (d2l style).

Plots
    plot_curve(xs, ys, ...)           one line, axes labelled, optional reference lines
    plot_lines(xs, {label: ys}, ...)  several lines with a legend
    plot_bars(labels, values, ...)    bars with their values written on top (grouped: {series: values})

Tokens
    token_html(tokens, ids)           tokens as coloured spans, ids on hover (or underneath),
                                      whitespace made visible, broken UTF-8 shown as hex
    tokenizer_html(tok, text)         the same plus counts, for static notebook output
    tokenizer_explorer({name: tok})   a live widget: type text, switch tokenizers

A tokenizer here is anything with ``encode_ordinary(text) -> list[int]`` and
``decode_tokens(ids) -> list[bytes]`` (``llmcourse.tokenization.Tokenizer``); a tiktoken
``Encoding`` works too (its ``decode_tokens_bytes`` is used).

matplotlib and ipywidgets are imported only when a helper needs them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

__all__ = [
    "FIGSIZE",
    "PALETTE",
    "plot_curve",
    "plot_lines",
    "plot_bars",
    "token_html",
    "tokenizer_html",
    "tokenizer_stats",
    "tokenizer_explorer",
]

FIGSIZE = (4.5, 3.0)  # small: lecture plots sit next to code

# the pastel colours of the OpenAI tokenizer page
PALETTE = (
    "rgba(107, 64, 216, 0.30)",
    "rgba(104, 222, 122, 0.40)",
    "rgba(244, 172, 54, 0.40)",
    "rgba(239, 65, 70, 0.40)",
    "rgba(39, 181, 234, 0.40)",
)

DEFAULT_TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune...\n"
    "Tokenization is at the heart of LLMs. 🤖 Ça marche? 1234567 + 89 = 1234656\n"
    "    def hello(name):  # code, indented with spaces\n"
    "        return f'hi {name}'"
)


# ----------------------------------------------------------------------------------------------
# plots


def _axes(ax=None, figsize=None):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize or FIGSIZE)
    return ax


def _decorate(ax, xlabel, ylabel, title, xscale, yscale, hlines, legend, xticks=None):
    for i, (label, y) in enumerate((hlines or {}).items()):
        ax.axhline(y, ls="--", lw=1, color=f"C{(i + 3) % 10}", label=label)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    # set_*scale resets the tick locators, so only call it when the scale changes
    if ax.get_xscale() != xscale:
        ax.set_xscale(xscale)
    if ax.get_yscale() != yscale:
        ax.set_yscale(yscale)
    if xticks is not None:  # exactly these ticks, labelled plainly (also on a log axis)
        from matplotlib.ticker import NullLocator

        ax.set_xticks(list(xticks), [f"{t:g}" for t in xticks])
        ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(True, alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    ax.figure.tight_layout()
    return ax


def plot_curve(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    label: str | None = None,
    marker: str = "o",
    xscale: str = "linear",
    yscale: str = "linear",
    hlines: Mapping[str, float] | None = None,
    xticks: Sequence[float] | None = None,
    ax=None,
    figsize=None,
):
    """One line ``ys`` against ``xs``; ``hlines={"label": y}`` adds dashed reference lines,
    ``xticks`` puts ticks exactly there (handy with ``xscale="log"``).

    Returns the matplotlib Axes (draw more on it, or pass it back in as ``ax``).
    """
    ax = _axes(ax, figsize)
    ax.plot(list(xs), list(ys), marker=marker, ms=4, label=label)
    return _decorate(ax, xlabel, ylabel, title, xscale, yscale, hlines, True, xticks)


def plot_lines(
    xs: Sequence[float] | Mapping[str, Sequence[float]],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    marker: str = "o",
    xscale: str = "linear",
    yscale: str = "linear",
    hlines: Mapping[str, float] | None = None,
    xticks: Sequence[float] | None = None,
    ax=None,
    figsize=None,
):
    """Several lines, one per ``series`` entry (label -> ys), with a legend.

    ``xs`` is shared, or a mapping label -> xs when the lines have their own x values.
    """
    ax = _axes(ax, figsize)
    for label, ys in series.items():
        x = xs[label] if isinstance(xs, Mapping) else xs
        ax.plot(list(x), list(ys), marker=marker, ms=4, label=label)
    return _decorate(ax, xlabel, ylabel, title, xscale, yscale, hlines, True, xticks)


def plot_bars(
    labels: Sequence[str],
    values: Sequence[float] | Mapping[str, Sequence[float]],
    *,
    ylabel: str | None = None,
    title: str | None = None,
    fmt: str = "{:,.0f}",
    yscale: str = "linear",
    ax=None,
    figsize=None,
):
    """A bar per label with its value written on top (``fmt``).

    ``values`` may be a mapping series -> values: then each label gets a group of bars, one per
    series, with a legend (e.g. two tokenizers compared on several texts).
    """
    ax = _axes(ax, figsize)
    labels = list(labels)
    series = dict(values) if isinstance(values, Mapping) else {None: values}
    width = 0.8 / len(series)
    for j, (name, vals) in enumerate(series.items()):
        vals = list(vals)
        if len(vals) != len(labels):
            raise ValueError(f"{len(labels)} labels but {len(vals)} values")
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(labels))]
        colour = [f"C{i % 10}" for i in range(len(labels))] if name is None else f"C{j}"
        bars = ax.bar(xs, vals, width=width, color=colour, label=name)
        ax.bar_label(bars, labels=[fmt.format(v) for v in vals], fontsize="x-small")
    ax.margins(y=0.15)
    _decorate(ax, None, ylabel, title, "linear", yscale, None, legend=len(series) > 1)
    ax.set_xticks(range(len(labels)), labels)
    ax.figure.tight_layout()
    return ax


# ----------------------------------------------------------------------------------------------
# tokens as HTML

_VISIBLE = {" ": "·", "\n": "↵", "\t": "⇥", "\r": "␍"}


def _segments(token: bytes) -> list[tuple[bool, str]]:
    """Split ``token`` into (is_text, piece): valid UTF-8 runs and hex for the bytes that are not
    (a multi-byte character cut between two tokens: b'\\xf0\\x9f' -> '\\xf0\\x9f' as hex)."""
    out: list[tuple[bool, str]] = []
    rest = bytes(token)
    while rest:
        try:
            out.append((True, rest.decode("utf-8")))
            break
        except UnicodeDecodeError as e:
            if e.start:
                out.append((True, rest[: e.start].decode("utf-8")))
            bad = rest[e.start : max(e.end, e.start + 1)]
            hexed = "".join(f"\\x{b:02x}" for b in bad)
            if out and not out[-1][0]:  # keep neighbouring bad bytes in one piece
                out[-1] = (False, out[-1][1] + hexed)
            else:
                out.append((False, hexed))
            rest = rest[e.start + len(bad) :]
    return out


def _token_inner(token: bytes) -> str:
    parts = []
    for is_text, piece in _segments(token):
        if not is_text:
            parts.append(f'<span style="color:#b00;font-size:85%">{html.escape(piece)}</span>')
            continue
        buf = []
        for ch in piece:
            if ch in _VISIBLE:
                buf.append(f'<span style="opacity:0.45">{_VISIBLE[ch]}</span>')
                if ch == "\n":
                    buf.append("\n")
            else:
                buf.append(html.escape(ch))
        parts.append("".join(buf))
    return "".join(parts)


def _token_title(token: bytes, idx: int) -> str:
    return html.escape(f"id {idx} | {token!r}", quote=True)


def token_html(tokens: Sequence[bytes], ids: Sequence[int], *, show_ids: bool = False) -> str:
    """Tokens as coloured spans, like the OpenAI tokenizer page.

    Hover a token to see its id and bytes; ``show_ids=True`` also writes each id under its token.
    Spaces show as ``·``, newlines as ``↵`` (and still break the line), tabs as ``⇥``; bytes that
    are not valid UTF-8 on their own show as red ``\\xNN``. Everything is HTML-escaped.
    """
    if len(tokens) != len(ids):
        raise ValueError(f"{len(tokens)} tokens but {len(ids)} ids")
    spans = []
    for i, (tok, idx) in enumerate(zip(tokens, ids)):
        colour = PALETTE[i % len(PALETTE)]
        inner = _token_inner(tok)
        title = _token_title(tok, idx)
        if show_ids:
            spans.append(
                f'<span title="{title}" style="display:inline-block;vertical-align:top;'
                f'text-align:center;margin:0 1px 2px 0">'
                f'<span style="background:{colour};border-radius:3px;padding:0 1px">{inner}</span>'
                f'<br><span style="font-size:70%;color:#555">{int(idx)}</span></span>'
            )
        else:
            spans.append(
                f'<span title="{title}" style="background:{colour};border-radius:3px;padding:1px 0">{inner}</span>'
            )
    return (
        '<div class="llmcourse-tokens" style="font-family:ui-monospace,Menlo,Consolas,monospace;'
        "white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.9;color:#111;"
        'background:#fff;padding:6px;border:1px solid #ddd;border-radius:4px">'
        + "<wbr>".join(spans)  # a line may break between tokens (spaces are drawn as ·)
        + "</div>"
    )


def _decode_tokens(tok, ids: list[int]) -> list[bytes]:
    if hasattr(tok, "decode_tokens"):
        return list(tok.decode_tokens(ids))
    return list(tok.decode_tokens_bytes(ids))  # a tiktoken Encoding


def tokenizer_stats(tok, text: str) -> dict:
    """``{"ids", "tokens", "n_tokens", "n_chars", "n_bytes", "chars_per_token", "bytes_per_token"}``."""
    ids = list(tok.encode_ordinary(text))
    tokens = _decode_tokens(tok, ids)
    n = len(ids)
    n_bytes = len(text.encode("utf-8"))
    return {
        "ids": ids,
        "tokens": tokens,
        "n_tokens": n,
        "n_chars": len(text),
        "n_bytes": n_bytes,
        "chars_per_token": len(text) / n if n else 0.0,
        "bytes_per_token": n_bytes / n if n else 0.0,
    }


def _summary_html(name: str | None, s: dict) -> str:
    head = f"<b>{html.escape(name)}</b>: " if name else ""
    return (
        f'<div style="margin:4px 0">{head}{s["n_tokens"]:,} tokens · {s["n_chars"]:,} characters'
        f" · {s['chars_per_token']:.2f} chars/token</div>"
    )


def tokenizer_html(tok, text: str, *, name: str | None = None, show_ids: bool = False) -> str:
    """Counts + coloured tokens of ``text`` under ``tok``: a static stand-in for the widget."""
    s = tokenizer_stats(tok, text)
    return _summary_html(name, s) + token_html(s["tokens"], s["ids"], show_ids=show_ids)


def tokenizer_explorer(tokenizers: Mapping[str, object], text: str = DEFAULT_TEXT, *, show_ids: bool = False):
    """A Textarea, buttons to switch tokenizer and the coloured tokens with their count.

    Returns an ``ipywidgets.VBox``; its ``.children`` are (buttons, textarea, checkbox, html).
    """
    import ipywidgets as w

    if not tokenizers:
        raise ValueError("tokenizer_explorer needs at least one tokenizer")
    names = list(tokenizers)
    choose = w.ToggleButtons(options=names, value=names[0], description="tokenizer")
    box = w.Textarea(value=text, layout=w.Layout(width="100%", height="8em"), continuous_update=True)
    ids_box = w.Checkbox(value=show_ids, description="show ids", indent=False)
    out = w.HTML()

    def render(*_):
        try:
            out.value = tokenizer_html(tokenizers[choose.value], box.value, name=choose.value, show_ids=ids_box.value)
        except Exception as e:  # a widget must not die on odd input; show why instead
            out.value = f"<pre style='color:#b00'>{html.escape(type(e).__name__ + ': ' + str(e))}</pre>"

    for widget in (choose, box, ids_box):
        widget.observe(render, names="value")
    render()
    return w.VBox([choose, box, ids_box, out])
