"""llmcourse.multimodal against independent formulations: patchify vs torch's unfold and a Conv2d with
copied weights, the splice vs a reference loop, the contrastive loss vs F.cross_entropy, the
masked-patch loss vs F.mse_loss; and the whole PaLM-E recipe: a frozen tiny GPT with a trained
image side answers questions about colour-shape pairs it never saw as images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from llmcourse import multimodal as mm
from llmcourse.checks._kit import one_thread, single_threaded
from llmcourse.transformer import GPT, GPTConfig


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- the toy world


def test_scenes_are_drawn_where_and_as_asked():
    img = mm.draw_scene("red", "square", "bottom-right")
    assert img.shape == (24, 24, 3) and img.dtype == np.float32
    lit = img.sum(-1) > 0
    assert lit[12:, 12:].any() and not lit[:12].any() and not lit[:, :12].any(), "only the bottom-right quadrant"
    assert np.allclose(img[lit], mm.COLOURS["red"])
    areas = {s: (mm.draw_scene("blue", s, "top-left").sum(-1) > 0).sum() for s in mm.SHAPES}
    assert len(set(areas.values())) == 4, f"four different shapes: {areas}"
    train, held = mm.split_scenes()
    assert len(train) == 48 and len(held) == 16 and not set(train) & set(held)


def test_bad_scenes_are_clear_errors():
    with pytest.raises(ValueError, match="unknown colour 'purple'"):
        mm.draw_scene("purple", "square", "top-left")
    with pytest.raises(ValueError, match="unknown position"):
        mm.draw_scene("red", "square", "middle")


# --------------------------------------------------------------------------- patches


@pytest.mark.parametrize("shape,p", [((2, 3, 24, 24), 8), ((1, 1, 4, 6), 2), ((3, 2, 6, 6), 1), ((1, 3, 5, 5), 5)])
def test_patchify_equals_torch_unfold_and_the_loop(shape, p):
    x = torch.randn(*shape, generator=g())
    expected = F.unfold(x, kernel_size=p, stride=p).transpose(1, 2)  # (B, N, C*p*p), torch's own order
    assert torch.equal(mm.patchify(x, p), expected)
    assert torch.equal(mm.patchify_loop(x, p), expected)
    H, W = shape[-2:]
    assert torch.equal(mm.unpatchify(mm.patchify(x, p), p, H, W), x)


def test_patch_embedding_is_a_strided_convolution():
    pe = mm.PatchEmbedding(image_size=24, patch_size=8, channels=3, n_embd=16)
    conv = torch.nn.Conv2d(3, 16, kernel_size=8, stride=8)
    with torch.no_grad():
        conv.weight.copy_(pe.proj.weight.reshape(16, 3, 8, 8))
        conv.bias.copy_(pe.proj.bias)
        x = torch.randn(2, 3, 24, 24, generator=g(1))
        expected = conv(x).flatten(2).transpose(1, 2) + pe.pos_emb  # (B, D, 3, 3) -> (B, 9, D)
        torch.testing.assert_close(pe(x), expected, rtol=1e-5, atol=1e-5)


def test_images_of_the_wrong_size_are_clear_errors():
    pe = mm.PatchEmbedding(24, 8, 3, 16)
    with pytest.raises(ValueError, match=r"images must be \(B, 3, 24, 24\), got \(2, 3, 32, 32\)"):
        pe(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"images must be a \(B, C, H, W\) tensor"):
        pe(torch.zeros(3, 24, 24))
    with pytest.raises(ValueError, match="cannot be cut into 8 x 8 patches"):
        mm.patchify(torch.zeros(1, 3, 20, 24), 8)
    with pytest.raises(ValueError, match="not a multiple"):
        mm.PatchEmbedding(20, 8, 3, 16)


# --------------------------------------------------------------------------- the splice


def reference_splice(text_emb, is_image, image_tokens, mask):
    """Written here from the definition, as lists of rows: no shared code with the module."""
    queue = list(image_tokens)
    rows = []
    for b in range(text_emb.shape[0]):
        row = []
        for t in range(text_emb.shape[1]):
            if mask[b, t]:
                row += list(queue.pop(0)) if is_image[b, t] else [text_emb[b, t]]
        rows.append(row)
    L = max(map(len, rows))
    x = torch.zeros(len(rows), L, text_emb.shape[-1], dtype=text_emb.dtype)
    for b, row in enumerate(rows):
        if row:
            x[b, : len(row)] = torch.stack(row)
    lengths = torch.tensor([len(r) for r in rows])
    real = torch.arange(L)[None] < lengths[:, None]
    return x, torch.where(real, torch.arange(L)[None], 0), real


@pytest.mark.parametrize("seed", range(6))
def test_splice_equals_a_reference_loop(seed):
    gen = g(seed)
    B, T, C, P = 3, 7, 4, int(torch.randint(1, 5, (), generator=gen))
    is_image = torch.rand(B, T, generator=gen) < 0.3
    mask = torch.arange(T)[None] < torch.randint(0, T + 1, (B, 1), generator=gen)  # right padding, maybe empty
    mask[0] = True
    n = int((is_image & mask).sum())
    text, images = torch.randn(B, T, C, generator=gen), torch.randn(n, P, C, generator=gen)
    expected = reference_splice(text, is_image, images, mask)
    for fn in (mm.splice, mm.splice_loop):
        x, positions, attn_mask = fn(text, is_image, images, mask)
        assert torch.equal(x, expected[0]) and torch.equal(positions, expected[1])
        assert torch.equal(attn_mask, expected[2]) and positions.dtype == torch.long


def test_splice_example_by_hand():
    text = torch.tensor([[[1.0], [0.0], [2.0]]])  # "a <img> b", C = 1
    images = torch.tensor([[[7.0], [8.0]]])  # one image of P = 2 tokens
    x, positions, attn_mask = mm.splice(text, torch.tensor([[False, True, False]]), images)
    assert x.flatten().tolist() == [1.0, 7.0, 8.0, 2.0]
    assert positions.tolist() == [[0, 1, 2, 3]] and attn_mask.all()


def test_a_placeholder_count_that_does_not_match_the_images_is_a_clear_error():
    text, is_image = torch.zeros(2, 4, 3), torch.tensor([[False, True, False, False], [True, False, False, True]])
    with pytest.raises(ValueError, match="3 image placeholders but 2 images"):
        mm.splice(text, is_image, torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="image_tokens must be"):
        mm.splice(text, is_image, torch.zeros(3, 5, 4))


def test_the_lm_reads_embeddings_as_it_reads_ids():
    torch.manual_seed(0)
    lm = GPT(GPTConfig(block_size=16, vocab_size=20, n_layer=2, n_head=2, n_embd=16)).eval()
    ids = torch.randint(0, 20, (2, 9), generator=g(2))
    x, positions, attn_mask = mm.splice(lm.wte(ids), torch.zeros(2, 9, dtype=torch.bool), torch.zeros(0, 1, 16))
    with torch.no_grad():
        torch.testing.assert_close(mm.lm_from_embeddings(lm, x, positions, attn_mask), lm(ids)[0])
        # a padded row: its real positions see exactly what they see unpadded
        short = mm.lm_from_embeddings(lm, lm.wte(ids[:1, :5]), torch.arange(5)[None], torch.ones(1, 5, dtype=bool))
        mask = torch.arange(9)[None] < 5
        padded = mm.lm_from_embeddings(lm, lm.wte(ids[:1]), torch.arange(9)[None] * mask, mask)
        torch.testing.assert_close(padded[:, :5], short)


# --------------------------------------------------------------------------- the two self-supervised losses


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_contrastive_loss_equals_its_cross_entropy_form(dtype):
    img, txt = torch.randn(8, 5, generator=g(3), dtype=dtype) * 4, torch.randn(8, 5, generator=g(4), dtype=dtype)
    t = 0.07
    logits = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T / t
    labels = torch.arange(8)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(mm.contrastive_loss(img, txt, t), expected)
    torch.testing.assert_close(mm.contrastive_loss_loop(img, txt, t), expected)
    # symmetric: swapping images and texts transposes the logits and leaves the loss
    torch.testing.assert_close(mm.contrastive_loss(txt, img, t), expected)


def test_contrastive_loss_is_stable_and_checks_its_input():
    x = torch.eye(4) * 100
    assert mm.contrastive_loss(x, x, 1e-3).item() == 0.0  # logits of 1000: no overflow to nan
    with pytest.raises(ValueError, match="must both be"):
        mm.contrastive_loss(torch.zeros(3, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="temperature must be a positive finite"):
        mm.contrastive_loss(x, x, 0.0)


def test_masked_patch_loss_equals_mse_on_the_masked_patches():
    pred, target = torch.randn(3, 9, 12, generator=g(5)), torch.randn(3, 9, 12, generator=g(6))
    mask = torch.rand(3, 9, generator=g(7)) < 0.5
    torch.testing.assert_close(mm.masked_patch_loss(pred, target, mask), F.mse_loss(pred[mask], target[mask]))
    assert mm.masked_patch_loss(pred, target, torch.zeros(3, 9, dtype=torch.bool)).item() == 0.0
    m = mm.random_patch_mask(4, 10, 0.3, g(8))
    assert m.sum(1).tolist() == [3, 3, 3, 3]


# --------------------------------------------------------------------------- the whole recipe


@pytest.fixture(scope="module")
def trained():
    with one_thread():  # tiny models: one thread is faster, and the result does not depend on the count
        lm = mm.pretrain_lm(seed=0)
        return lm, mm.train_projector(lm, mm.ImageEncoder(), seed=0)


def test_the_lm_learned_the_toy_language_from_text(trained):
    lm, _ = trained
    with torch.no_grad():
        right = [
            lm(torch.tensor([mm.encode(mm.text_episode(s, i % 4, [k]))[:-1]]))[0][0, -1].argmax().item()
            == mm.WORD_ID[mm.answer_word(s, k)]
            for i, s in enumerate(mm.all_scenes())
            for k in mm.QUESTIONS
        ]
    assert sum(right) / len(right) >= 0.95


def test_a_frozen_lm_with_a_trained_projector_answers_about_unseen_pairs(trained):
    """Chance is 1/4 for every question (4 colours, shapes, places). Held out: every scene of a colour-shape
    pair never shown as an image (16 scenes, 48 answers). Stated bar: mean accuracy 0.55 (chance + 0.3), and
    colour and place each at least 0.5.

    Measured over seeds 0-5 with ATEN_CPU_CAPABILITY=default and avx2 (12 runs): mean 0.667-0.917, colour
    0.69-1.0, place 0.88-1.0, so the bars leave at least 5 answers of the 48 and 3 of each question's 16.
    Shape is not held to a bar: on unseen pairs it ranged from 0.19 to 0.75 (the image side may learn
    the colour-shape shortcut of the training scenes instead of the outline, as lecture 12 shows), and
    the bar of 0.4 this test once set failed on seed 0 with avx2 kernels (0.31)."""
    lm, model = trained
    assert all(not p.requires_grad for p in lm.parameters()), "the LM stays frozen"
    _, held = mm.split_scenes()
    acc = mm.accuracy(model, held)
    assert sum(acc.values()) / 3 >= 0.55, acc
    assert acc["colour?"] >= 0.5 and acc["where?"] >= 0.5, acc


@single_threaded
def test_masked_patch_pretraining_learns_to_fill_in_patches():
    torch.manual_seed(0)
    model = mm.MaskedPatchModel(mm.ImageEncoder())
    images = mm.to_tensor([mm.draw_scene(*s) for s in mm.split_scenes()[0][:16]])
    mask = mm.random_patch_mask(16, 9, 0.5, g(9))
    with torch.no_grad():
        before = model(images, mask)[1].item()
        baseline = mm.masked_patch_loss(torch.zeros(16, 9, 192), mm.patchify(images, 8), mask).item()  # predict black
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = model(images, mm.random_patch_mask(16, 9, 0.5))[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = model(images, mask)[1].item()
    # the images are mostly black, so "predict black" is a strong baseline: beat it, and the start by 5x
    assert after < baseline and after < before / 5, (before, baseline, after)
