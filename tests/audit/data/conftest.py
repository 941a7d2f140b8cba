"""Fixtures for the data-layer tests: a few real Fashion-MNIST images, gray and coloured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from format_writers import colour32

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "fashion-mnist-200.npz"


@pytest.fixture(scope="session")
def gray28() -> tuple[np.ndarray, np.ndarray]:
    """12 real Fashion-MNIST images uint8 12×28×28×1 and their labels."""
    with np.load(FIXTURE) as z:
        return z["images"][::17][:12].copy(), z["labels"][::17][:12].copy()


@pytest.fixture(scope="session")
def rgb32(gray28) -> np.ndarray:
    """uint8 12×32×32×3 colour images derived from the real gray ones."""
    return colour32(gray28[0])
