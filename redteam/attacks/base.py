"""The contract every attack implements (paper sections 3 and 4).

An attack receives an :class:`AttackContext` (what the adversary is assumed to know or choose:
the training split, which of its examples are labeled, the target x* and the label y* it should
get, a labeled source x' of class y*, the budget n and the density ρ) and a seeded
``np.random.Generator``, and returns a :class:`PoisonBatch`: n uint8 images to add to the
unlabeled pool, with per-image metadata (α, which path, which role) and JSON-able attack-level
metadata. It never writes files and never reads the test split beyond x*.

Adding an attack (one file per attack, see docs/attacks.md)::

    @dataclass(frozen=True)
    class NoiseConfig:
        sigma: float = 2.0  # in uint8 units; paper 4.4: larger sigma hurt the attack

    class Noise(Attack):
        name = "noise"
        Config = NoiseConfig
        def generate(self, ctx, rng): ...

    # redteam/attacks/__init__.py
    ATTACKS.register(Noise.name, Noise)
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from audit.data.imageset import ImageSet
from audit.errors import ShapeMismatchError, invalid_parameter


@dataclass(frozen=True, eq=False)
class AttackContext:
    """The adversary's inputs. Indices are into ``train``; ``target`` is one uint8 ``H×W×C`` image
    with the shape of ``train``'s images."""

    train: ImageSet  # the training split, with labels (the adversary's partial knowledge)
    labeled: np.ndarray  # int64 indices of the labeled examples
    unlabeled: np.ndarray  # int64 indices of the clean unlabeled pool (before poisoning)
    target: np.ndarray  # x*: uint8 H×W×C, from the test split
    target_label: int  # y*: the label x* should receive
    source: int  # index of x': a labeled example of class y*
    n: int  # budget: how many images to insert
    density: str  # registered density name (redteam.density) for the α schedule

    @property
    def source_image(self) -> np.ndarray:
        """x': uint8 ``H×W×C``."""
        return self.train.images[self.source]


@dataclass(frozen=True)
class PoisonPoint:
    """Metadata of one inserted image."""

    alpha: float  # position on its path: 0 at the path's start, 1 at its end
    path: int = 0  # 0: the main bridge x' -> x*; other numbers: extra paths (e.g. 4.1's support)
    role: str = "bridge"  # what the point is for ("bridge", "support", ...)

    def to_json(self) -> dict:
        return {"alpha": float(self.alpha), "path": int(self.path), "role": self.role}


@dataclass(frozen=True, eq=False)
class PoisonBatch:
    """What an attack returns: ``images`` uint8 ``n×H×W×C`` and one :class:`PoisonPoint` per image
    (same order); ``meta`` is JSON-able attack-level metadata (copied into the manifest)."""

    images: np.ndarray
    points: tuple[PoisonPoint, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        imgs = self.images
        if not isinstance(imgs, np.ndarray) or imgs.dtype != np.uint8 or imgs.ndim != 4:
            raise ShapeMismatchError(
                f"an attack must return uint8 n×H×W×C images; got "
                f"{getattr(imgs, 'dtype', type(imgs).__name__)} {getattr(imgs, 'shape', '?')}"
            )
        object.__setattr__(self, "points", tuple(self.points))
        if len(self.points) != len(imgs):
            raise ShapeMismatchError(f"an attack returned {len(imgs)} images but {len(self.points)} points")

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class NoConfig:
    """For attacks without parameters."""


class Attack(ABC):
    """Base class: subclasses set ``name`` (= file name = registry key = CLI value) and
    ``Config`` (a frozen dataclass whose defaults reproduce the paper), and implement
    :meth:`generate`."""

    name: ClassVar[str]
    Config: ClassVar[type] = NoConfig

    def __init__(self, config: Any | None = None) -> None:
        if config is None:
            config = self.Config()
        if not isinstance(config, self.Config):
            raise invalid_parameter("config", f"the {self.name} attack", f"a {self.Config.__name__}",
                                    type(config).__name__)
        self.config = config

    def config_json(self) -> dict:
        """The config as JSON (recorded in the manifest)."""
        return dataclasses.asdict(self.config)

    @abstractmethod
    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        """Return ``ctx.n`` poisoned images of ``ctx.train``'s shape."""
