"""Winnowing (Schleimer, Wilkerson & Aiken, SIGMOD 2003): fingerprints of code that survive renaming.

1. **Normalise** with Python's :mod:`tokenize`: comments, docstrings, blank lines and layout go;
   every identifier that is not a keyword, a builtin or an attribute becomes ``V``, so renaming
   variables changes nothing; string literals are compared by value, so quote style changes nothing.
   Code that does not tokenize (a syntax error) goes through a crude tokenizer with the same renaming.
2. **Fingerprint**: hash every k-gram of tokens (``k`` tokens) and keep the minimum hash of each
   window of ``w`` consecutive hashes. Any shared run of at least ``k + w - 1`` tokens is guaranteed
   to share a fingerprint; runs shorter than ``k`` tokens are noise and never match.

:mod:`llmcourse.grading.integrity` compares submissions with these.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import io
import keyword
import re
import tokenize

from .assignment import STUB_LINES

K = 10  # tokens per k-gram (noise threshold)
W = 5  # winnowing window: shared runs of K + W - 1 = 14 tokens always match
_BUILTINS = frozenset(dir(builtins))


def _tokens(code: str) -> list[tuple[str, int]]:
    """Normalised tokens of ``code`` as (text, source line), see the module docstring (step 1)."""
    lines = [
        "" if (l.lstrip().startswith(("%", "!")) or l.strip() in STUB_LINES) else l for l in code.splitlines()
    ]  # IPython magics and shell escapes are not Python
    source = "\n".join(lines) + "\n"
    try:
        raw = [
            t
            for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _fallback_tokens(lines)
    out: list[tuple[str, int]] = []
    i, prev = 0, None
    while i < len(raw):
        t = raw[i]
        statement_start = prev is None or prev.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
        if t.type == tokenize.STRING and statement_start:  # a docstring or a bare string statement
            j = i
            while j < len(raw) and raw[j].type == tokenize.STRING:
                j += 1
            if j == len(raw) or raw[j].type == tokenize.NEWLINE:
                i, prev = j + 1, (raw[j] if j < len(raw) else t)
                continue
        out.append((_normal(t.type, t.string, prev.string if prev else ""), t.start[0]))
        prev = t
        i += 1
    return out


def _normal(kind: int, text: str, before: str) -> str:
    if kind == tokenize.NAME:
        if keyword.iskeyword(text) or text in _BUILTINS or before == ".":
            return text
        return "V"
    if kind == tokenize.STRING:
        try:
            return repr(ast.literal_eval(text))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
    if kind == tokenize.NEWLINE:
        return ";"
    if kind == tokenize.INDENT:
        return "{"
    if kind == tokenize.DEDENT:
        return "}"
    return text


_CRUDE = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?|\"[^\"\n]*\"|'[^'\n]*'|\S")


def _fallback_tokens(lines: list[str]) -> list[tuple[str, int]]:
    """Code that does not tokenize (a syntax error): a crude tokenizer with the same renaming."""
    out, before = [], ""
    for n, line in enumerate(lines, 1):
        for m in _CRUDE.finditer(line):
            text = m.group()
            if text == "#":
                break
            if text[0].isalpha() or text[0] == "_":
                norm = text if (keyword.iskeyword(text) or text in _BUILTINS or before == ".") else "V"
            else:
                norm = text
            out.append((norm, n))
            before = text
        if line.strip():
            out.append((";", n))
    return out


def _hash(parts) -> int:
    return int.from_bytes(
        hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )


def _kgrams(tokens, k: int) -> list[tuple[int, int, int]]:
    """(hash, first line, last line) of every k-gram."""
    texts = [t for t, _ in tokens]
    return [(_hash(texts[i : i + k]), tokens[i][1], tokens[i + k - 1][1]) for i in range(len(tokens) - k + 1)]


def _winnow(grams, w: int) -> list[int]:
    """Indices of the grams winnowing selects: each window's minimum hash, rightmost on ties."""
    if not grams:
        return []
    w = min(w, len(grams))
    chosen: list[int] = []
    for start in range(len(grams) - w + 1):
        best = start
        for j in range(start, start + w):
            if grams[j][0] <= grams[best][0]:
                best = j
        if not chosen or chosen[-1] != best:
            chosen.append(best)
    return chosen


def fingerprints(code: str, k: int = K, w: int = W) -> dict[int, tuple[int, int]]:
    """hash -> (first line, last line) of the winnowed fingerprints of one piece of code."""
    grams = _kgrams(_tokens(code), k)
    out: dict[int, tuple[int, int]] = {}
    for i in _winnow(grams, w):
        out.setdefault(grams[i][0], grams[i][1:])
    return out


def kgram_hashes(codes, k: int = K) -> set[int]:
    """Every k-gram hash of every piece of code (not winnowed: for the base that is subtracted)."""
    return {h for code in codes for h, _, _ in _kgrams(_tokens(code), k)}
