"""JPEG-re-encoded bridge: an adaptive attack against the pixel-space scan (beyond the paper, in
the spirit of 5.2's "cat-and-mouse game").

Every point x_α of the 3.1 bridge is encoded as a baseline JPEG at ``quality`` and decoded again
(Pillow, deterministic). The dataset is written as PNG, so the JPEG artefacts are baked into the
pixel values: a few uint8 units of structured, image-dependent error per pixel (8×8 block edges,
ringing) that no longer cancels along the segment, while the image looks — and, to the victim,
classifies — the same: web images are JPEGs, and models are not sensitive to quality-90
artefacts. The end points stay exact unless ``perturb_ends``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from audit.validate import check_int
from redteam.attacks._bridge import bridge_points, linear_bridge, perturbed, to_uint8
from redteam.attacks.base import Attack, AttackContext, PoisonBatch


@dataclass(frozen=True)
class JpegConfig:
    quality: int = 90  # a common web setting: visually lossless, ~1-3 uint8 RMS error on Fashion-MNIST
    perturb_ends: bool = False  # keep α=0 (x') and α=1 (x* itself) exact: the target must be x*

    def __post_init__(self) -> None:
        check_int("jpeg", "quality", self.quality, 1, 100)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 ``H×W×C`` (C 1 or 3) → encoded as JPEG at ``quality`` → decoded, same shape."""
    grey = image.shape[2] == 1
    pil = Image.fromarray(np.ascontiguousarray(image[:, :, 0] if grey else image), mode="L" if grey else "RGB")
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        out = np.asarray(im.convert("L" if grey else "RGB"), dtype=np.uint8)
    return out[:, :, None] if grey else out


class Jpeg(Attack):
    """3.1 bridge with every point passed through JPEG at ``quality``."""

    name = "jpeg"
    Config = JpegConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        cfg = self.config
        a, x = linear_bridge(ctx)
        images = to_uint8(x)
        for i in np.flatnonzero(perturbed(len(a), cfg.perturb_ends)):
            images[i] = jpeg_roundtrip(images[i], cfg.quality)
        return PoisonBatch(images=images, points=bridge_points(a),
                           meta={"interpolation": "linear pixel blend + JPEG", "quality": cfg.quality})
