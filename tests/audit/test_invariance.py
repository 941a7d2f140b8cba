"""The invariant view (audit.invariance): what it must be invariant to, and the aligned distance
against a brute-force loop over shifts."""

from __future__ import annotations

import numpy as np
import pytest

from audit.invariance import aligned_distance, invariant_rows, standardise


def _shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(img)
    h, w = img.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = img[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


@pytest.fixture(scope="module")
def items(fashion200):
    """Real Fashion-MNIST images inside a 4 px black frame: shifts keep their content whole."""
    return np.pad(fashion200.images[:40], ((0, 0), (4, 4), (4, 4), (0, 0)))


def test_magnitudes_ignore_brightness_contrast_and_shifts_inside_the_frame(items):
    x = items[3]
    variants = np.stack([x, _shift(x, 2, -1), np.clip(x.astype(float) * 0.8 + 20, 0, 255).round().astype(np.uint8)])
    rows = variants.reshape(3, -1)
    inv = invariant_rows(rows, x.shape)
    assert np.allclose(inv[0], inv[1], atol=1e-2 * np.abs(inv[0]).max())  # shift: equal up to float error
    far = np.linalg.norm(invariant_rows(items[4:5].reshape(1, -1), x.shape)[0] - inv[0])
    assert np.linalg.norm(inv[2] - inv[0]) < 0.05 * far  # brightness/contrast (clipped at 0): near equal
    padded = invariant_rows(rows, x.shape, pad=4)  # a zero frame would not move with the content
    assert not np.allclose(padded[0], padded[1], atol=1e-2 * np.abs(padded[0]).max())


def test_aligned_distance_is_the_best_shift_on_the_overlap(items):
    rng = np.random.default_rng(0)
    shape = items.shape[1:]
    rows = items.reshape(len(items), -1)
    a, b, m = rng.integers(0, len(items), 25), rng.integers(0, len(items), 25), 3
    fast = aligned_distance(rows, shape, a, b, m)
    x = standardise(rows, shape)
    x = x[:, :1]  # gray: the luminance is the channel itself
    h, w, c = shape
    slow = []
    for i, j in zip(a, b):
        best = np.inf
        for dy in range(-m, m + 1):
            for dx in range(-m, m + 1):
                d = (x[i][:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
                     - x[j][:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)])
                best = min(best, float((d * d).mean()))
        slow.append(np.sqrt(best * h * w * c))
    assert np.allclose(fast, slow, rtol=1e-3, atol=1.0)  # float32 cancellation: ~0.6 on a pair with itself


def test_an_image_and_its_shift_are_aligned_to_zero_distance(items):
    x = items[7]
    rows = np.stack([x, _shift(x, -2, 2)]).reshape(2, -1)
    d = aligned_distance(rows, x.shape, np.array([0]), np.array([1]), max_shift=2)[0]
    assert d < 1.0  # the content moved 2 px up and right; its pixels agree on the overlap
    assert aligned_distance(rows, x.shape, np.array([0]), np.array([1]), max_shift=0)[0] > 100 * max(d, 1e-3)


def test_colour_images_are_aligned_on_their_luminance():
    rng = np.random.default_rng(1)
    shape = (10, 9, 3)
    rows = rng.integers(0, 256, (6, 10 * 9 * 3)).astype(np.uint8)
    a, b = np.array([0, 1, 2, 3]), np.array([4, 5, 0, 1])
    fast = aligned_distance(rows, shape, a, b, 2)
    x = standardise(rows, shape)
    lum = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), x, axes=([0], [1]))
    h, w = shape[:2]
    slow = []
    for i, j in zip(a, b):
        best = min(float(((lum[i][max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
                           - lum[j][max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]) ** 2).mean())
                   for dy in range(-2, 3) for dx in range(-2, 3))
        slow.append(np.sqrt(best * h * w))
    assert np.allclose(fast, slow, rtol=1e-3, atol=1.0)


def test_many_pairs_in_threaded_chunks_match_the_brute_force(items):
    """Chunks of pairs run in threads, in an order that keeps linked images together: every
    pair's distance lands in its own slot, whatever the order they were computed in."""
    rng = np.random.default_rng(3)
    shape = items.shape[1:]
    rows = items.reshape(len(items), -1)
    a, b = rng.integers(0, len(items), 200), rng.integers(0, len(items), 200)
    many = aligned_distance(rows, shape, a, b, 2, chunk=7)
    one = aligned_distance(rows, shape, a, b, 2, chunk=10_000)
    np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-3)
    x = standardise(rows, shape)[:, 0]
    h, w = shape[:2]
    for i in rng.choice(200, 20, replace=False):
        best = min(float(((x[a[i]][max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
                           - x[b[i]][max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]) ** 2).mean())
                   for dy in range(-2, 3) for dx in range(-2, 3))
        assert many[i] == pytest.approx(np.sqrt(best * h * w), rel=1e-3, abs=1.0)


def test_copies_are_measured_again_in_float64():
    """A² + B² - 2AB leaves float32 noise of about 1 on identical images; the close pairs are
    measured again in float64 and read as what they are."""
    rng = np.random.default_rng(4)
    rows = rng.integers(0, 256, (5, 32 * 32)).astype(np.uint8)
    rows[1] = rows[0]
    d = aligned_distance(rows, (32, 32, 1), np.array([0, 0]), np.array([1, 2]), 3)
    assert d[0] < 1e-3
    assert d[1] > 100


def test_shifts_of_a_whole_side_are_not_searched():
    """3×3 images with max_shift 4: a shift of 3 px or more has no overlap and must not read as a
    perfect match (0); the distance is the best over the shifts that leave one."""
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 256, (2, 9)).astype(np.uint8)
    fast = aligned_distance(rows, (3, 3, 1), np.array([0]), np.array([1]), 4)[0]
    x = standardise(rows, (3, 3, 1))[:, 0]
    best = min(float(((x[0][max(dy, 0):3 + min(dy, 0), max(dx, 0):3 + min(dx, 0)]
                       - x[1][max(-dy, 0):3 + min(-dy, 0), max(-dx, 0):3 + min(-dx, 0)]) ** 2).mean())
               for dy in range(-2, 3) for dx in range(-2, 3))
    assert best > 1.0
    assert fast == pytest.approx(np.sqrt(best * 9), rel=1e-3)
