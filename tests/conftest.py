"""Shared fixtures: small real images only (scikit-learn digits, 200 Fashion-MNIST images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audit.data.imageset import ImageSet

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests run tiny tensors on 2 shared cores: a second intra-op thread only adds
    synchronisation, and under contention it made them 5-20x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fashion200() -> ImageSet:
    """200 real Fashion-MNIST test images (20 per class), uint8 200×28×28×1."""
    with np.load(FIXTURES / "fashion-mnist-200.npz") as z:
        images, labels = z["images"], z["labels"]
    return ImageSet(images=images, ids=tuple(f"fm/{i:03d}.png" for i in range(len(images))), labels=labels)


@pytest.fixture(scope="session")
def digits_train() -> ImageSet:
    from audit.data.builtin import digits

    return digits().train
