"""Adaptive attacks against the pixel-space scan (5.2): jitter, translate, jitter_translate, jpeg.
Each keeps the bridge's ends, moves every interior point off the segment x'–x*, and stays close
to the linear bridge it started from."""

from __future__ import annotations

import numpy as np
import pytest

from audit.errors import InvalidParameterError
from redteam.attacks import AttackContext
from redteam.attacks.jitter import Jitter, JitterConfig
from redteam.attacks.jitter_translate import JitterTranslate
from redteam.attacks.jpeg import Jpeg, JpegConfig, jpeg_roundtrip
from redteam.attacks.linear import Linear
from redteam.attacks.translate import Translate, TranslateConfig, draw_shifts, translate


@pytest.fixture(scope="module")
def ctx(fashion200):
    labels = fashion200.labels
    labeled = np.concatenate([np.flatnonzero(labels == c)[:4] for c in range(10)])
    pool = np.setdiff1d(np.arange(len(labels)), labeled)
    target = fashion200.images[int(np.flatnonzero(labels == 9)[-1])]  # an ankle boot ...
    return AttackContext(train=fashion200, labeled=labeled, unlabeled=pool, target=target, target_label=1,
                         source=int(labeled[labels[labeled] == 1][0]), n=20, density="1.5-x")  # ... to trouser


@pytest.fixture(scope="module")
def linear(ctx):
    return Linear().generate(ctx, np.random.default_rng(0)).images.astype(np.float64)


def _off_segment(images, ctx):
    """Largest per-pixel distance of each interior image from its bridge point x_α (α from the
    density: the same schedule every one of these attacks uses)."""
    from redteam.density import alphas

    a = alphas(ctx.density, ctx.n)[1:-1].reshape(-1, 1)
    xs, xt = ctx.source_image.astype(float).ravel(), ctx.target.astype(float).ravel()
    on = (1 - a) * xs + a * xt
    return np.abs(images.reshape(len(images), -1).astype(float) - on).max(1)


def test_jitter_stays_close_but_leaves_the_segment(ctx, linear):
    batch = Jitter().generate(ctx, np.random.default_rng(0))
    diff = batch.images.astype(float) - linear
    np.testing.assert_array_equal(diff[[0, -1]], 0)
    inner = diff[1:-1].reshape(18, -1)
    assert np.all(np.abs(inner).max(1) >= 1)  # every interior point changed
    # brightness ±2.6 plus contrast ±3% of at most 255 from the mean, plus rounding
    assert np.abs(inner).max() <= 0.01 * 255 + 0.03 * 255 + 1
    assert np.all(_off_segment(batch.images[1:-1], ctx) > 0.5)  # no longer colinear within uint8 rounding
    assert np.all(_off_segment(linear[1:-1], ctx) <= 0.5)
    with pytest.raises(InvalidParameterError, match=r"The 'contrast' parameter of jitter must be a float in \[0, 1\]"):
        JitterConfig(contrast=2.0)


def test_jitter_changes_colour_images_too(ctx):
    rgb = np.repeat(ctx.train.images, 3, axis=3)
    rgb[..., 0] = rgb[..., 0] // 2  # not grey: saturation has something to act on
    from audit.data.imageset import ImageSet

    train = ImageSet(images=rgb, ids=ctx.train.ids, labels=ctx.train.labels)
    c3 = AttackContext(train=train, labeled=ctx.labeled, unlabeled=ctx.unlabeled, target=rgb[-1], target_label=1,
                       source=ctx.source, n=6, density="1")
    out = Jitter().generate(c3, np.random.default_rng(0)).images
    assert out.shape == (6, 28, 28, 3)
    assert not np.array_equal(out, Linear().generate(c3, np.random.default_rng(0)).images)


def test_translate_shifts_every_interior_point_by_at_most_max_shift(ctx, linear):
    batch = Translate(TranslateConfig(max_shift=2)).generate(ctx, np.random.default_rng(0))
    shifts = np.array(batch.meta["shifts"])
    assert shifts.shape == (20, 2) and np.all(shifts[[0, -1]] == 0)
    assert np.all(np.abs(shifts[1:-1]).max(1) >= 1) and np.abs(shifts).max() <= 2
    for img, lin, (dy, dx) in zip(batch.images, linear.astype(np.uint8), shifts):
        h, w = 28, 28  # the part that moved in from inside the image is the linear point, shifted
        np.testing.assert_array_equal(img[max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)],
                                      lin[max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)])
    assert np.all(_off_segment(batch.images[1:-1], ctx) > 0.5)


def test_translate_helpers():
    rng = np.random.default_rng(0)
    s = draw_shifts(2000, 1, rng)
    assert not np.any((s == 0).all(1)) and len({tuple(v) for v in s}) == 8  # 8 neighbours, never (0, 0)
    img = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    out = translate(img, np.array([[1, 0]]))
    np.testing.assert_array_equal(out[0, 1:, :, 0], img[0, :3, :, 0])  # content moved one row down
    np.testing.assert_array_equal(out[0, 0, :, 0], img[0, 1, :, 0])  # reflect padding (edge not repeated)
    with pytest.raises(InvalidParameterError, match="cannot translate 4×4 images by 4 pixels"):
        translate(img, np.array([[4, 0]]))


def test_jitter_translate_does_both(ctx, linear):
    batch = JitterTranslate().generate(ctx, np.random.default_rng(0))
    shifts = np.array(batch.meta["shifts"])
    assert np.all(np.abs(shifts[1:-1]).max(1) == 1)
    plain = Translate().generate(ctx, np.random.default_rng(0)).images
    assert not np.array_equal(batch.images[1:-1], plain[1:-1])
    np.testing.assert_array_equal(batch.images[[0, -1]], linear[[0, -1]].astype(np.uint8))


def test_jpeg_points_differ_from_linear_ones_but_stay_close(ctx, linear):
    batch = Jpeg().generate(ctx, np.random.default_rng(0))
    diff = batch.images.astype(float) - linear
    np.testing.assert_array_equal(diff[[0, -1]], 0)
    rmse = np.sqrt((diff[1:-1] ** 2).reshape(18, -1).mean(1))
    assert np.all(rmse > 0.3) and np.all(rmse < 8)  # quality 90: a few uint8 units
    coarse = Jpeg(JpegConfig(quality=20)).generate(ctx, np.random.default_rng(0)).images.astype(float) - linear
    assert np.sqrt((coarse[1:-1] ** 2).mean()) > np.sqrt((diff[1:-1] ** 2).mean())  # lower quality, more error
    img = ctx.target
    np.testing.assert_array_equal(jpeg_roundtrip(img, 90), jpeg_roundtrip(img, 90))  # deterministic
    with pytest.raises(InvalidParameterError, match=r"The 'quality' parameter of jpeg must be an int in \[1, 100\]"):
        JpegConfig(quality=0)


def _line_residual(images, ctx):
    """Each image's distance from the line x'–x* (not the segment point of its α)."""
    x = images.reshape(len(images), -1).astype(float)
    xs, xt = ctx.source_image.astype(float).ravel(), ctx.target.astype(float).ravel()
    d = xt - xs
    t = (x - xs) @ d / (d @ d)
    return np.linalg.norm(x - xs - t[:, None] * d, axis=1)


@pytest.mark.parametrize("shape", ["bezier", "hop"])
def test_curved_paths_keep_the_ends_leave_the_line_and_step_in_small_steps(ctx, shape):
    from redteam.attacks.curved import Curved, CurvedConfig

    batch = Curved(CurvedConfig(shape=shape)).generate(ctx, np.random.default_rng(0))
    imgs = batch.images
    np.testing.assert_array_equal(imgs[0], ctx.source_image)
    np.testing.assert_array_equal(imgs[-1], ctx.target)
    span = np.linalg.norm(ctx.target.astype(float) - ctx.source_image.astype(float))
    assert _line_residual(imgs, ctx).max() > 0.1 * span  # far off the line x'–x*, not rounding
    steps = np.linalg.norm(np.diff(imgs.reshape(len(imgs), -1).astype(float), axis=0), axis=1)
    assert steps.max() < 0.5 * span  # still a path of small steps
    z = ctx.train.images[batch.meta["waypoint_index"]]
    labels = ctx.train.labels
    assert labels[batch.meta["waypoint_index"]] not in (labels[ctx.source], ctx.target_label)
    if shape == "hop":  # the bend is at z itself: the point nearest α = ½ is close to it
        from redteam.density import alphas

        a = alphas(ctx.density, ctx.n)
        mid = imgs[int(np.argmin(np.abs(a - 0.5)))].astype(float)
        assert np.linalg.norm(mid - z) < np.linalg.norm(mid - ctx.source_image) and \
            np.linalg.norm(mid - z) < np.linalg.norm(mid - ctx.target)


def test_bend_zero_is_the_straight_bridge(ctx, linear):
    from redteam.attacks.curved import Curved, CurvedConfig

    flat = Curved(CurvedConfig(bend=0.0)).generate(ctx, np.random.default_rng(0)).images.astype(float)
    assert np.abs(flat - linear).max() <= 1  # the same points up to rounding


def test_slerp_runs_on_a_great_circle_of_the_latent_codes(ctx):
    from redteam.attacks.slerp import Slerp, SlerpConfig

    batch = Slerp(SlerpConfig(dim=8, sample=150)).generate(ctx, np.random.default_rng(0))
    imgs = batch.images
    np.testing.assert_array_equal(imgs[0], ctx.source_image)
    np.testing.assert_array_equal(imgs[-1], ctx.target)
    span = np.linalg.norm(ctx.target.astype(float) - ctx.source_image.astype(float))
    assert _line_residual(imgs, ctx).max() > 0.05 * span  # bends away from the chord
    assert 0.0 < batch.meta["angle_deg"] < 180.0 and batch.meta["dim"] == 8
    with pytest.raises(InvalidParameterError, match="'dim' parameter of slerp"):
        SlerpConfig(dim=1)


def test_translate_zero_padding_blanks_the_uncovered_border():
    img = np.arange(1, 26, dtype=np.uint8).reshape(1, 5, 5, 1)
    out = translate(img, np.array([[1, -2]]), padding="zero")
    assert out[0, 0].max() == 0 and out[0, :, -2:].max() == 0  # top row, right two columns: blank
    np.testing.assert_array_equal(out[0, 1:, :3], img[0, :4, 2:])  # the rest moved down 1, left 2
    with pytest.raises(InvalidParameterError, match="'padding' parameter of translate"):
        TranslateConfig(padding="wrap")
