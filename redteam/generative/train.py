"""Train the DC-GAN of :mod:`redteam.generative.model` on a pool's images, and save / load its
generator (paper 4.2: "we omit details about training GANs as our results are independent of the
method used").

The loop reads top to bottom: sample real images and latents, discriminator step (non-saturating
logistic loss), generator step, report. Adam(2e-4, β=(0.5, 0.999)) as in DC-GAN. Images enter as
uint8 ``N×S×S×C`` (an ``ImageSet``'s array) and are scaled to [0, 1] on the device, in batches.

Checkpoint (``save_generator``): a plain dict ``{"format", "shape", "state_dict", "info"}``
written atomically (temporary file, fsync, rename) and read back with ``weights_only=True``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from audit.atomic import atomic_open
from audit.errors import CheckpointError, ShapeMismatchError, invalid_parameter
from audit.ssl.trainer import resolve_device
from redteam.generative.model import Discriminator, GanShape, Generator

FORMAT = "ssl-poison-audit/generator/1"
# steps between reads of the losses for progress (a device sync on a GPU, as the SSL trainer's
# log_every): the first step, every LOG_EVERY-th and the last
LOG_EVERY = 10


@dataclass(frozen=True)
class GanTrainConfig:
    steps: int = 2000  # ~2 epochs of Fashion-MNIST at batch 64: recognisable garments in minutes on CPU
    batch_size: int = 64  # DC-GAN used 128; 64 halves the CPU step time with no visible loss at 28×28
    latent_dim: int = 64
    width: int = 32  # see GanShape: 28×28 gives a 0.2M-parameter generator, ~0.2 s a step on 1 CPU core
    lr: float = 2e-4  # DC-GAN's Adam settings
    beta1: float = 0.5  # DC-GAN: 0.9 made training oscillate
    seed: int = 0
    device: str = "auto"  # CUDA when present

    def __post_init__(self) -> None:
        own = "train_gan"
        for name in ("steps", "batch_size", "latent_dim", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise invalid_parameter(name, own, "an int >= 1", v)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise invalid_parameter("seed", own, "an int >= 0", self.seed)
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr < 1:
            raise invalid_parameter("lr", own, "a float in (0, 1)", self.lr)
        if not isinstance(self.beta1, (int, float)) or not 0 <= self.beta1 < 1:
            raise invalid_parameter("beta1", own, "a float in [0, 1)", self.beta1)
        resolve_device(self.device, "the GAN")


@dataclass(frozen=True)
class GanProgress:
    step: int
    steps: int
    loss_d: float
    loss_g: float
    elapsed: float  # seconds


def train_gan(images: np.ndarray, config: GanTrainConfig = GanTrainConfig(),
              on_progress: Callable[[GanProgress], None] | None = None) -> Generator:
    """Train on uint8 ``N×S×S×C`` images; returns the generator in eval mode, on the CPU.
    ``on_progress`` gets the losses at the steps :data:`LOG_EVERY` says."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or len(images) < 2:
        raise ShapeMismatchError(f"train_gan needs at least 2 uint8 N×S×S×C images; got "
                                 f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}")
    n, h, w, c = images.shape
    if h != w:
        raise ShapeMismatchError(f"the GAN generates square images; these are {h}×{w}")
    shape = GanShape(size=h, channels=c, latent_dim=config.latent_dim, width=config.width)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    g, d = Generator(shape).to(device), Discriminator(shape).to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    data = torch.from_numpy(np.ascontiguousarray(images))  # stays uint8 on the CPU: 4× less memory
    sampler = torch.Generator().manual_seed(config.seed)
    ones = torch.ones(config.batch_size, device=device)
    t0 = time.perf_counter()
    for step in range(1, config.steps + 1):
        idx = torch.randint(n, (config.batch_size,), generator=sampler)
        real = data[idx].to(device).permute(0, 3, 1, 2).float().div_(255.0)
        z = torch.randn(config.batch_size, shape.latent_dim, generator=sampler).to(device)

        fake = g(z)
        loss_d = (F.binary_cross_entropy_with_logits(d(real), ones)
                  + F.binary_cross_entropy_with_logits(d(fake.detach()), torch.zeros_like(ones)))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        loss_g = F.binary_cross_entropy_with_logits(d(fake), ones)  # non-saturating generator loss
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        if on_progress is not None and (step == 1 or step % LOG_EVERY == 0 or step == config.steps):
            on_progress(GanProgress(step, config.steps, loss_d.item(), loss_g.item(), time.perf_counter() - t0))
    return g.eval().cpu()


def save_generator(path: str | Path, generator: Generator, info: dict | None = None) -> Path:
    """Write the generator checkpoint atomically; ``info`` (JSON-able) is kept for the record."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "shape": generator.shape.to_json(),
             "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
             "info": dict(info or {})}
    with atomic_open(path) as f:
        torch.save(state, f)
    return path


def load_generator(path: str | Path, image_shape: tuple[int, int, int] | None = None) -> Generator:
    """A generator saved by :func:`save_generator`, in eval mode on the CPU. ``image_shape``
    (H, W, C), when given, must be what it generates (the pool's image shape)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no generator checkpoint at {path}; train one with `redteam train-gan`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "shape" not in state:
        raise CheckpointError(f"{path} is not a generator checkpoint of `redteam train-gan`")
    try:
        shape = GanShape(**state["shape"])
        g = Generator(shape)
        g.load_state_dict(state["state_dict"])
    except Exception as exc:
        raise CheckpointError(f"generator checkpoint {path} is corrupt ({type(exc).__name__})") from None
    if image_shape is not None and tuple(image_shape) != (shape.size, shape.size, shape.channels):
        raise ShapeMismatchError(
            f"generator {path} makes {shape.size}×{shape.size}×{shape.channels} images but the data is "
            f"{'×'.join(map(str, image_shape))} (H×W×C); train one on this dataset with `redteam train-gan`")
    return g.eval()


def config_json(config: GanTrainConfig) -> dict:
    return asdict(config)
