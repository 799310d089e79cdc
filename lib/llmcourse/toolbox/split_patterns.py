"""The regular expressions that cut text into chunks before BPE merges (GPT-2 and GPT-4).

BPE never merges across chunk boundaries, so " dog", " dog." and " dog!" share the token " dog"
instead of each wasting vocabulary on its punctuation. These patterns live in their own tiny module
so that graders and exercises can use them while ``llmcourse.tokenization`` (the answer key of
assignment 01) is unavailable.
"""

# GPT-2 (r50k_base): contractions, letters, numbers, other symbols, each with an optional leading space.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# GPT-4 (cl100k_base), exactly tiktoken's pat_str: case-insensitive contractions, numbers of at most
# three digits, and newlines kept apart from other whitespace.
GPT4_SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
