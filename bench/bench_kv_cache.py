"""Benchmark GPT.generate: without the KV cache, with it, and Hugging Face's GPT-2 on the same weights.

    python bench/bench_kv_cache.py [--new-tokens 256] [--repeats 5] [--device cpu|cuda] [--threads 1 2]

A randomly initialised GPT (n_layer=4, n_embd=256, n_head=4, block_size=512, vocab 1024) generates
256 tokens greedily from an 8-token prompt in three ways, all in this process, on the same weights:

* ours, use_cache=False: the whole sequence goes through the model at every step;
* ours, use_cache=True: only the newest token, against a KV cache (``GPT.generate``);
* Hugging Face ``GPT2LMHeadModel`` of the same configuration with our weights copied in
  (``transformer.to_hf_gpt2``), ``generate(do_sample=False)``, which uses its own KV cache.

Before timing, the script checks that Hugging Face's logits equal ours (max abs difference printed)
and every run's tokens equal ours; it exits 1 if any differ. Each setting gets a warm-up, then the
best of --repeats runs; the runs of the cached paths alternate (ours, theirs, ours, ...) so that a
burst of load from other processes hits both. The table gives tokens/s and the ratio to Hugging
Face's cached generation, the named baseline, for each thread count of --threads.

Without the cache, step t runs the model on t tokens (O(t) matmul work, O(t^2) attention), so a
whole generation costs O(N^2); with it each step costs O(1) matmuls and O(t) attention. Per step
this model does well under a millisecond of arithmetic, so the cached path's speed is set by the
number of operations per step (kernel launches, Python), which is what ours keeps small: one
matmul for q, k, v, preallocated caches, fused attention, LayerNorm and GELU kernels. Timings are
wall clock, for comparison on one machine, never asserts. On a GPU every step costs about the
same few dozen kernel launches with or without the cache, so expect little speed-up there. On a
CPU that other processes keep busy, two OpenMP threads can be slower than one for these tiny
matrix-vector products.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from llmcourse.transformer import GPT, GPTConfig, default_device, to_hf_gpt2


def best_time(run: Callable[[], torch.Tensor], device: torch.device) -> float:
    """Wall time of one call of ``run`` (synchronised on CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--prompt-tokens", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU thread counts to run")
    ap.add_argument("--skip-uncached", action="store_true", help="leave out use_cache=False (the slow row)")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # each row as soon as it is measured

    config = GPTConfig(n_layer=4, n_embd=256, n_head=4, block_size=512, vocab_size=1024)
    if args.prompt_tokens + args.new_tokens > config.block_size:
        ap.error(
            f"prompt + new tokens must fit block_size={config.block_size} (beyond it the cache "
            "is rebuilt every step and the comparison measures something else)"
        )
    device = torch.device(args.device) if args.device else default_device()
    torch.manual_seed(0)
    model = GPT(config).to(device).eval()
    hf = to_hf_gpt2(model)
    prompt = torch.randint(0, config.vocab_size, (args.batch, args.prompt_tokens), device=device)
    attention_mask = torch.ones_like(prompt)
    n = args.new_tokens

    def ours(use_cache: bool) -> torch.Tensor:
        return model.generate(prompt, n, greedy=True, use_cache=use_cache)

    def theirs() -> torch.Tensor:
        return hf.generate(prompt, attention_mask=attention_mask, max_new_tokens=n, do_sample=False)

    with torch.no_grad():
        probe = torch.randint(0, config.vocab_size, (2, 64), device=device)
        logit_diff = (hf(probe).logits - model(probe)[0]).abs().max().item()
    reference = ours(True)
    same = True

    print(
        f"GPT n_layer={config.n_layer} n_embd={config.n_embd} n_head={config.n_head} "
        f"block_size={config.block_size} vocab={config.vocab_size} ({model.num_params() / 1e6:.2f} M params)"
    )
    print(
        f"greedy generation of {n} tokens from a {args.prompt_tokens}-token prompt, batch {args.batch}, "
        f"best of {args.repeats} after a warm-up"
    )
    print(f"device {device}, torch {torch.__version__}, python {platform.python_version()}")
    print(f"Hugging Face GPT2LMHeadModel on the same weights: logits max abs difference {logit_diff:.2e}")
    print()
    print(f"| {'threads':>7} | {'generate':<38} | {'time (s)':>9} | {'tokens/s':>9} | {'vs HF':>6} |")
    print(f"|{'-' * 9}|{'-' * 40}|{'-' * 11}|{'-' * 11}|{'-' * 8}|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        runs: dict[str, Callable[[], torch.Tensor]] = {
            "ours, use_cache=True": lambda: ours(True),
            "Hugging Face GPT2LMHeadModel.generate": theirs,
        }
        if not args.skip_uncached:
            runs["ours, use_cache=False"] = lambda: ours(False)
        best = dict.fromkeys(runs, float("inf"))
        for run in runs.values():  # warm-up, and every path's tokens must equal ours
            same &= torch.equal(run(), reference)
        for _ in range(args.repeats):  # interleaved, so that load from elsewhere hits every path
            for name, run in runs.items():
                best[name] = min(best[name], best_time(run, device))
        baseline = best["Hugging Face GPT2LMHeadModel.generate"]
        for name in sorted(runs, key=lambda k: best[k]):
            t = best[name]
            print(f"| {threads:>7} | {name:<38} | {t:>9.3f} | {n * args.batch / t:>9.1f} | {baseline / t:>5.2f}x |")
    print()
    print(f"identical tokens (ours cached, uncached, Hugging Face): {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
