"""Shared pools for the scan tests: the 200-image Fashion-MNIST fixture plus scikit-learn digits
upscaled to 28×28 (1797 images), and bridges built here (tests never import redteam)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from audit.data.imageset import ImageSet

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "fashion-mnist-200.npz"


def bridge(xs: np.ndarray, xt: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """x_a = rint((1-a)·x' + a·x*) as uint8, one image per alpha."""
    a = np.asarray(alphas, np.float64)[:, None, None, None]
    return np.rint((1 - a) * xs.astype(np.float64) + a * xt.astype(np.float64)).astype(np.uint8)


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    out = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im[..., 0]).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())))[..., None])
    return np.stack(out).astype(np.uint8)


def make_set(images: np.ndarray, prefix: str = "img") -> ImageSet:
    return ImageSet(np.ascontiguousarray(images), tuple(f"{prefix}/{i:05d}" for i in range(len(images))))


def bridge_members(result) -> set[int]:
    return {m.index for f in result.findings if f.kind == "bridge" for m in f.members}
