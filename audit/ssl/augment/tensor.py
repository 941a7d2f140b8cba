"""From ImageSet pixels to the augmenters' tensor convention, and the random draws they share.

Convention for all of :mod:`audit.ssl.augment` and every model in :mod:`audit.ssl.models`:
float32 ``B×C×H×W`` in [0, 1], on any device. Normalisation to zero mean / unit variance is
the model's job (``audit.ssl.models.Standardize``), never the augmenters'.
"""

from __future__ import annotations

import numpy as np
import torch

from audit.errors import ShapeMismatchError


def to_float(images: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 ``N×H×W×C`` (numpy or tensor, e.g. ``ImageSet.images``) → float32 ``N×C×H×W`` in
    [0, 1] on ``device`` (default: CPU, or the tensor's own device)."""
    t = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.ndim != 4 or t.shape[3] not in (1, 3):
        raise ShapeMismatchError(
            f"to_float expects uint8 N×H×W×C images with C in (1, 3); got "
            f"{getattr(t, 'dtype', type(images).__name__)} with shape {tuple(getattr(t, 'shape', ()))}"
        )
    t = t.to(device) if device is not None else t
    # Convert after the transfer: a uint8 copy to the GPU moves a quarter of the bytes.
    return t.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 ``N×H×W×C`` images on the [0, 1] scale, for
    ``build_model(..., mean=..., std=...)`` (compute it on labeled + unlabeled data)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or len(images) == 0:
        raise ShapeMismatchError(
            f"channel_stats expects a non-empty uint8 N×H×W×C array; got "
            f"{getattr(images, 'dtype', type(images).__name__)} with shape {getattr(images, 'shape', '?')}"
        )
    flat = images.reshape(-1, images.shape[3])
    c = flat.shape[1]
    # float64 sums over chunks: exact enough for 60k×784 pixels without a float64 copy of it all.
    s = np.zeros(c)
    s2 = np.zeros(c)
    for start in range(0, len(flat), 1 << 22):
        chunk = flat[start:start + (1 << 22)].astype(np.float64)
        s += chunk.sum(0)
        s2 += (chunk * chunk).sum(0)
    mean = s / len(flat)
    std = np.sqrt(np.maximum(s2 / len(flat) - mean**2, 0.0))
    std = np.maximum(std, 1.0)  # a constant channel would divide by zero; 1/255 is the uint8 step
    return tuple(float(m / 255) for m in mean), tuple(float(v / 255) for v in std)


def check_images(x: object, owner: str) -> torch.Tensor:
    """Validate the augmenters' input: float32 ``B×C×H×W`` (values are not scanned)."""
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.ndim != 4:
        raise ShapeMismatchError(
            f"{owner} expects a float32 B×C×H×W tensor in [0, 1]; got "
            f"{getattr(x, 'dtype', type(x).__name__)} with shape {tuple(getattr(x, 'shape', ()))}"
        )
    return x


class Draw:
    """Random numbers for one batch, drawn on the generator's device (CPU by default) in a fixed
    order so that the same seed gives the same augmentation, whatever device the images are on.
    Drawing on the CPU also lets the augmenters group samples by op without a GPU sync."""

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator
        self.device = generator.device if generator is not None else torch.device("cpu")

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, device=self.device).cpu()

    def integers(self, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(0, high, shape, generator=self.generator, device=self.device).cpu()
