"""Benchmark llmcourse.tokenization against its peers; prints a table.

    python bench/bench_tokenization.py [--chars 1000000] [--vocab-size 1024] [--naive-merges 24]

1. BPE training on the first 1,000,000 characters of Shakespeare, GPT-4 pre-split, vocab 1024:
   ours (`train_merges`: incremental pair counts + heap) vs the naive trainer that recounts every
   pair after every merge (`train_merges_naive`, minbpe's RegexTokenizer.train with the same
   tie-break), vs Hugging Face `tokenizers` (Rust).
   The naive trainer needs about a second per merge here, so it runs only the first K merges and
   ours is timed on exactly the same K merges: the ratio compares equal work.
2. Encoding the same text with GPT-4's cl100k_base: ours (pure Python; a fresh chunk cache, i.e.
   the first pass) vs tiktoken (Rust).

Timings are wall clock in this process; numbers are for comparison on one machine, not asserts.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import regex
from llmcourse.tokenization import (
    GPT4_SPLIT_PATTERN,
    Tokenizer,
    cl100k_base,
    tiktoken_encoding,
    train_merges,
    train_merges_naive,
)
from llmcourse.toolbox.data import load_shakespeare

# ----------------------------------------------------------------------------------------------
# Hugging Face tokenizers


def hf_train(text: str, vocab_size: int):
    from tokenizers import Regex, models, pre_tokenizers, trainers
    from tokenizers import Tokenizer as HFTokenizer

    # Oniguruma reads `{1,3}+` as "{1,3}, one or more times" rather than possessive; at the end of
    # an alternative greedy and possessive match the same, so drop the `+` to get GPT-4's chunks.
    pattern = GPT4_SPLIT_PATTERN.replace(r"\p{N}{1,3}+", r"\p{N}{1,3}")
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),  # bytes -> printable chars
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([text], trainer)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


# ----------------------------------------------------------------------------------------------


def timed(fn, repeat: int = 1):
    """(best wall time in seconds, result of the last call)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chars", type=int, default=1_000_000, help="characters of Shakespeare (default 1e6)")
    ap.add_argument("--vocab-size", type=int, default=1024)
    ap.add_argument(
        "--naive-merges", type=int, default=24, help="merges the naive trainer runs (about 1 s each on 1 MB)"
    )
    args = ap.parse_args(argv)

    text = load_shakespeare()[: args.chars]
    mb = len(text.encode("utf-8")) / 1e6
    n_merges = args.vocab_size - 256
    k = min(args.naive_merges, n_merges)
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"text: first {len(text):,} chars of Shakespeare ({mb:.2f} MB UTF-8)\n"
    )

    # -- 1. training
    t_ours, merges = timed(lambda: train_merges(text, args.vocab_size), repeat=2)
    t_hf, _ = timed(lambda: hf_train(text, args.vocab_size), repeat=2)
    t_ours_k, merges_k = timed(lambda: train_merges(text, 256 + k), repeat=2)
    t_naive_k, naive_k = timed(lambda: train_merges_naive(text, 256 + k))
    same = list(merges_k.items()) == list(naive_k.items()) and list(merges.items())[:k] == list(naive_k.items())
    setup, _ = timed(lambda: [list(c.encode()) for c in regex.findall(GPT4_SPLIT_PATTERN, text)])
    naive_full_est = setup + (t_naive_k - setup) / k * n_merges

    rows = [
        (f"ours, {args.vocab_size} vocab ({len(merges)} merges)", f"{t_ours:.2f}", ""),
        ("Hugging Face tokenizers (Rust, all cores)", f"{t_hf:.2f}", ""),
        (f"ours, first {k} merges only", f"{t_ours_k:.2f}", ""),
        (
            f"naive recount-every-merge, first {k} merges",
            f"{t_naive_k:.2f}",
            "same merges as ours" if same else "MERGES DIFFER FROM OURS",
        ),
        (f"naive, all {n_merges} merges (extrapolated)", f"~{naive_full_est:.0f}", "estimate, not run"),
    ]
    print(f"1. BPE training, GPT-4 pre-split, vocab {args.vocab_size}")
    _table(["trainer", "time (s)", "note"], rows)
    print(f"   ours is {ratio(t_naive_k, t_ours_k)} faster than naive on equal work (the same {k} merges; aim >= 20x)")
    print(f"   ours is ~{ratio(naive_full_est, t_ours)} faster than naive for all {n_merges} merges (estimate)")
    faster = (
        f"tokenizers is {ratio(t_ours, t_hf)} faster than ours"
        if t_hf < t_ours
        else f"ours is {ratio(t_hf, t_ours)} faster than tokenizers"
    )
    print(f"   {faster} (aim: within 20x)\n")

    # -- 2. encoding
    ranks_tok = cl100k_base()
    ref = tiktoken_encoding("cl100k_base")
    ours = Tokenizer.from_tiktoken_ranks(ranks_tok.ranks, GPT4_SPLIT_PATTERN, ranks_tok.special_tokens)
    t_cold, ids = timed(lambda: ours.encode_ordinary(text))  # fresh tokenizer: empty chunk cache
    t_warm, _ = timed(lambda: ours.encode_ordinary(text), repeat=2)
    t_tik, ref_ids = timed(lambda: ref.encode_ordinary(text), repeat=3)
    rows = [
        ("ours, first pass (fresh chunk cache)", f"{t_cold:.3f}", f"{mb / t_cold:.2f}"),
        ("ours, second pass (warm cache)", f"{t_warm:.3f}", f"{mb / t_warm:.2f}"),
        ("tiktoken (Rust)", f"{t_tik:.3f}", f"{mb / t_tik:.2f}"),
    ]
    print(
        f"2. Encoding with cl100k_base (encode_ordinary), {len(ids):,} tokens, "
        f"{'ids identical to tiktoken' if ids == ref_ids else 'IDS DIFFER FROM TIKTOKEN'}"
    )
    _table(["encoder", "time (s)", "MB/s"], rows)
    print(f"   tiktoken is {ratio(t_cold, t_tik)} faster than ours (first pass), {ratio(t_warm, t_tik)} (warm cache)")
    return 0 if same and ids == ref_ids else 1


def _table(header, rows) -> None:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = "   " + "  ".join("-" * w for w in widths)
    print(line)
    print("   " + "  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print(line)
    for r in rows:
        print(
            "   "
            + "  ".join((str(c).ljust(w) if i != 1 else str(c).rjust(w)) for i, (c, w) in enumerate(zip(r, widths)))
        )
    print(line)


if __name__ == "__main__":
    sys.exit(main())
