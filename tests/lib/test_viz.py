"""llmcourse.toolbox.viz: the plots hold the data they were given, token HTML shows every byte, the
explorer widget re-renders on every change. Nothing is displayed (MPLBACKEND=Agg, widgets unrendered)."""

from __future__ import annotations

import html as _html
import re

import matplotlib
import pytest
from llmcourse.toolbox import viz

matplotlib.use("Agg")  # before pyplot: no display, whatever the environment says
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def lines_of(ax) -> dict:
    """label -> (xs, ys) of each drawn line, reference lines included."""
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


# ----------------------------------------------------------------------------------------------
# plots


def test_plot_curve_draws_the_data_with_labels_and_reference_lines():
    ax = viz.plot_curve(
        [1, 2, 4],
        [10.0, 5.0, 2.5],
        xlabel="merges",
        ylabel="tokens",
        title="compression",
        label="ours",
        hlines={"cl100k": 3.0},
    )
    assert ax.get_xlabel() == "merges" and ax.get_ylabel() == "tokens" and ax.get_title() == "compression"
    got = lines_of(ax)
    assert got["ours"] == ([1, 2, 4], [10.0, 5.0, 2.5])
    assert got["cl100k"][1] == [3.0, 3.0]  # a horizontal line at y = 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ours", "cl100k"]


def test_plot_curve_log_axis_with_exact_ticks():
    ax = viz.plot_curve([256, 1024, 4096], [1.0, 2.0, 3.0], xscale="log", xticks=[256, 1024, 4096])
    assert ax.get_xscale() == "log"
    assert list(ax.get_xticks()) == [256, 1024, 4096]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["256", "1024", "4096"]
    assert ax.xaxis.get_minor_ticks() == []  # no unlabelled log minor ticks


def test_plot_curve_accepts_iterables_and_draws_on_a_given_axes():
    fig, given = plt.subplots()
    ax = viz.plot_curve(range(3), (y * y for y in range(3)), ax=given)
    assert ax is given and ax.get_legend() is None  # no label, no legend
    assert lines_of(ax)["_child0"] == ([0, 1, 2], [0, 1, 4])


def test_plot_lines_one_line_per_series_with_shared_or_own_xs():
    ax = viz.plot_lines([1, 2, 3], {"train": [3, 2, 1], "val": [4, 3, 3]}, yscale="log")
    assert lines_of(ax) == {"train": ([1, 2, 3], [3, 2, 1]), "val": ([1, 2, 3], [4, 3, 3])}
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val"]
    ax = viz.plot_lines({"a": [0, 1], "b": [5, 6, 7]}, {"a": [1, 2], "b": [3, 4, 5]})
    assert lines_of(ax) == {"a": ([0, 1], [1, 2]), "b": ([5, 6, 7], [3, 4, 5])}


def test_plot_bars_heights_labels_and_values_written_on_top():
    ax = viz.plot_bars(["chars", "words"], [65, 12_345], ylabel="size")
    assert [b.get_height() for b in ax.patches] == [65, 12_345]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["chars", "words"]
    assert [t.get_text() for t in ax.texts] == ["65", "12,345"]  # fmt "{:,.0f}"
    assert ax.get_legend() is None and ax.get_ylabel() == "size"


def test_plot_bars_grouped_series_get_a_legend():
    ax = viz.plot_bars(["a", "b", "c"], {"course": [1.5, 2.25, 3.0], "cl100k": [4.0, 5.0, 6.0]}, fmt="{:.1f}")
    assert [b.get_height() for b in ax.patches] == [1.5, 2.25, 3.0, 4.0, 5.0, 6.0]
    assert [t.get_text() for t in ax.texts] == ["1.5", "2.2", "3.0", "4.0", "5.0", "6.0"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["course", "cl100k"]
    # the two bars of a group sit side by side around the label's tick
    xs = [b.get_x() + b.get_width() / 2 for b in ax.patches]
    assert xs[0] < 0 < xs[3] and xs[1] < 1 < xs[4]


def test_plot_bars_refuses_a_length_mismatch():
    with pytest.raises(ValueError, match="3 labels but 2 values"):
        viz.plot_bars(["a", "b", "c"], [1, 2])


# ----------------------------------------------------------------------------------------------
# tokens as HTML


def test_token_html_escapes_and_shows_whitespace_and_hex():
    tokens = [b"<b>", b" &x", b"\n", "🤖".encode()[:2], "🤖".encode()[2:], "é".encode()]
    out = viz.token_html(tokens, [10, 11, 12, 13, 14, 15])
    assert "&lt;b&gt;" in out and "&amp;x" in out
    assert "·" in out and "↵" in out  # visible space and newline
    assert "\\xf0\\x9f" in out and "\\xa4\\x96" in out  # half an emoji per token: hex
    assert "é" in out
    assert 'title="id 15' in out
    assert out.count("<span title=") == 6
    with_ids = viz.token_html(tokens, [10, 11, 12, 13, 14, 15], show_ids=True)
    assert ">15</span>" in with_ids
    with pytest.raises(ValueError):
        viz.token_html([b"a"], [1, 2])


def test_token_html_keeps_every_character_in_order():
    """Strip the markup: what is left is the text, with the visible stand-ins for whitespace."""
    text = 'a <tag> & "q"\tb\nc'
    tokens = [text[i : i + 2].encode() for i in range(0, len(text), 2)]
    out = viz.token_html(tokens, list(range(len(tokens))))
    shown = _html.unescape(re.sub(r"<[^>]+>", "", out)).replace("<wbr>", "")
    assert shown == text.replace(" ", "·").replace("\t", "⇥").replace("\n", "↵\n")
    # the colours cycle through the palette, one span per token
    colours = re.findall(r"background:(rgba\([^)]*\))", out)
    assert colours == [viz.PALETTE[i % len(viz.PALETTE)] for i in range(len(tokens))]


class _ByteTokenizer:
    """The smallest tokenizer: one token per byte."""

    def encode_ordinary(self, text):
        return list(text.encode("utf-8"))

    def decode_tokens(self, ids):
        return [bytes([i]) for i in ids]


def test_tokenizer_stats_counts():
    s = viz.tokenizer_stats(_ByteTokenizer(), "héllo")
    assert s["ids"] == [104, 195, 169, 108, 108, 111]
    assert s["tokens"] == [b"h", b"\xc3", b"\xa9", b"l", b"l", b"o"]
    assert (s["n_tokens"], s["n_chars"], s["n_bytes"]) == (6, 5, 6)
    assert s["chars_per_token"] == 5 / 6 and s["bytes_per_token"] == 1.0
    empty = viz.tokenizer_stats(_ByteTokenizer(), "")
    assert empty["n_tokens"] == 0 and empty["chars_per_token"] == 0.0


def test_tokenizer_html_with_a_tiktoken_encoding():
    """A tiktoken Encoding works as well (decode_tokens_bytes); GPT-4 cuts 'hello world' in two."""
    from llmcourse.tokenization import tiktoken_encoding

    out = viz.tokenizer_html(tiktoken_encoding("cl100k_base"), "hello world", name="cl100k", show_ids=True)
    assert "<b>cl100k</b>" in out and "2 tokens" in out and "11 characters" in out and "5.50 chars/token" in out
    assert ">15339</span>" in out and ">1917</span>" in out  # tiktoken's ids for "hello", " world"


def test_tokenizer_html_and_explorer():
    tok = _ByteTokenizer()
    html = viz.tokenizer_html(tok, "héllo", name="bytes")
    assert "6 tokens" in html and "5 characters" in html and "0.83 chars/token" in html
    assert "\\xc3" in html and "\\xa9" in html  # é cut in two bytes: both shown as hex
    box = viz.tokenizer_explorer({"bytes": tok, "bytes again": _ByteTokenizer()}, text="ab")
    buttons, area, _, out = box.children
    assert "2 tokens" in out.value
    area.value = "abcd"
    assert "4 tokens" in out.value
    buttons.value = "bytes again"
    assert "bytes again" in out.value


def test_explorer_show_ids_and_errors_are_shown_not_raised():
    class Broken:
        def encode_ordinary(self, text):
            raise KeyError("boom <b>")

    box = viz.tokenizer_explorer({"bytes": _ByteTokenizer(), "broken": Broken()}, text="hi")
    buttons, area, ids_box, out = box.children
    assert ">104</span>" not in out.value
    ids_box.value = True
    assert ">104</span>" in out.value and ">105</span>" in out.value
    buttons.value = "broken"
    assert "KeyError" in out.value and "&lt;b&gt;" in out.value  # the error, escaped, in place of the tokens
    with pytest.raises(ValueError, match="at least one tokenizer"):
        viz.tokenizer_explorer({})
