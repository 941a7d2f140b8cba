"""Pools for the engine tests (tests never import redteam): the 200-image Fashion-MNIST fixture,
scikit-learn digits upscaled to 28×28, a straight bridge (``bridge`` finds it) and a bridge whose
images are each shifted by a pixel or two (``path`` finds it in the invariant view)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from audit.data.builtin import digits
from audit.data.imageset import ImageSet

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "fashion-mnist-200.npz"


def clean_pool() -> np.ndarray:
    """uint8 1997×28×28×1."""
    with np.load(FIXTURE) as z:
        fm = z["images"]
    d = digits()
    small = np.concatenate([d.train.images, d.test.images])[..., 0]
    up = np.stack([np.asarray(Image.fromarray(im).resize((28, 28), Image.BILINEAR)) for im in small])[..., None]
    return np.concatenate([fm, up.astype(np.uint8)])


def blend(xs: np.ndarray, xt: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    a = np.asarray(alphas, np.float64)[:, None, None, None]
    return np.rint((1 - a) * xs.astype(np.float64) + a * xt.astype(np.float64)).astype(np.uint8)


def poisoned_pool(seed: int = 0) -> np.ndarray:
    """The clean pool, a 30-image straight bridge and a 24-image bridge shifted ±2 px, shuffled."""
    clean = clean_pool()
    rng = np.random.default_rng(seed)
    straight = blend(clean[3], clean[150], np.linspace(0, 1, 30))
    shifted = blend(clean[20], clean[170], np.linspace(0, 1, 24))
    shifted = np.stack([np.roll(im, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)) for im in shifted])
    pool = np.concatenate([clean, straight, shifted])
    return pool[rng.permutation(len(pool))]


def as_set(images: np.ndarray) -> ImageSet:
    return ImageSet(np.ascontiguousarray(images), tuple(f"{i:05d}" for i in range(len(images))))


def write_pngs(images: np.ndarray, folder: Path, colour_every: int = 0) -> None:
    """One PNG per image; with ``colour_every``, every such image is saved as RGB (gray content),
    so the pool is read as 3 channels and gray images are widened."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        pil = Image.fromarray(im[..., 0])
        if colour_every and i % colour_every == 0:
            pil = pil.convert("RGB")
        pil.save(folder / f"{i:05d}.png")


def comparable(result) -> dict:
    """The JSON report without what legitimately differs between runs (timings, decode stats)."""
    doc = json.loads(json.dumps(result.to_json()))
    doc.pop("timings_s", None)
    doc.get("input", {}).pop("decode", None)
    return doc


def assert_same(local, other) -> None:
    a, b = comparable(local), comparable(other)
    assert a["findings"] == b["findings"]
    assert a == b
    assert set(local.scores) == set(other.scores)
    for k in local.scores:
        assert np.array_equal(local.scores[k], other.scores[k], equal_nan=True), k
