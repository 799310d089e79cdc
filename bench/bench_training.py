"""Benchmark pretraining throughput: our loop against Hugging Face's GPT-2 on the same weights and batches.

    python bench/bench_training.py [--steps 20] [--rounds 3] [--threads 1] [--batch-size 32]
    python bench/bench_training.py --regenerate      # retrain the shipped checkpoint and compare
    python bench/bench_training.py --regenerate reviews   # the same for checkpoints/reviews_gpt.pt (unit 07)

The model is the shipped checkpoint's shape (GPT, 4 layers, width 96, 4 heads, context 64, vocabulary
512) and the batch 32 windows of 64 tokens of random ids, on the CPU (or CUDA when present). One training
step = forward, loss, backward, global-norm clipping at 1.0, an AdamW step (betas 0.9/0.95, weight decay
0.1 on matrices). Three loops, all in this process, all from the same initial weights
(``transformer.to_hf_gpt2`` copies ours into Hugging Face's model; the script first checks that the two
give the same loss, else exits 1):

* ours: ``llmcourse.training.Trainer.train_step`` (our GPT, our AdamW, our clipping, our batches);
* ours + torch's optimizer: our GPT with ``torch.optim.AdamW`` and ``clip_grad_norm_`` (isolates the model);
* Hugging Face: ``GPT2LMHeadModel`` with ``torch.optim.AdamW`` and ``clip_grad_norm_``, the named baseline.

The rounds alternate (ours, HF, ours, ...) so that a burst of load from other processes hits all of
them; each row is the median of ``--rounds`` rounds of ``--steps`` steps after a warm-up. The table
gives tokens/s and the ratio to Hugging Face (aim: 1.0 or more). Below it: the matmul FLOP/s this
machine measured now (the shapes of this model's largest matmul, and a square 1024 one), and our
model FLOP utilisation, MFU = (6 N + 12 L C T) tokens/s / the measured matmul FLOP/s (N: parameters
without position embeddings, PaLM's count of training FLOPs per token).

--regenerate runs ``python -m llmcourse.training`` (the whole 600-step run, a few CPU minutes) into a
temporary file and compares its validation loss with the shipped checkpoint's: within 2% passes.
``--regenerate reviews`` does the same with ``python -m llmcourse.toolbox.reviews`` (``reviews_gpt.pt``,
about 7 minutes on an idle 2-core machine).
Timings are wall clock, for comparison on one machine, never asserts.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from llmcourse.training import SHAKESPEARE_MODEL, TrainConfig, Trainer, load_pretrained
from llmcourse.training import main as train_main
from llmcourse.transformer import GPT, GPTConfig, default_device, to_hf_gpt2

REPO = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_flops(m: int, k: int, n: int, device: torch.device, seconds: float = 0.5) -> float:
    """Measured FLOP/s of (m, k) @ (k, n) in float32: 2 m k n per product, best of a few bursts."""
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    for _ in range(3):
        a @ b
    best, reps = 0.0, 1
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        dt = time.perf_counter() - t0
        best = max(best, 2 * m * k * n * reps / dt)
        reps = min(reps * 2, 256) if dt < 0.05 else reps
    return best


def torch_step(model, opt, params, x, y) -> float:
    out = model(x, labels=y) if not isinstance(model, GPT) else model(x, y)
    loss = out.loss if hasattr(out, "loss") else out[1]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return loss.item()


def torch_adamw(model) -> tuple[torch.optim.Optimizer, list]:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), foreach=True), params


def bench(args) -> int:
    device = default_device()
    torch.manual_seed(0)
    cfg = GPTConfig(**SHAKESPEARE_MODEL)
    B, T = args.batch_size, cfg.block_size
    data = torch.randint(0, cfg.vocab_size, (200_000,), generator=torch.Generator().manual_seed(0))
    ours_model = GPT(cfg)
    hf = to_hf_gpt2(ours_model).train().to(device)  # the same initial weights, copied before we train
    plain = GPT(cfg)
    plain.load_state_dict(ours_model.state_dict())
    ours_model.to(device)
    plain.to(device)

    # the same network? HF shifts its labels inside: its loss on (a, labels=a) is ours with the last target ignored
    a = data[:T][None].to(device)
    targets = torch.cat([a[:, 1:], torch.full_like(a[:, :1], -1)], dim=1)
    with torch.no_grad():
        ours_loss = ours_model(a, targets)[1].item()
        hf_loss = hf(a, labels=a).loss.item()
    if abs(ours_loss - hf_loss) > 1e-4:
        print(f"Hugging Face's loss {hf_loss:.6f} differs from ours {ours_loss:.6f}: not the same network")
        return 1

    trainer = Trainer(ours_model, data, data, TrainConfig(batch_size=B, max_steps=10**6, max_lr=1e-3))
    plain_opt, plain_params = torch_adamw(plain)
    hf_opt, hf_params = torch_adamw(hf)
    g = torch.Generator().manual_seed(1)
    batches = [
        data[torch.randint(len(data) - T - 1, (B,), generator=g)[:, None] + torch.arange(T + 1)] for _ in range(8)
    ]

    def run_ours():
        for _ in range(args.steps):
            trainer.train_step()

    def run_plain():
        for i in range(args.steps):
            w = batches[i % len(batches)].to(device)
            torch_step(plain, plain_opt, plain_params, w[:, :-1], w[:, 1:])

    def run_hf():
        for i in range(args.steps):
            w = batches[i % len(batches)].to(device)  # T + 1 tokens: HF shifts the labels itself
            torch_step(hf, hf_opt, hf_params, w[:, :-1], w[:, :-1])

    runs = {"ours (llmcourse.training)": run_ours, "ours + torch.optim.AdamW": run_plain, "Hugging Face GPT-2": run_hf}
    times = {name: [] for name in runs}
    for run in runs.values():  # warm-up
        run()
    for _ in range(args.rounds):
        for name, run in runs.items():
            sync(device)
            t0 = time.perf_counter()
            run()
            sync(device)
            times[name].append(time.perf_counter() - t0)

    tokens = args.steps * B * T
    rate = {name: tokens / statistics.median(ts) for name, ts in times.items()}
    base = rate["Hugging Face GPT-2"]
    print(
        f"\ntraining throughput, {platform.processor() or platform.machine()}, {device}, "
        f"{torch.get_num_threads()} thread(s), torch {torch.__version__}"
    )
    print(f"model: {ours_model.num_params():,} parameters ({cfg}); batch {B} x {T} tokens\n")
    print(f"{'loop':<28}{'tokens/s':>12}{'vs HF':>8}")
    for name, r in rate.items():
        print(f"{name:<28}{r:>12,.0f}{r / base:>7.2f}x")

    N = ours_model.num_params(non_embedding=True)
    flops_per_token = 6 * N + 12 * cfg.n_layer * cfg.n_embd * T
    mm_model = matmul_flops(B * T, cfg.n_embd, 4 * cfg.n_embd, device)
    mm_square = matmul_flops(1024, 1024, 1024, device)
    print(
        f"\nmatmul FLOP/s measured now: {mm_model / 1e9:,.1f} GFLOP/s for ({B * T} x {cfg.n_embd}) @ "
        f"({cfg.n_embd} x {4 * cfg.n_embd}); {mm_square / 1e9:,.1f} GFLOP/s for 1024^3"
    )
    for name, r in rate.items():
        achieved = r * flops_per_token
        print(
            f"{name:<28} {achieved / 1e9:6.2f} GFLOP/s of model arithmetic = MFU {achieved / mm_model:5.1%} of "
            f"the model-shaped matmul, {achieved / mm_square:5.1%} of the square one"
        )
    return 0


def regenerate(which: str) -> int:
    """Retrain a shipped checkpoint with its own command into a temporary file; its validation loss within 2%."""
    if which == "reviews":
        from llmcourse.toolbox.reviews import main as command
    else:
        command = train_main
    path = REPO / "checkpoints" / f"{which}_gpt.pt"
    _, _, shipped = load_pretrained(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "regenerated.pt"
        t0 = time.perf_counter()
        command(["--out", str(out), "--quiet"])
        _, _, again = load_pretrained(out)
    a, b = shipped["meta"]["val_loss"], again["meta"]["val_loss"]
    rel = abs(b - a) / a
    verdict = "PASS" if rel <= 0.02 else "FAIL"
    print(
        f"{verdict}: {path.name} regenerated validation loss {b:.4f} vs shipped {a:.4f} ({rel:.2%} apart, "
        f"limit 2%); {time.perf_counter() - t0:.0f} s"
    )
    return 0 if verdict == "PASS" else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="training steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--regenerate",
        nargs="?",
        const="shakespeare",
        choices=["shakespeare", "reviews"],
        help="retrain a shipped checkpoint (minutes): shakespeare_gpt.pt (default) or reviews_gpt.pt, and compare",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.regenerate:
        return regenerate(args.regenerate)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
