"""audit.ssl.augment: tensor contract, per-sample randomness, determinism, and each op against
its PIL definition (the reference FixMatch implementations apply PIL per image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from audit.errors import InvalidParameterError, ShapeMismatchError
from audit.ssl.augment import OPS, Strong, Weak, channel_stats, to_float
from audit.ssl.augment import ops as O

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "fashion-mnist-200.npz"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def fashion() -> np.ndarray:
    return np.load(FIXTURE)["images"]  # uint8 200×28×28×1


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(c: int, size: int, n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=_gen(seed))


# --- conversion -------------------------------------------------------------------------
def test_to_float_layout_and_range(fashion):
    x = to_float(fashion[:5])
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], torch.from_numpy(fashion[:5, :, :, 0]).float() / 255)
    rgb = np.zeros((2, 4, 5, 3), np.uint8)
    rgb[..., 2] = 255
    y = to_float(torch.from_numpy(rgb))
    assert y.shape == (2, 3, 4, 5) and y[:, 2].eq(1).all() and y[:, :2].eq(0).all()


@pytest.mark.parametrize("bad", [np.zeros((2, 4, 4, 1), np.float32), np.zeros((4, 4, 1), np.uint8),
                                 np.zeros((2, 4, 4, 2), np.uint8)])
def test_to_float_rejects_wrong_input(bad):
    with pytest.raises(ShapeMismatchError, match="uint8 N×H×W×C"):
        to_float(bad)


def test_channel_stats(fashion):
    mean, std = channel_stats(fashion)
    x = fashion.astype(np.float64) / 255
    assert mean == pytest.approx((x.mean(),), abs=1e-9) and std == pytest.approx((x.std(),), abs=1e-9)


# --- shared contract --------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("size", [28, 32, 96])
@pytest.mark.parametrize("aug", [Weak(), Strong(), Strong(magnitude=10, n_ops=3)], ids=["weak", "strong", "strong10"])
def test_output_contract(aug, c, size, device):
    x = _images(c, size, n=20).to(device)
    before = x.clone()
    y = aug(x, _gen(1))
    assert y.shape == x.shape and y.dtype == torch.float32 and y.device == x.device
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.equal(x, before)  # the input is never modified
    assert not torch.equal(y, x)


@pytest.mark.parametrize("aug", [Weak(), Strong()], ids=["weak", "strong"])
def test_same_seed_same_output(aug, fashion):
    x = to_float(fashion[:64])
    a, b = aug(x, _gen(7)), aug(x, _gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, _gen(8)))


# --- weak -------------------------------------------------------------------------------
def _asymmetric(n: int = 16) -> torch.Tensor:
    x = torch.zeros(n, 1, 10, 10)
    x[:, :, 2:8, 1:3] = 1.0  # a bar near the left edge: its mirror image is different
    return x


def test_weak_without_flip_and_pad_is_identity():
    x = _asymmetric(64)
    assert torch.equal(Weak(flip=False, pad=0.0)(x, _gen(0)), x)


def test_weak_flip_mirrors_about_half_the_images():
    x = _asymmetric(200)
    y = Weak(flip=True, pad=0.0)(x, _gen(0))
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())
    assert 60 < int(mirrored.sum()) < 140


def test_weak_translation_is_a_crop_of_the_reflect_padded_image():
    x = _images(3, 16, n=40)
    y = Weak(flip=False, pad=0.125)(x, _gen(3))  # 2 px each side
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    offsets = set()
    for i in range(len(x)):
        hits = [(r, c) for r in range(5) for c in range(5) if torch.equal(padded[i, :, r:r + 16, c:c + 16], y[i])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 10  # per sample, not one shift for the batch


# --- strong: per-sample randomness ------------------------------------------------------
def test_strong_gives_identical_images_different_augmentations(fashion):
    x = to_float(fashion[:1]).repeat(64, 1, 1, 1)
    y = Strong()(x, _gen(0))
    distinct = {tuple(v.tolist()) for v in (y.flatten(1) * 255).round().to(torch.int32)}
    assert len(distinct) >= 62
    params = Strong().sample(64, 28, 28, _gen(0))
    assert len({tuple(r.tolist()) for r in params.ops}) > 40  # op pairs drawn per sample


def test_strong_op_histogram_covers_every_op():
    params = Strong(n_ops=2).sample(14_000, 32, 32, _gen(5))
    counts = torch.bincount(params.ops.flatten(), minlength=len(OPS))
    assert len(counts) == len(OPS) == 14
    assert int(counts.min()) > 1700 and int(counts.max()) < 2300  # expected 2000 each
    assert 0.45 < float(params.level.mean()) < 0.55 and set(params.sign.unique().tolist()) == {-1.0, 1.0}


def test_fixed_magnitude_fixes_the_level():
    params = Strong(magnitude=3).sample(50, 28, 28, _gen(0))
    assert torch.allclose(params.level, torch.full_like(params.level, 0.3))


# --- cutout -----------------------------------------------------------------------------
def test_cutout_greys_one_square_per_image():
    x = torch.ones(200, 3, 32, 32)
    y = Strong(n_ops=0, flip=False, pad=0.0, cutout=0.5)(x, _gen(2))
    n_patches = 0
    for img in y:
        changed = (img != 1).any(0)
        if not changed.any():
            continue
        n_patches += 1
        assert bool((img[:, changed] == 0.5).all())
        rows = changed.any(1).nonzero().flatten()
        cols = changed.any(0).nonzero().flatten()
        box = changed[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert bool(box.all()) and int(changed.sum()) == box.numel()  # a filled rectangle
        h, w = box.shape
        clipped = rows[0] == 0 or rows[-1] == 31 or cols[0] == 0 or cols[-1] == 31
        assert h <= 16 and w <= 16 and (h == w or clipped)
    assert n_patches > 150


def test_cutout_changes_nothing_outside_its_patch(fashion):
    x = to_float(fashion[:100])
    a = Strong(cutout=0.0)(x, _gen(4))
    b = Strong(cutout=0.5)(x, _gen(4))
    diff = (a != b).any(1)
    assert bool((b.permute(1, 0, 2, 3)[:, diff] == 0.5).all())
    assert int(diff.flatten(1).any(1).sum()) > 50


# --- each op against PIL ----------------------------------------------------------------
def _rgb_images() -> np.ndarray:
    rng = np.random.default_rng(0)
    ramp = np.arange(24, dtype=np.uint8)[None, None, :, None] * 3
    return (rng.integers(0, 128, (8, 20, 24, 3)) + ramp).astype(np.uint8)


def _ours(fn, imgs: np.ndarray, level: float) -> np.ndarray:
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    y = fn(x, torch.full((len(imgs),), level), torch.ones(len(imgs)))
    return np.round(y.permute(0, 2, 3, 1).numpy() * 255).astype(int)


def _pil(fn, imgs: np.ndarray) -> np.ndarray:
    out = []
    for im in imgs:
        q = np.asarray(fn(Image.fromarray(im[..., 0] if im.shape[2] == 1 else im))).astype(int)
        out.append(q[..., None] if q.ndim == 2 else q)
    return np.stack(out)


_F = 0.95 - 0.5 * 0.9  # enhancement factor at level 0.5
PIL_OPS = {
    "AutoContrast": (O.auto_contrast, ImageOps.autocontrast),
    "Equalize": (O.equalize, ImageOps.equalize),
    "Posterize": (O.posterize, lambda p: ImageOps.posterize(p, 6)),
    "Solarize": (O.solarize, lambda p: ImageOps.solarize(p, 128)),
    "Brightness": (O.brightness, lambda p: ImageEnhance.Brightness(p).enhance(_F)),
    "Contrast": (O.contrast, lambda p: ImageEnhance.Contrast(p).enhance(_F)),
    "Color": (O.color, lambda p: ImageEnhance.Color(p).enhance(_F)),
    "Sharpness": (O.sharpness, lambda p: ImageEnhance.Sharpness(p).enhance(_F)),
}


@pytest.mark.parametrize("name", sorted(PIL_OPS))
@pytest.mark.parametrize("channels", [1, 3])
def test_colour_op_matches_pil_within_rounding(name, channels, fashion):
    # dimmed so that AutoContrast has something to stretch
    imgs = (fashion[:8] // 2 + 40).astype(np.uint8) if channels == 1 else _rgb_images()
    ours, ref = PIL_OPS[name]
    got, want = _ours(ours, imgs, 0.5), _pil(ref, imgs)
    assert np.abs(got - want).max() <= 1
    if name != "Color" or channels == 3:
        assert not np.array_equal(got, imgs.astype(int))  # the op did something


def test_equalize_leaves_alone_what_pil_leaves_alone():
    # 16 pixels: PIL's step (16 - count of the top level) // 255 is 0, so no table is built
    x = torch.zeros(2, 1, 4, 4)
    x[:, :, 0, :2] = 0.003  # between 8-bit levels: returned as given, not rounded
    x[:, :, 1] = 0.5
    assert torch.equal(O.equalize(x, torch.ones(2), torch.ones(2)), x)


def test_equalize_rounds_values_between_levels_to_the_nearest_level(fashion):
    levels = torch.from_numpy(fashion[:8]).permute(0, 3, 1, 2).float() / 255
    nudged = levels + torch.empty_like(levels).uniform_(-0.4, 0.4) / 255
    assert torch.equal(O.equalize(nudged, torch.ones(8), torch.ones(8)), O.equalize(levels, torch.ones(8), torch.ones(8)))


def test_color_is_identity_on_grayscale(fashion):
    x = to_float(fashion[:4])
    assert torch.equal(O.color(x, torch.ones(4), torch.ones(4)), x)


def _round(x, ops, level, sign, fill=0.5):
    """``apply_round`` with its output put back in batch order."""
    y, order = O.apply_round(x.clone(), ops, level, sign, fill)
    return y[torch.argsort(order)]


def test_grouped_ops_equal_one_image_at_a_time():
    x = _images(3, 12, n=60)
    g = _gen(9)
    ops = torch.randint(0, len(OPS), (60,), generator=g)
    level, sign = torch.rand(60, generator=g), torch.where(torch.rand(60, generator=g) < 0.5, -1.0, 1.0)
    batched = _round(x, ops, level, sign)
    single = torch.cat([_round(x[i:i + 1], ops[i:i + 1], level[i:i + 1], sign[i:i + 1]) for i in range(60)])
    assert torch.allclose(batched, single, atol=1e-5)
    assert set(ops.tolist()) == set(range(len(OPS)))


@pytest.mark.parametrize("n_ops", [1, 3])
def test_strong_batch_equals_each_image_with_its_own_draws(n_ops, fashion):
    # Strong sorts the batch by op every round and computes every round's warp matrices at once;
    # each image must still get exactly its own flip, crop, ops, levels and Cutout.
    x = to_float(fashion[:40])
    strong = Strong(n_ops=n_ops, fill=0.25)
    p = strong.sample(40, 28, 28, _gen(11))
    batched = strong.apply(x, p)
    fields = ("flip", "offset", "ops", "level", "sign", "cutout_size", "cutout_center")
    for i in range(40):
        one = type(p)(**{f: getattr(p, f)[i:i + 1] for f in fields})
        assert torch.allclose(batched[i:i + 1], strong.apply(x[i:i + 1], one), atol=1e-5), i


@pytest.mark.parametrize("name,axis", [("TranslateX", 3), ("TranslateY", 2)])
def test_translate_at_full_level_shifts_30_percent(name, axis):
    x = _images(1, 20, n=2)
    ops = torch.full((2,), OPS.index(name))
    y = _round(x, ops, torch.ones(2), torch.tensor([1.0, -1.0]))
    for i, shift in enumerate((6, -6)):  # 0.3 × 20 px, opposite directions for opposite signs
        moved = torch.roll(x[i], shifts=-shift, dims=axis - 1)
        keep = [slice(None)] * 3
        keep[axis - 1] = slice(0, 14) if shift > 0 else slice(6, 20)
        assert torch.allclose(y[i][tuple(keep)], moved[tuple(keep)], atol=1e-5)
        gone = [slice(None)] * 3
        gone[axis - 1] = slice(14, 20) if shift > 0 else slice(0, 6)
        assert torch.allclose(y[i][tuple(gone)], torch.full_like(y[i][tuple(gone)], 0.5))


def test_rotate_keeps_the_centre_and_moves_the_rest():
    x = _images(1, 21, n=1)
    y = _round(x, torch.tensor([OPS.index("Rotate")]), torch.ones(1), torch.ones(1))
    assert torch.allclose(y[0, 0, 10, 10], x[0, 0, 10, 10], atol=1e-5)
    assert (y - x).abs().mean() > 0.1


# --- validation -------------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: Weak(pad=0.5), "'pad' parameter of Weak must be a float in \\[0, 0.5\\)"),
    (lambda: Weak(flip=1), "'flip' parameter of Weak must be a bool"),
    (lambda: Strong(n_ops=-1), "'n_ops' parameter of Strong"),
    (lambda: Strong(magnitude=11), "'magnitude' parameter of Strong must be None or an int in \\[0, 10\\]"),
    (lambda: Strong(cutout=1.5), "'cutout' parameter of Strong"),
    (lambda: Strong(fill=-0.1), "'fill' parameter of Strong"),
])
def test_invalid_parameters_raise(make, match):
    with pytest.raises(InvalidParameterError, match=match):
        make()


@pytest.mark.parametrize("aug", [Weak(), Strong()], ids=["weak", "strong"])
def test_non_float_input_is_refused(aug):
    with pytest.raises(ShapeMismatchError, match="float32 B×C×H×W"):
        aug(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
