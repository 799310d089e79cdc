"""The numbers hold on another CPU: the numerical tests again, under a second kernel path.

PyTorch picks its float32 kernels per CPU at run time (``ATEN_CPU_CAPABILITY``: ``default``, ``avx2``,
``avx512``), and so do numpy and oneDNN: they sum in different orders, and their vectorised ``exp``,
``log`` and ``pow`` round differently. A comparison that holds on the machine it was written on can fail
on a student's laptop or a fresh CI runner (a MiniLM-vs-Hugging-Face test failed on an AVX-512 EPYC at
1.05e-4 against 1e-4). The suite therefore runs its cheap numerical core once more in a child process,
under every capability this CPU has other than the one this run uses, on one thread (the main run uses
the default thread count):

1. the committed ``expected_outputs.json`` of every assignment equal the reference's outputs within each
   check's tolerance, inputs fingerprinted within :data:`llmcourse.checks.expected.INPUT_RTOL` (what a
   student's visible checks compare against, made on the instructor's machine);
2. :data:`NUMERICAL`, the comparisons with independent implementations that float32 rounding could
   move: Hugging Face's BERT and GPT-2, ``F.scaled_dot_product_attention`` and ``nn.MultiheadAttention``,
   ``F.rms_norm`` and the Llama pieces, ``F.cross_entropy`` and transformers' logits warpers, beam search
   against transformers' ``generate``, and the multimodal recipe's held-out bar (a training outcome).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO

# the capabilities PyTorch knows, weakest first; a CPU can run every one up to its best
CAPABILITIES = ["default", "avx2", "avx512"]
HERE = torch.backends.cpu.get_cpu_capability().lower()  # what this process runs (ATEN_CPU_CAPABILITY may lower it)


def best_capability() -> str:
    """What PyTorch picks on this CPU when nothing is exported (a child without ATEN_CPU_CAPABILITY)."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    ask = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return (
        subprocess.run([sys.executable, "-c", ask], env=env, capture_output=True, text=True, check=True)
        .stdout.strip()
        .lower()
    )


BEST = best_capability()
# every path this CPU runs other than this process's: `default` (and avx2 on an AVX-512 CPU) in a plain run,
# the CPU's own best in a run with ATEN_CPU_CAPABILITY=default exported
OTHERS = [c for c in CAPABILITIES[: CAPABILITIES.index(BEST) + 1] if c != HERE] if BEST in CAPABILITIES else []

NUMERICAL = [
    "tests/lib/test_attention.py",
    "tests/lib/test_llama.py",
    "tests/lib/test_autoregressive.py",
    "tests/lib/test_transformer.py::test_minilm_matches_hf_bert",
    "tests/lib/test_transformer.py::test_minilm_sentence_pair_token_types",
    "tests/lib/test_transformer.py::test_gpt_logits_equal_hf_gpt2",
    "tests/lib/test_transformer.py::test_greedy_tokens_equal_hf_gpt2_generate",
    "tests/lib/test_decoding.py::test_gpt_beams_equal_hugging_face",
    "tests/lib/test_multimodal.py::test_a_frozen_lm_with_a_trained_projector_answers_about_unseen_pairs",
]

TABLES = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from llmcourse.checks.expected import FILENAME, expected_table, table_differences

    problems = [torch.backends.cpu.get_cpu_capability()]
    for folder in sorted(Path(sys.argv[1]).iterdir()):
        committed = json.loads((folder / FILENAME).read_text())
        problems += [f"{folder.name}: {p}" for p in table_differences(expected_table(committed["checks"]), committed)]
    print(json.dumps(problems))
    """
)


def child_env(capability: str) -> dict[str, str]:
    return {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_this_cpu_has_a_second_path():
    """Every x86-64 CPU PyTorch vectorises for runs ``default`` and its own best: the tests below are never
    empty on CI."""
    assert BEST in CAPABILITIES[1:] and OTHERS, (HERE, BEST, OTHERS)


@pytest.mark.parametrize("capability", OTHERS)
def test_committed_expected_outputs_hold_under(capability):
    run = subprocess.run(
        [sys.executable, "-c", TABLES, str(REPO / "assignments")],
        env=child_env(capability),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen, *problems = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen.lower() == capability, f"the child ran {seen}, not {capability}"
    assert not problems, problems[:5]


@pytest.mark.parametrize("capability", OTHERS)
def test_numerical_tests_hold_under(capability):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", "-x", *NUMERICAL],
        env=child_env(capability),
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout.splitlines()[-1], run.stdout[-500:]
