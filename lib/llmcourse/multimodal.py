"""One space for all data: images become tokens that a language model reads (PaLM-E).

A language model reads a sequence of vectors, one per token, from its embedding table. Nothing
forces those vectors to come from the table: anything mapped into the same C-dimensional space can
stand in a sentence. PaLM-E (Driess et al. 2023) does exactly that, in four steps, and so does this
file, on a toy world small enough to train in seconds:

1. **Images as patches.** A (3, H, W) image is cut into a grid of p x p patches, each flattened to a
   vector of 3*p*p numbers (:func:`patchify`): an image is now a *sequence*, like a sentence.
2. **Patches as tokens.** A linear map plus a learned position vector per patch
   (:class:`PatchEmbedding`, the first layer of a Vision Transformer) and a few bidirectional
   transformer blocks (:class:`ImageEncoder`) turn the patches into feature vectors.
3. **One space.** A small MLP, the **projector** (:class:`Projector`), maps the image features into
   the language model's embedding space.
4. **Multimodal sentences.** A sentence holds a placeholder token ``<img>`` wherever an image goes;
   :func:`splice` replaces each placeholder by that image's P vectors (PaLM-E's interleaving), and
   gives every vector its position in the new, longer sequence and a padding mask. The language
   model, frozen, reads the result as if it were text (:class:`MultimodalLM`).

Two self-supervised objectives train image features without labels:

* **Masked-patch prediction** (:func:`masked_patch_loss`, :class:`MaskedPatchModel`): hide some
  patches, predict their pixels from the rest (the lecture's "predict the missing patch"; SimMIM,
  MAE). Next-token prediction for images.
* **Contrastive learning** (:func:`contrastive_loss`, CLIP): in a batch of N (image, caption) pairs,
  make each image's feature closest to its own caption's among the N, and vice versa.

The toy world (:func:`draw_scene`): one coloured shape (4 colours x 4 shapes) in one of 4 places on a
black 24 x 24 image, drawn with numpy. A word-level language (:data:`WORDS`) describes it and asks
about it ("a red circle at top-left . colour? red shape? circle"). :func:`pretrain_lm` trains a tiny
GPT (unit 05) on such text only; :func:`train_projector` freezes it and trains the image side on
"<bos> <img> colour?" for scenes whose colour-shape pair is not in :data:`HELD_OUT`;
:func:`accuracy` asks about the held-out pairs, images the model has never seen.

Read top to bottom: the toy world, patches, the encoder and projector, the splice (a loop, then the
vectorised version), the multimodal LM, the two self-supervised losses, the toy language and the
training recipes, input checks.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .attention import MultiHeadAttention
from .transformer import GPT, MLP, GPTConfig, LayerNorm

# ----------------------------------------------------------------------------------------------
# 1. the toy world: one coloured shape at one of four places

COLOURS = {"red": (0.9, 0.15, 0.1), "green": (0.15, 0.75, 0.2), "blue": (0.2, 0.35, 1.0), "yellow": (0.95, 0.85, 0.1)}
SHAPES = ("square", "circle", "triangle", "cross")
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
IMAGE_SIZE = 24
PATCH_SIZE = 8  # a 3 x 3 grid of patches: 9 image tokens
# colour-shape pairs never seen as images in training (one per colour and per shape): the test set
JITTER = 0.0  # pixels the shape may move (0: shapes sit on the patch grid the same way every time)
HELD_OUT = (("red", "circle"), ("green", "triangle"), ("blue", "cross"), ("yellow", "square"))

Scene = tuple[str, str, str]  # (colour, shape, position)


def all_scenes() -> list[Scene]:
    """Every (colour, shape, position): 4 x 4 x 4 = 64 scenes."""
    return list(itertools.product(COLOURS, SHAPES, POSITIONS))


def split_scenes() -> tuple[list[Scene], list[Scene]]:
    """(train, held out): the held-out scenes are every scene of a :data:`HELD_OUT` colour-shape pair."""
    held = [s for s in all_scenes() if (s[0], s[1]) in HELD_OUT]
    return [s for s in all_scenes() if (s[0], s[1]) not in HELD_OUT], held


def draw_scene(colour: str, shape: str, position: str, size: int = IMAGE_SIZE, rng=None) -> np.ndarray:
    """A (size, size, 3) float32 image in [0, 1]: the shape on black, about half a quadrant across.

    rng (a ``numpy.random.Generator``) tints the colour slightly (and moves the shape by up to
    :data:`JITTER` pixels), so that no two training images are the same; None draws the canonical
    scene. With JITTER = 0 a shape always covers the same parts of the same patches: a ViT this small,
    trained for seconds, then tells the shapes apart; shifted shapes need more data and steps.
    """
    _check_scene(colour, shape, position, size)
    half = size / 2
    cy = (0.5 if position.startswith("top") else 1.5) * half  # the centre of the quadrant
    cx = (0.5 if position.endswith("left") else 1.5) * half
    rgb = np.array(COLOURS[colour], dtype=np.float32)
    if rng is not None:
        cy, cx = cy + rng.uniform(-1, 1) * JITTER, cx + rng.uniform(-1, 1) * JITTER
        rgb = np.clip(rgb + rng.uniform(-0.08, 0.08, 3), 0, 1).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    dy, dx, r = yy - cy, xx - cx, 0.24 * size
    inside = {
        "square": (np.abs(dx) <= 0.9 * r) & (np.abs(dy) <= 0.9 * r),
        "circle": dx**2 + dy**2 <= r**2,
        "triangle": (dy <= r) & (np.abs(dx) <= (dy + r) / 2),  # pointing up
        "cross": ((np.abs(dx) <= r / 3) & (np.abs(dy) <= r)) | ((np.abs(dy) <= r / 3) & (np.abs(dx) <= r)),
    }[shape]
    image = np.zeros((size, size, 3), dtype=np.float32)
    image[inside] = rgb
    return image


def to_tensor(images: Sequence[np.ndarray]) -> Tensor:
    """A list of (H, W, 3) numpy images -> (B, 3, H, W) float32, the layout torch convolutions use."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------------------------
# 2. images as sequences of patches


def patchify_loop(images: Tensor, patch_size: int) -> Tensor:
    """The definition, one patch at a time: (B, C, H, W) -> (B, N, C*p*p), N = (H/p) * (W/p).

    Patches are read row by row (left to right, then top to bottom); inside a patch the numbers
    are ordered channel, row, column: ``images[b, :, i*p:(i+1)*p, j*p:(j+1)*p].flatten()``.
    """
    _check_patchable(images, patch_size)
    p = patch_size
    B, C, H, W = images.shape
    rows = [
        images[:, :, i * p : (i + 1) * p, j * p : (j + 1) * p].reshape(B, C * p * p)  # (B, C*p*p)
        for i in range(H // p)
        for j in range(W // p)
    ]
    return torch.stack(rows, dim=1)  # (B, N, C*p*p)


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) -> (B, N, C*p*p), equal to :func:`patchify_loop`, as one reshape and permute.

    The same order as ``F.unfold(images, p, stride=p).transpose(1, 2)`` and as a ``Conv2d(C, D, p,
    stride=p)`` whose weight is flattened to (D, C*p*p): a patch embedding is that convolution.
    """
    _check_patchable(images, patch_size)
    p = patch_size
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)  # (B, C, gh, p, gw, p): split rows and columns
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, p, p): the grid first, each patch's pixels last
    return x.reshape(B, (H // p) * (W // p), C * p * p)  # (B, N, C*p*p)


def unpatchify(patches: Tensor, patch_size: int, height: int, width: int) -> Tensor:
    """The inverse of :func:`patchify`: (B, N, C*p*p) -> (B, C, H, W) (to look at predicted patches)."""
    p = patch_size
    B, N, D = patches.shape
    C = D // (p * p)
    x = patches.reshape(B, height // p, width // p, C, p, p)  # (B, gh, gw, C, p, p)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(B, C, height, width)


class PatchEmbedding(nn.Module):
    """ViT's first layer: (B, C, H, W) -> (B, N, n_embd), one vector per patch.

    Each flattened patch goes through one linear map (``proj``, shared by all patches), and a
    learned vector per patch position (``pos_emb``) is added: like tokens, patches need to know
    where they are, since attention ignores order.
    """

    def __init__(self, image_size: int, patch_size: int, channels: int, n_embd: int) -> None:
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(f"image_size={image_size} is not a multiple of patch_size={patch_size}")
        self.image_size, self.patch_size, self.channels = image_size, patch_size, channels
        self.n_patches = (image_size // patch_size) ** 2
        self.proj = nn.Linear(channels * patch_size**2, n_embd)
        self.pos_emb = nn.Parameter(torch.randn(self.n_patches, n_embd) * 0.02)

    def forward(self, images: Tensor) -> Tensor:  # (B, C, H, W) -> (B, N, n_embd)
        _check_images(images, self.image_size, self.channels)
        return self.proj(patchify(images, self.patch_size)) + self.pos_emb  # (B, N, D) + (N, D)


# ----------------------------------------------------------------------------------------------
# 3. the image encoder and the projector


class EncoderBlock(nn.Module):
    """A pre-norm transformer block whose attention is *bidirectional*: every patch sees every patch."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(n_embd)
        self.attn = MultiHeadAttention(n_embd, n_head, causal=False)
        self.ln_2 = LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, D) -> (B, N, D)
        x = x + self.attn(self.ln_1(x), need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class ImageEncoder(nn.Module):
    """A tiny Vision Transformer: patch embedding, blocks, LayerNorm. (B, 3, H, W) -> (B, N, n_embd).

    ``forward(images, replace=mask)`` swaps the embeddings of the patches where ``mask`` (B, N) is
    True for the learned ``mask_token`` (masked-patch prediction, section 5).
    """

    def __init__(
        self,
        image_size: int = IMAGE_SIZE,
        patch_size: int = PATCH_SIZE,
        n_embd: int = 48,
        n_layer: int = 2,
        n_head: int = 2,
    ) -> None:
        super().__init__()
        self.patches = PatchEmbedding(image_size, patch_size, 3, n_embd)
        self.mask_token = nn.Parameter(torch.zeros(n_embd))
        self.blocks = nn.ModuleList([EncoderBlock(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = LayerNorm(n_embd)

    def forward(self, images: Tensor, replace: Tensor | None = None) -> Tensor:
        x = self.patches(images)  # (B, N, D)
        if replace is not None:
            x = torch.where(replace[..., None], self.mask_token.to(x.dtype), x)  # hide the masked patches
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)  # (B, N, D)


class Projector(nn.Module):
    """Image features (..., d_image) -> the language model's embedding space (..., d_lm): an MLP."""

    def __init__(self, d_image: int, d_lm: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_image, 2 * d_lm)
        self.proj = nn.Linear(2 * d_lm, d_lm)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x)))


# ----------------------------------------------------------------------------------------------
# 4. multimodal sentences: splice the image tokens into the text at the placeholders


def splice_loop(
    text_emb: Tensor, is_image: Tensor, image_tokens: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The definition, one position at a time. Returns (x (B, L, C), positions (B, L), attn_mask (B, L)).

    text_emb (B, T, C): the embedded text, placeholders included; is_image (B, T) bool: True at a
    placeholder; image_tokens (N, P, C): P vectors per image, one image per placeholder, handed out
    in reading order (row 0 left to right, then row 1, ...); mask (B, T) bool: True at a real
    token (None: all real), padding tokens are dropped.

    Row b reads its real tokens in order and writes each text token's vector, or the next image's
    P vectors at a placeholder; rows are padded on the right with zeros to the longest row, L.
    positions count 0, 1, 2, ... along each new row (0 on padding); attn_mask is True on real slots.
    """
    B, T, C = text_emb.shape
    mask = _check_splice(text_emb, is_image, image_tokens, mask)
    rows, k = [], 0
    for b in range(B):
        row = []
        for t in range(T):
            if not mask[b, t]:
                continue
            if is_image[b, t]:
                row.extend(image_tokens[k])  # P vectors of C
                k += 1
            else:
                row.append(text_emb[b, t])
        rows.append(row)
    L = max(len(r) for r in rows)
    x = text_emb.new_zeros(B, L, C)
    positions = torch.zeros(B, L, dtype=torch.long)
    attn_mask = torch.zeros(B, L, dtype=torch.bool)
    for b, row in enumerate(rows):
        for i, v in enumerate(row):
            x[b, i], positions[b, i], attn_mask[b, i] = v, i, True
    return x, positions.to(text_emb.device), attn_mask.to(text_emb.device)


def splice(
    text_emb: Tensor, is_image: Tensor, image_tokens: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Equal to :func:`splice_loop`, vectorised: every slot's destination is a cumulative sum.

    Each real token takes 1 slot, each placeholder P, padding 0; a token's first slot is the number
    of slots taken before it. Text vectors are copied to their slot, image vectors to P consecutive
    slots, both with one indexed assignment.
    """
    B, T, C = text_emb.shape
    mask = _check_splice(text_emb, is_image, image_tokens, mask)
    P = image_tokens.size(1)
    dev = text_emb.device
    width = torch.where(is_image, P, 1) * mask  # (B, T): slots each input token takes
    start = width.cumsum(dim=1) - width  # (B, T): its first slot in the new row
    length = width.sum(dim=1)  # (B,): the new row lengths
    L = int(length.max())
    x = text_emb.new_zeros(B, L, C)  # (B, L, C)
    text = mask & ~is_image
    x[text.nonzero(as_tuple=True)[0], start[text]] = text_emb[text]  # (n_text, C) into their slots
    rows, cols = (mask & is_image).nonzero(as_tuple=True)  # the placeholders, in reading order
    slots = start[rows, cols][:, None] + torch.arange(P, device=dev)  # (N, P)
    x[rows[:, None].expand(-1, P), slots] = image_tokens.to(x.dtype)  # (N, P, C) into (N, P) slots
    attn_mask = torch.arange(L, device=dev)[None, :] < length[:, None]  # (B, L)
    positions = torch.arange(L, device=dev).expand(B, L) * attn_mask  # (B, L): 0 on padding
    return x, positions, attn_mask


def lm_from_embeddings(lm: GPT, x: Tensor, positions: Tensor, attn_mask: Tensor) -> Tensor:
    """The GPT's forward pass from input vectors instead of ids: x (B, L, C) -> logits (B, L, V).

    Adds the position embedding of each slot's position and hides padding keys (attn_mask (B, L))
    from every query, on top of the causal mask. With x = lm.wte(ids), positions 0..T-1 and no
    padding it equals ``lm(ids)``.
    """
    table = lm.wpe.weight if lm.wpe is not None else lm.pe  # (block_size, C)
    if positions.numel() and int(positions.max()) >= lm.config.block_size:
        raise ValueError(f"the multimodal sentence is longer than block_size={lm.config.block_size}")
    h = x + table[positions]  # (B, L, C) + (B, L, C)
    keys = attn_mask[:, None, None, :]  # (B, 1, 1, L): padding is no key
    for block in lm.blocks:
        h = h + block.attn(block.ln_1(h), mask=keys, need_weights=False)[0]
        h = h + block.mlp(block.ln_2(h))
    return lm.lm_head(lm.ln_f(h))  # (B, L, V)


class MultimodalLM(nn.Module):
    """A frozen language model that reads images: encoder -> projector -> splice -> GPT.

    ``forward(ids, images)``: ids (B, T) hold ``image_id`` wherever an image goes (pad_id for
    padding); images (N, 3, H, W), one per placeholder in reading order. Returns (logits (B, L, V),
    attn_mask (B, L)). Only the encoder and the projector have trainable parameters.
    """

    def __init__(self, lm: GPT, encoder: ImageEncoder, image_id: int, pad_id: int) -> None:
        super().__init__()
        self.lm, self.encoder, self.image_id, self.pad_id = lm, encoder, image_id, pad_id
        self.projector = Projector(encoder.ln_f.weight.numel(), lm.config.n_embd)
        for p in self.lm.parameters():
            p.requires_grad_(False)

    def forward(self, ids: Tensor, images: Tensor) -> tuple[Tensor, Tensor]:
        image_tokens = self.projector(self.encoder(images))  # (N, P, C): images in the LM's space
        x, positions, attn_mask = splice(self.lm.wte(ids), ids == self.image_id, image_tokens, ids != self.pad_id)
        return lm_from_embeddings(self.lm, x, positions, attn_mask), attn_mask


# ----------------------------------------------------------------------------------------------
# 5. two self-supervised losses


def random_patch_mask(B: int, N: int, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """(B, N) bool with exactly round(ratio * N) True (masked) patches per image, at random places."""
    k = round(ratio * N)
    order = torch.rand(B, N, generator=generator).argsort(dim=1)  # a random permutation per row
    return order < k  # the patches whose rank is below k


def masked_patch_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the masked patches only: pred, target (B, N, D), mask (B, N) bool.

    Each masked patch contributes the mean of its D squared errors; the loss is the mean over the
    masked patches (visible patches are given, predicting them teaches nothing). No masked patch:
    0, not nan.
    """
    per_patch = ((pred - target) ** 2).mean(dim=-1)  # (B, N)
    m = mask.to(per_patch.dtype)
    return (per_patch * m).sum() / m.sum().clamp(min=1)


class MaskedPatchModel(nn.Module):
    """Masked-patch prediction (SimMIM): hidden patches become the mask token, a linear head predicts
    their pixels from the encoder's output. ``forward(images, mask) -> (pred (B, N, 3p^2), loss)``."""

    def __init__(self, encoder: ImageEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        pe = encoder.patches
        self.head = nn.Linear(pe.proj.out_features, pe.proj.in_features)

    def forward(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        pred = self.head(self.encoder(images, replace=mask))  # (B, N, 3*p*p)
        target = patchify(images, self.encoder.patches.patch_size)
        return pred, masked_patch_loss(pred, target, mask)


def contrastive_loss_loop(image_features: Tensor, text_features: Tensor, temperature: float = 0.1) -> Tensor:
    """The definition, pair by pair: see :func:`contrastive_loss`."""
    i, t = _unit(image_features), _unit(text_features)
    N = i.size(0)
    total = i.new_zeros(())
    for k in range(N):
        sims_i = torch.stack([i[k] @ t[j] for j in range(N)]) / temperature  # image k vs every caption
        sims_t = torch.stack([t[k] @ i[j] for j in range(N)]) / temperature  # caption k vs every image
        total = total - (sims_i[k] - torch.logsumexp(sims_i, 0)) - (sims_t[k] - torch.logsumexp(sims_t, 0))
    return total / (2 * N)


def contrastive_loss(image_features: Tensor, text_features: Tensor, temperature: float = 0.1) -> Tensor:
    """CLIP's symmetric loss for N matching pairs: image_features (N, D), text_features (N, D).

    Normalise both to unit length; logits[i, j] = cos(image i, text j) / temperature (N, N). Row i
    is a classification of image i over the N captions whose answer is i, column j one of caption j
    over the N images: the loss is the mean of the two cross-entropies. Equal to
    ``(F.cross_entropy(logits, arange(N)) + F.cross_entropy(logits.T, arange(N))) / 2``.
    """
    _check_pairs(image_features, text_features, temperature)
    logits = _unit(image_features) @ _unit(text_features).T / temperature  # (N, N)
    diag = logits.diagonal()  # (N,): the matching pairs
    image_to_text = (torch.logsumexp(logits, dim=1) - diag).mean()  # -log p(own caption | image)
    text_to_image = (torch.logsumexp(logits, dim=0) - diag).mean()  # -log p(own image | caption)
    return (image_to_text + text_to_image) / 2


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)  # (N, D), rows of length 1


# ----------------------------------------------------------------------------------------------
# 6. the toy language, and training recipes

WORDS = (
    ["<pad>", "<bos>", "<img>", ".", "a", "at", "there", "is", "the", "in", "this", "picture"]
    + ["colour?", "shape?", "where?"]
    + list(COLOURS)
    + list(SHAPES)
    + list(POSITIONS)
)
WORD_ID = {w: i for i, w in enumerate(WORDS)}
PAD, BOS, IMG = WORD_ID["<pad>"], WORD_ID["<bos>"], WORD_ID["<img>"]
QUESTIONS = {"colour?": 0, "shape?": 1, "where?": 2}  # question word -> the scene field it asks for
CAPTIONS = (
    "a {c} {s} at {p} .",
    "at {p} there is a {c} {s} .",
    "the {s} at {p} is {c} .",
    "in this picture at {p} there is a {c} {s} .",
)


def encode(text: str) -> list[int]:
    """Words (split on spaces) -> ids; an unknown word is a clear error."""
    unknown = [w for w in text.split() if w not in WORD_ID]
    if unknown:
        raise ValueError(f"words outside the toy vocabulary: {unknown}")
    return [WORD_ID[w] for w in text.split()]


def decode(ids: Sequence[int]) -> str:
    return " ".join(WORDS[i] for i in ids)


def answer_word(scene: Scene, kind: str) -> str:
    """The answer to question ``kind`` ('colour?', 'shape?' or 'where?') about ``scene``."""
    if kind not in QUESTIONS:
        raise ValueError(f"question must be one of {list(QUESTIONS)}, got {kind!r}")
    return scene[QUESTIONS[kind]]


def text_episode(scene: Scene, template: int = 0, order: Sequence[str] = tuple(QUESTIONS)) -> str:
    """'<bos> a red circle at top-left . colour? red shape? circle where? top-left': a caption, then
    questions, each followed by its answer."""
    c, s, p = scene
    qa = " ".join(f"{k} {answer_word(scene, k)}" for k in order)
    return f"<bos> {CAPTIONS[template].format(c=c, s=s, p=p)} {qa}"


def text_batch(n: int, r: random.Random) -> tuple[Tensor, Tensor]:
    """(x, y) (n, T): random episodes (any scene, caption form and question order), padded on the
    right; y holds the answer after each question and -1 (ignored) elsewhere. Captions are random,
    so nothing in them can be predicted: the loss is on the answers only (the masked loss of unit 08)."""
    rows = []
    for _ in range(n):
        order = r.sample(list(QUESTIONS), len(QUESTIONS))
        rows.append(encode(text_episode(r.choice(all_scenes()), r.randrange(len(CAPTIONS)), order)))
    T = max(len(row) for row in rows)
    x = torch.full((n, T), PAD)
    y = torch.full((n, T), -1)
    for i, row in enumerate(rows):
        x[i, : len(row)] = torch.tensor(row)
        y[i, : len(row) - 1] = torch.tensor(row[1:])
    is_question = torch.isin(x, torch.tensor([WORD_ID[k] for k in QUESTIONS]))
    return x, torch.where(is_question, y, -1)


def pretrain_lm(steps: int = 250, seed: int = 0, n_embd: int = 48) -> GPT:
    """A tiny GPT (2 layers) trained on toy text only to answer questions about a caption."""
    torch.manual_seed(seed)
    lm = GPT(GPTConfig(block_size=32, vocab_size=len(WORDS), n_layer=2, n_head=2, n_embd=n_embd))
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3, weight_decay=0.0, betas=(0.9, 0.98))
    r = random.Random(seed)
    for step in range(steps):
        for group in opt.param_groups:  # constant, then a linear decay to 0 over the second half
            group["lr"] = 3e-3 * min(1.0, 2 * (steps - step) / steps)
        _, loss = lm(*text_batch(32, r))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return lm.eval()


def question_batch(scenes: Sequence[Scene], kinds: Sequence[str], rng=None) -> tuple[Tensor, Tensor, Tensor]:
    """(ids (B, 3), images (B, 3, H, W), answers (B,)): '<bos> <img> colour?' and the answer's id."""
    ids = torch.tensor([[BOS, IMG, WORD_ID[k]] for k in kinds])
    images = to_tensor([draw_scene(*s, rng=rng) for s in scenes])
    answers = torch.tensor([WORD_ID[answer_word(s, k)] for s, k in zip(scenes, kinds)])
    return ids, images, answers


def answer_logits(model: MultimodalLM, ids: Tensor, images: Tensor) -> Tensor:
    """(B, V): the logits of the word after the question, the last slot of each (unpadded) row."""
    logits, _ = model(ids, images)  # (B, L, V)
    return logits[:, -1]


def pretrain_encoder(steps: int = 200, seed: int = 0, ratio: float = 0.5, n_embd: int = 48) -> ImageEncoder:
    """Masked-patch prediction on training scenes (no labels, no held-out pair): returns the encoder."""
    torch.manual_seed(seed)
    model = MaskedPatchModel(ImageEncoder(n_embd=n_embd))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    train, _ = split_scenes()
    rng, r, g = np.random.default_rng(seed), random.Random(seed), torch.Generator().manual_seed(seed)
    for _ in range(steps):
        images = to_tensor([draw_scene(*r.choice(train), rng=rng) for _ in range(32)])
        _, loss = model(images, random_patch_mask(32, model.encoder.patches.n_patches, ratio, g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.encoder.eval()


def train_projector(
    lm: GPT, encoder: ImageEncoder, steps: int = 300, seed: int = 0, train_encoder: bool = True
) -> MultimodalLM:
    """Freeze the LM; train the projector (and the encoder unless train_encoder=False) to answer
    questions about images of training scenes. Cross-entropy on the answer word only."""
    torch.manual_seed(seed)
    model = MultimodalLM(lm, encoder, IMG, PAD)
    if not train_encoder:
        for p in encoder.parameters():
            p.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0)
    train, _ = split_scenes()
    rng, r = np.random.default_rng(seed), random.Random(seed)
    model.train()
    for _ in range(steps):
        scenes = [r.choice(train) for _ in range(32)]
        ids, images, answers = question_batch(scenes, [r.choice(list(QUESTIONS)) for _ in range(32)], rng)
        loss = F.cross_entropy(answer_logits(model, ids, images), answers)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: MultimodalLM, scenes: Sequence[Scene], seed: int = 1) -> dict[str, float]:
    """Per question, the fraction of scenes whose answer (the argmax over every word) is right."""
    rng = np.random.default_rng(seed)
    out = {}
    for kind in QUESTIONS:
        ids, images, answers = question_batch(scenes, [kind] * len(scenes), rng)
        out[kind] = (answer_logits(model, ids, images).argmax(-1) == answers).float().mean().item()
    return out


# ----------------------------------------------------------------------------------------------
# input checks


def _check_scene(colour, shape, position, size) -> None:
    for value, known, what in (
        (colour, COLOURS, "colour"),
        (shape, SHAPES, "shape"),
        (position, POSITIONS, "position"),
    ):
        if value not in known:
            raise ValueError(f"unknown {what} {value!r}; known: {list(known)}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")


def _check_patchable(images, patch_size) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, C, H, W) tensor, got {got}")
    if not isinstance(patch_size, int) or patch_size <= 0:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    H, W = images.shape[-2:]
    if H % patch_size or W % patch_size:
        raise ValueError(f"an image of {H} x {W} pixels cannot be cut into {patch_size} x {patch_size} patches")


def _check_images(images, image_size, channels) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, C, H, W) tensor, got {got}")
    want = (channels, image_size, image_size)
    if tuple(images.shape[1:]) != want:
        raise ValueError(
            f"images must be (B, {channels}, {image_size}, {image_size}), got {tuple(images.shape)}: "
            "this patch embedding has one position vector per patch of that size"
        )


def _check_splice(text_emb, is_image, image_tokens, mask) -> Tensor:
    if text_emb.dim() != 3:
        raise ValueError(f"text_emb must be (B, T, C), got shape {tuple(text_emb.shape)}")
    B, T, C = text_emb.shape
    if image_tokens.dim() != 3 or image_tokens.size(-1) != C:
        raise ValueError(f"image_tokens must be (N, P, C={C}), got shape {tuple(image_tokens.shape)}")
    if mask is None:
        mask = torch.ones(B, T, dtype=torch.bool, device=text_emb.device)
    for t, name in ((is_image, "is_image"), (mask, "mask")):
        if t.dtype != torch.bool or tuple(t.shape) != (B, T):
            raise ValueError(f"{name} must be a (B, T) = {(B, T)} bool tensor, got {t.dtype} {tuple(t.shape)}")
    n = int((is_image & mask).sum())
    if n != image_tokens.size(0):
        raise ValueError(f"the text has {n} image placeholders but {image_tokens.size(0)} images were given")
    return mask


def _check_pairs(image_features, text_features, temperature) -> None:
    if image_features.dim() != 2 or image_features.shape != text_features.shape:
        raise ValueError(
            "image_features and text_features must both be (N, D), pair i = row i of each; got "
            f"{tuple(image_features.shape)} and {tuple(text_features.shape)}"
        )
    if not (isinstance(temperature, (int, float)) and temperature > 0 and temperature != float("inf")):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
