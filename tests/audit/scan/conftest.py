"""Fixtures for the scan tests; plain helpers live in scan_helpers.py (importable by name)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from audit.data.builtin import digits
from scan_helpers import FIXTURE


@pytest.fixture(scope="session")
def fashion() -> tuple[np.ndarray, np.ndarray]:
    with np.load(FIXTURE) as z:
        return z["images"], z["labels"]


@pytest.fixture(scope="session")
def clean_images(fashion) -> np.ndarray:
    """uint8 1997×28×28×1: fixture + upscaled digits."""
    d = digits()
    imgs = np.concatenate([d.train.images, d.test.images])[..., 0]
    up = np.stack([np.asarray(Image.fromarray(im).resize((28, 28), Image.BILINEAR)) for im in imgs])[..., None]
    return np.concatenate([fashion[0], up.astype(np.uint8)])
