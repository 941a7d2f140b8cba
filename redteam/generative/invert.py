"""Latent inversion: find z with G(z) ≈ x (paper 4.2: "compute the corresponding latent vectors z'
and z* so that G(z') = x' and G(z*) = x*"; exact equality is rarely reachable, so we minimise
‖G(z) − x‖² and report what is left).

Adam on z from ``restarts`` random starts per image (z ~ N(0, I), drawn from the caller's numpy
generator so the result is seeded), all restarts of all images in one batch; the start with the
lowest final loss wins. The generator is frozen and in eval mode (BatchNorm uses its running
statistics, so the images of a batch do not influence each other).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audit.errors import ShapeMismatchError
from redteam.generative.model import Generator


@dataclass(frozen=True, eq=False)
class Inversion:
    z: np.ndarray  # float32 N×latent_dim: the best latent per image
    images: np.ndarray  # uint8 N×H×W×C: G(z), rounded
    rmse: np.ndarray  # float64 N: root-mean-square error of G(z) vs x, in uint8 units (0..255)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float ``B×C×H×W`` in [0, 1] → uint8 ``B×H×W×C`` (×255, round, clip)."""
    return (x.detach().permute(0, 2, 3, 1).cpu().numpy().astype(np.float64) * 255.0).round().clip(0, 255).astype(np.uint8)


def generate(g: Generator, z: np.ndarray, device: torch.device, batch: int = 256) -> np.ndarray:
    """uint8 ``N×H×W×C`` images G(z) for float ``N×latent_dim`` latents."""
    g = g.to(device).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(z), batch):
            out.append(to_uint8(g(torch.as_tensor(z[i:i + batch], dtype=torch.float32, device=device))))
    return np.concatenate(out) if out else np.zeros((0,), np.uint8)


def invert(g: Generator, images: np.ndarray, rng: np.random.Generator, *, restarts: int = 4, steps: int = 300,
           lr: float = 0.05, device: torch.device | str = "cpu") -> Inversion:
    """Invert uint8 ``N×H×W×C`` images; see the module doc."""
    s = g.shape
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (s.size, s.size, s.channels):
        raise ShapeMismatchError(f"the generator makes {s.size}×{s.size}×{s.channels} images; got "
                                 f"{images.dtype} {images.shape[1:]}")
    device = torch.device(device)
    g = g.to(device).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    n = len(images)
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div(255.0)
    x = x.repeat_interleave(restarts, dim=0)  # (image, restart) pairs, image-major
    z0 = rng.standard_normal((n * restarts, s.latent_dim)).astype(np.float32)
    z = torch.tensor(z0, device=device, requires_grad=True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        loss = ((g(z) - x) ** 2).flatten(1).mean(1)  # per (image, restart)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        final = ((g(z) - x) ** 2).flatten(1).mean(1).view(n, restarts)
        best = final.argmin(1)
        z_best = z.detach().view(n, restarts, -1)[torch.arange(n, device=device), best]
    z_np = z_best.cpu().numpy().astype(np.float32)
    out = generate(g, z_np, device)
    rmse = np.sqrt(((out.astype(np.float64) - images.astype(np.float64)) ** 2).reshape(n, -1).mean(1))
    return Inversion(z=z_np, images=out, rmse=rmse)
