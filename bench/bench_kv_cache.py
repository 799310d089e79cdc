"""Benchmark GPT.generate with and without the KV cache; prints a table.

    python bench/bench_kv_cache.py [--new-tokens 256] [--repeats 3] [--device cpu|cuda] [--threads N]

A randomly initialised GPT (n_layer=4, n_embd=256, n_head=4, block_size=512, vocab 1024) generates
256 tokens greedily from an 8-token prompt, once feeding the whole sequence at every step
(use_cache=False) and once feeding only the newest token against a KV cache (use_cache=True).
Both run in this process on the same model: a warm-up first, then the best of --repeats runs.
The two must produce identical tokens; the script exits 1 if they do not.

Without the cache, step t runs the model on t tokens (O(t) matmul work, O(t^2) attention), so a
whole generation costs O(N^2); with it each step costs O(1) matmuls and O(t) attention.
Timings are wall clock; numbers are for comparison on one machine, not asserts. On a GPU this
model is so small that every step costs about the same few dozen kernel launches with or without
the cache, so expect little speed-up there; the cache pays off on CPUs and for bigger models and
longer sequences. On a CPU that other processes keep busy, two OpenMP threads can be much slower
than one for the cached path's tiny matrix-vector products: try --threads 1.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import torch
from llmcourse.transformer import GPT, GPTConfig, default_device


def timed_generate(
    model: GPT, prompt: torch.Tensor, new_tokens: int, use_cache: bool, repeats: int
) -> tuple[float, torch.Tensor]:
    """Best wall time of `repeats` runs (after one warm-up) and the tokens generated."""
    out = model.generate(prompt, new_tokens, greedy=True, use_cache=use_cache)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if prompt.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(prompt, new_tokens, greedy=True, use_cache=use_cache)
        if prompt.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--prompt-tokens", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); 1 gives steadier numbers on a "
        "machine that other processes keep busy",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    config = GPTConfig(n_layer=4, n_embd=256, n_head=4, block_size=512, vocab_size=1024)
    if args.prompt_tokens + args.new_tokens > config.block_size:
        ap.error(
            f"prompt + new tokens must fit block_size={config.block_size} (beyond it the cache "
            "is rebuilt every step and the comparison measures something else)"
        )
    device = torch.device(args.device) if args.device else default_device()
    torch.manual_seed(0)
    model = GPT(config).to(device).eval()
    prompt = torch.randint(0, config.vocab_size, (args.batch, args.prompt_tokens), device=device)

    t_plain, out_plain = timed_generate(model, prompt, args.new_tokens, False, args.repeats)
    t_cache, out_cache = timed_generate(model, prompt, args.new_tokens, True, args.repeats)
    same = torch.equal(out_plain, out_cache)

    n = args.new_tokens * args.batch
    print(
        f"GPT n_layer={config.n_layer} n_embd={config.n_embd} n_head={config.n_head} "
        f"block_size={config.block_size} vocab={config.vocab_size} "
        f"({model.num_params() / 1e6:.2f} M params)"
    )
    print(
        f"greedy generation of {args.new_tokens} tokens from a {args.prompt_tokens}-token prompt, "
        f"batch {args.batch}, best of {args.repeats} after a warm-up"
    )
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"python {platform.python_version()}"
    )
    print()
    print(f"| {'generate':<22} | {'time (s)':>9} | {'tokens/s':>9} | {'speed-up':>8} |")
    print(f"|{'-' * 24}|{'-' * 11}|{'-' * 11}|{'-' * 10}|")
    print(f"| {'use_cache=False':<22} | {t_plain:>9.3f} | {n / t_plain:>9.1f} | {1.0:>7.2f}x |")
    speedup = t_plain / t_cache
    print(f"| {'use_cache=True (KV)':<22} | {t_cache:>9.3f} | {n / t_cache:>9.1f} | {speedup:>7.2f}x |")
    print()
    print(f"identical tokens: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
