"""Cases for assignment 12 (one space for all data): patchify, the patch embedding, the splice of
image tokens into a sentence, the contrastive loss and the masked-patch loss.

Visible cases are small and readable (images of consecutive numbers, a sentence of four tokens).
Hidden cases add edge cases (one pixel per patch, a single patch, non-square and non-contiguous
images, a placeholder first and last, placeholders on padding, a row that is all padding, no image
at all, one pair, huge logits, no masked patch, float64) and random cases drawn from the grader's
seed. Nothing here imports ``llmcourse.multimodal`` (the answer key, unavailable while grading):
inputs are built from first principles with ``torch`` alone.

The patch embedding is graded as a class: :func:`run_patch_embedding` builds
``PatchEmbedding(image_size, patch_size, channels, n_embd)``, loads the case's seeded weights under
the reference's names (``proj``, an ``nn.Linear(channels * p * p, n_embd)``, and ``pos_emb``, an
(N, n_embd) parameter) and applies it to the case's images.
"""

from __future__ import annotations

import torch

from . import _kit
from ._kit import Param
from ._kit import randn as _randn
from .checker import Case, Spec

# float32: a correct solution that sums in another order differs by ~1e-6; every real mistake (a wrong
# patch order, an unnormalised feature, a one-sided loss, a mean over every patch) by far more
TOL = dict(rtol=1e-4, atol=1e-5)

# the library calls each part asks students to write themselves (the method form: torch.Tensor.<name>)
FORBIDDEN_PATCHES = (
    "torch.nn.functional.unfold",
    "torch.nn.Unfold",
    "torch.Tensor.unfold",
    "torch.nn.functional.conv2d",
    "torch.nn.Conv2d",
    "torch.conv2d",
)
FORBIDDEN_CROSS_ENTROPY = (
    "torch.nn.functional.cross_entropy",
    "torch.nn.CrossEntropyLoss",
    "torch.nn.functional.nll_loss",
    "torch.nn.NLLLoss",
)
FORBIDDEN_MSE = ("torch.nn.functional.mse_loss", "torch.nn.MSELoss")


# --------------------------------------------------------------------------- patchify


def _counting(*shape: int, dtype=torch.float32) -> torch.Tensor:
    """0, 1, 2, ... in the given shape: every pixel says where it came from."""
    n = 1
    for s in shape:
        n *= s
    return torch.arange(n, dtype=dtype).reshape(shape)


def _patchify_visible() -> list[Case]:
    return [
        Case((_counting(1, 1, 4, 4), 2), "one 4 x 4 grey image, 2 x 2 patches"),
        Case((_counting(1, 3, 4, 4), 2), "three channels: a patch lists channel 0, then 1, then 2"),
        Case((_counting(2, 3, 4, 6), 2), "two non-square images (4 x 6)"),
        Case((_counting(1, 2, 3, 3), 3), "one patch: the whole image"),
    ]


def _patchify_hidden(seed: int) -> list[Case]:
    g = _kit.generator("multimodal.patchify", seed)
    channels_last = _randn(g, 2, 8, 8, 3).permute(0, 3, 1, 2)  # (2, 3, 8, 8), not contiguous
    return [
        Case((_counting(2, 3, 4, 4, dtype=torch.float64), 1), "one pixel per patch, float64"),
        Case((_randn(g, 1, 1, 6, 6), 6), "a single patch, one channel"),
        Case((channels_last, 4), "a non-contiguous batch (the output of a permute)"),
        Case((_randn(g, 3, 3, 8, 12), 4), "random non-square batch"),
        Case((_randn(g, 4, 3, 24, 24), 6), "random batch of toy-world-sized images"),
        Case((_randn(g, 2, 5, 10, 10, dtype=torch.float64), 5), "random float64, five channels"),
    ]


# --------------------------------------------------------------------------- patch embedding


def patch_embedding_layout(image_size: int, patch_size: int, channels: int, n_embd: int) -> list[Param]:
    """The reference's parameters: proj (nn.Linear(channels * p * p, n_embd)) and pos_emb (N, n_embd)."""
    n_patches = (image_size // patch_size) ** 2
    return _kit.linear_params("proj.", channels * patch_size**2, n_embd, bias=True) + [
        Param("pos_emb", (n_patches, n_embd), scale=0.5)
    ]


@_kit.single_threaded
def run_patch_embedding(
    cls,
    *,
    image_size: int,
    patch_size: int,
    channels: int,
    n_embd: int,
    state_dict: dict[str, torch.Tensor],
    images: torch.Tensor,
) -> torch.Tensor:
    """``cls(image_size, patch_size, channels, n_embd)`` with ``state_dict`` loaded, in eval mode, on ``images``."""
    layer = _kit.build(
        cls,
        (image_size, patch_size, channels, n_embd),
        {},
        state_dict,
        images.dtype,
        f"PatchEmbedding({image_size}, {patch_size}, {channels}, {n_embd})",
    )
    with torch.no_grad():
        return layer(images)


def _pe_case(g, image_size, patch_size, channels, n_embd, B, label, dtype=torch.float32) -> Case:
    layout = patch_embedding_layout(image_size, patch_size, channels, n_embd)
    kwargs = {
        "image_size": image_size,
        "patch_size": patch_size,
        "channels": channels,
        "n_embd": n_embd,
        "state_dict": _kit.random_state_dict(layout, g, dtype),
        "images": _randn(g, B, channels, image_size, image_size, dtype=dtype),
    }
    return Case((), label, kwargs)


def _pe_visible() -> list[Case]:
    g = _kit.seeded(12)
    return [
        _pe_case(g, 4, 2, 1, 3, 1, "4 x 4 grey image, 2 x 2 patches, n_embd=3"),
        _pe_case(g, 6, 3, 3, 4, 2, "two 6 x 6 colour images, 3 x 3 patches, n_embd=4"),
    ]


def _pe_hidden(seed: int) -> list[Case]:
    g = _kit.generator("multimodal.patch_embedding", seed)
    return [
        _pe_case(g, 4, 4, 3, 5, 2, "a single patch per image"),
        _pe_case(g, 4, 1, 2, 6, 1, "one pixel per patch"),
        _pe_case(g, 8, 2, 3, 8, 2, "float64", dtype=torch.float64),
        _pe_case(g, 24, 6, 3, 16, 3, "random, toy-world size"),
    ]


# --------------------------------------------------------------------------- splice


def _ids_case(rows: list[list[int]], P: int, C: int, g=None, dtype=torch.float32, label="") -> Case:
    """A case from rows of codes: 0 = a text token, 1 = a placeholder, 2 = padding (mask False), 3 = a
    placeholder on padding (mask False: ignored). Text vectors count up (or are random with g)."""
    codes = torch.tensor(rows)
    B, T = codes.shape
    n_images = int((codes == 1).sum())
    if g is None:
        text = (torch.arange(B * T * C, dtype=dtype).reshape(B, T, C) + 1) / 10
        images = -(torch.arange(n_images * P * C, dtype=dtype).reshape(n_images, P, C) + 1)
    else:
        text, images = _randn(g, B, T, C, dtype=dtype), _randn(g, n_images, P, C, dtype=dtype, offset=3.0)
    is_image = (codes == 1) | (codes == 3)
    mask = (codes == 0) | (codes == 1)
    return Case((text, is_image, images, None if mask.all() else mask), label)


def _splice_visible() -> list[Case]:
    return [
        _ids_case([[0, 1, 0, 0]], 3, 2, label="one sentence, one image of 3 tokens"),
        _ids_case([[1, 0, 1, 0]], 2, 2, label="two images in one sentence, one at the start"),
        _ids_case([[0, 1, 0], [0, 0, 0]], 2, 2, label="the second sentence has no image: padded"),
        _ids_case([[0, 1, 0, 2], [1, 0, 2, 2]], 3, 1, label="padding tokens (mask False) are dropped"),
    ]


def _random_rows(r, B: int, T: int) -> list[list[int]]:
    rows = []
    for _ in range(B):
        n = r.randint(1, T)
        rows.append([r.choice([0, 0, 0, 1]) for _ in range(n)] + [2] * (T - n))
    return rows


def _splice_hidden(seed: int) -> list[Case]:
    g = _kit.generator("multimodal.splice", seed)
    r = _kit.rng("multimodal.splice", seed)
    cases = [
        _ids_case([[1, 0, 0, 1]], 2, 3, g, label="placeholders first and last"),
        _ids_case([[0, 1, 1, 0]], 4, 2, g, label="two images side by side"),
        _ids_case([[0, 1, 0], [1, 1, 1]], 1, 2, g, label="one token per image: nothing moves"),
        _ids_case([[0, 0, 0], [0, 0, 0]], 3, 2, g, label="no image at all"),
        _ids_case([[0, 1, 3, 2], [0, 3, 0, 2]], 2, 2, g, label="placeholders on padding are ignored"),
        _ids_case([[0, 1, 0], [2, 2, 2]], 2, 2, g, label="a sentence that is all padding"),
        _ids_case([[1, 0], [0, 1]], 3, 2, g, dtype=torch.float64, label="float64"),
    ]
    for B, T, P, C in [(3, 6, 2, 4), (4, 10, 5, 8)]:
        rows = _random_rows(r, B, T)
        cases.append(_ids_case(rows, P, C, g, label=f"random batch of {B} sentences"))
    return cases


# --------------------------------------------------------------------------- contrastive loss


def _contrastive_visible() -> list[Case]:
    eye = torch.eye(3)
    g = _kit.seeded(12)
    return [
        Case((eye, eye, 1.0), "three matching pairs of orthogonal unit vectors, temperature 1"),
        Case((eye, eye.flip(0), 1.0), "pairs mismatched: image 0's closest caption is caption 2"),
        Case((_randn(g, 4, 8), _randn(g, 4, 8), 0.1), "random 4 pairs of 8-dim features"),
        Case((3 * eye, eye, 0.5), "features of length 3 are normalised first"),
    ]


def _contrastive_hidden(seed: int) -> list[Case]:
    g = _kit.generator("multimodal.contrastive_loss", seed)
    x = _randn(g, 5, 6)
    return [
        Case((_randn(g, 1, 4), _randn(g, 1, 4), 0.1), "one pair: nothing to contrast with"),
        Case((x, x + 0.1 * _randn(g, 5, 6), 0.01), "temperature 0.01: logits near 100"),
        Case((x * 1000, _randn(g, 5, 6) / 1000, 0.07), "features of very different lengths"),
        Case((_randn(g, 6, 3, dtype=torch.float64), _randn(g, 6, 3, dtype=torch.float64), 0.2), "float64"),
        Case((_randn(g, 4, 5), _randn(g, 4, 5), 1), "temperature given as an int"),
        Case((_randn(g, 16, 32), _randn(g, 16, 32), 0.07), "random 16 pairs, CLIP's temperature"),
    ]


# --------------------------------------------------------------------------- masked-patch loss


def _mpl_visible() -> list[Case]:
    pred = torch.tensor([[[1.0, 1.0], [0.0, 0.0], [2.0, 0.0]]])  # (1, 3, 2)
    target = torch.zeros(1, 3, 2)
    g = _kit.seeded(12)
    return [
        Case((pred, target, torch.tensor([[True, True, True]])), "every patch masked"),
        Case((pred, target, torch.tensor([[False, False, True]])), "only the last patch masked"),
        Case(
            (_randn(g, 2, 4, 3), _randn(g, 2, 4, 3), torch.tensor([[True, False, True, False], [False] * 3 + [True]])),
            "two images, a different number of masked patches each",
        ),
    ]


def _mpl_hidden(seed: int) -> list[Case]:
    g = _kit.generator("multimodal.masked_patch_loss", seed)
    cases = [
        Case((_randn(g, 2, 3, 4), _randn(g, 2, 3, 4), torch.zeros(2, 3, dtype=torch.bool)), "no patch masked"),
        Case((_randn(g, 1, 1, 5), _randn(g, 1, 1, 5), torch.ones(1, 1, dtype=torch.bool)), "a single patch"),
    ]
    f64 = torch.float64
    cases.append(Case((_randn(g, 3, 4, 2, dtype=f64), _randn(g, 3, 4, 2, dtype=f64), _random_mask(g, 3, 4)), "float64"))
    for B, N, D in [(4, 16, 108), (8, 9, 12)]:
        mask = _random_mask(g, B, N)
        mask[0] = False  # one image with nothing masked: it adds nothing
        cases.append(Case((_randn(g, B, N, D), _randn(g, B, N, D), mask), f"random batch of {B} images"))
    return cases


def _random_mask(g, B: int, N: int) -> torch.Tensor:
    return torch.rand(B, N, generator=g, dtype=torch.float64) < 0.5


SPECS = [
    Spec(
        "multimodal.patchify",
        "llmcourse.multimodal:patchify",
        _patchify_visible,
        _patchify_hidden,
        forbidden=FORBIDDEN_PATCHES,
    ),
    Spec(
        "multimodal.patch_embedding",
        "llmcourse.multimodal:PatchEmbedding",
        _pe_visible,
        _pe_hidden,
        adapter=run_patch_embedding,
        forbidden=FORBIDDEN_PATCHES,
        **TOL,
    ),
    Spec("multimodal.splice", "llmcourse.multimodal:splice", _splice_visible, _splice_hidden),
    Spec(
        "multimodal.contrastive_loss",
        "llmcourse.multimodal:contrastive_loss",
        _contrastive_visible,
        _contrastive_hidden,
        forbidden=FORBIDDEN_CROSS_ENTROPY,
        **TOL,
    ),
    Spec(
        "multimodal.masked_patch_loss",
        "llmcourse.multimodal:masked_patch_loss",
        _mpl_visible,
        _mpl_hidden,
        forbidden=FORBIDDEN_MSE,
        **TOL,
    ),
]
