"""Alpha keeps content (issue #13): real black line art on transparency stays line art, and the
composite over a fixed background keeps premultiplied blends on their line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from audit.data import load_images

CLIPART = Path(__file__).with_name("clipart")


def test_black_line_art_on_transparency_stays_line_art():
    files = sorted(CLIPART.glob("*.png"))
    assert len(files) == 4
    for f in files:  # the hard case: colour black everywhere, the drawing only in alpha
        with Image.open(f) as im:
            assert np.asarray(im.convert("RGB")).std() < 1.0  # what dropping alpha (or black) gives: blank
    s = load_images(CLIPART, size=(48, 48))
    assert len(s) == 4 and s.summary["alpha_composited"] == 4
    x = s.images.reshape(4, -1).astype(float)
    assert (x.std(axis=1) > 20).all()  # visible drawings, far above the scan's flat_std of 2
    assert set(np.unique(s.images)) >= {0, 128} and s.images.max() <= 128  # black ink on gray 128
    d = np.abs(x[:, None] - x[None]).mean(axis=2)
    assert d[~np.eye(4, dtype=bool)].min() > 5  # four different drawings, not one blank cluster


def _rgba(path: Path, side: int) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA").resize((side, side), Image.Resampling.BOX), np.float64) / 255


def test_a_premultiplied_blend_of_clip_art_stays_on_its_line(tmp_path):
    files = sorted(CLIPART.glob("*.png"))
    x0, x1 = _rgba(files[0], 64), _rgba(files[3], 64)
    x1[..., :3] = [0.9, 0.2, 0.1]  # make the second one red: both colour and alpha change along the line
    pm0, pm1 = x0[..., :3] * x0[..., 3:], x1[..., :3] * x1[..., 3:]
    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    for k, a in enumerate(alphas):
        pm, al = (1 - a) * pm0 + a * pm1, (1 - a) * x0[..., 3:] + a * x1[..., 3:]
        straight = np.where(al > 0, pm / np.maximum(al, 1e-9), 0)
        rgba = np.rint(np.concatenate([straight, al], axis=2) * 255).astype(np.uint8)
        Image.fromarray(rgba, "RGBA").save(tmp_path / f"{k}.png")
    s = load_images(tmp_path, size=(32, 32)).images.astype(float)
    for k, a in enumerate(alphas[1:-1], start=1):
        assert np.abs(s[k] - ((1 - a) * s[0] + a * s[-1])).max() <= 2.0  # uint8 rounding only


def test_opaque_alpha_changes_nothing(tmp_path, rgb32):
    Image.fromarray(rgb32[0]).save(tmp_path / "a.png")
    Image.fromarray(np.dstack([rgb32[0], np.full((32, 32), 255, np.uint8)]), "RGBA").save(tmp_path / "b.png")
    s = load_images(tmp_path)
    np.testing.assert_array_equal(s.images[0], rgb32[0])
    np.testing.assert_array_equal(s.images[1], rgb32[0])
