"""llmcourse: reference implementations for the LLM course, one module per topic.

Topic modules (each is the answer key of its assignment)
----------------------------------------------------------
tokenization    byte-level BPE, GPT-4's cl100k ranks (assignment 01)
attention       softmax, scaled dot-product and multi-head attention (assignment 04)
transformer     LayerNorm, MLP, blocks, GPT with a KV cache, a BERT encoder (assignment 05)

Subpackages
-----------
toolbox/        what notebooks use but no student implements: data, pretrained models, viz, bertviz
checks/         ``check()``, the checker behind it and the cases each graded function is checked on
grading/        the trusted grading pipeline (nbgrader underneath)
cli             the ``llmcourse`` command
"""

__version__ = "0.1.0"
