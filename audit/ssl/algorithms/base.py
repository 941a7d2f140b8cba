"""What every SSL algorithm plugs into: the batch it receives, what it returns, shared helpers.

An algorithm is one class with a frozen config dataclass and one method, :meth:`Algorithm.step`:
given the model and a :class:`Batch` (labeled and unlabeled images as float32 ``B×C×H×W`` in
[0, 1], *not yet augmented*; the weak and strong augmenters; the run's progress ``t``), it does its
forward passes and returns a :class:`StepOutput` whose ``loss`` the trainer backpropagates. The
trainer owns everything else (sampling, optimiser, EMA, evaluation, checkpoints), so the file of
one algorithm reads like the paper's loss and nothing more (paper Appendix A).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audit.errors import invalid_parameter

Augment = Callable[..., Tensor]  # aug(x float32 B×C×H×W in [0,1], generator=None) -> same shape


@dataclass(frozen=True)
class Batch:
    """One training step's inputs. Images are float32 ``B×C×H×W`` in [0, 1], un-augmented."""

    x_l: Tensor  # labeled images, B
    y_l: Tensor  # int64 labels, B
    x_u: Tensor  # unlabeled images, μ·B
    weak: Augment  # flip + pad-and-crop
    strong: Augment  # RandAugment + cutout
    t: float  # progress of the run in [0, 1]: step / total steps (for ramps)
    teacher: nn.Module | None = None  # the trainer's EMA model (eval mode, no grad): Mean Teacher's teacher
    step: int = 0  # steps done before this one (for ramps given in steps rather than as a fraction)


@dataclass(frozen=True)
class StepOutput:
    loss: Tensor  # scalar, with a graph to the model's parameters
    # "sup_loss", "unsup_loss", "mask_rate" (where meaningful), ...: floats, or detached 0-dim
    # tensors that the trainer reads every log_every steps (no device sync per step)
    logs: dict[str, float | Tensor]
    unlabeled_probs: Tensor | None = None  # μB×C softmax on the weak/clean unlabeled view, detached, if computed anyway


class Algorithm:
    """Base class. Subclasses set ``Config`` (a frozen dataclass) and implement :meth:`step`."""

    Config: ClassVar[type] = object

    def __init__(self, config: Any = None, *, num_classes: int) -> None:
        self.config = self.Config() if config is None else config
        if not isinstance(self.config, self.Config):
            raise invalid_parameter("config", type(self).__name__, f"a {self.Config.__name__}", self.config)
        self.num_classes = num_classes

    @classmethod
    def make_config(cls, overrides: Mapping[str, Any] | Any | None = None) -> Any:
        """The algorithm's config from ``None`` (defaults), a dict of overrides, or a config object."""
        if overrides is None:
            return cls.Config()
        if isinstance(overrides, cls.Config):
            return overrides
        if not isinstance(overrides, Mapping):
            raise invalid_parameter("algo_config", cls.__name__, f"a dict or a {cls.Config.__name__}", overrides)
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise invalid_parameter(
                "algo_config", cls.__name__, f"a dict with keys among {', '.join(sorted(fields))}", unknown
            )
        return cls.Config(**overrides)

    def model_options(self) -> dict[str, Any]:
        """Extra ``build_model`` options the algorithm needs (Π-Model: dropout as its noise)."""
        return {}

    def step(self, model: nn.Module, batch: Batch) -> StepOutput:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors the algorithm carries from step to step (FixMatch's distribution-alignment
        averages); the trainer saves them in its checkpoint so that a resumed run is exact."""
        return {}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore what :meth:`state_dict` returned; a stateless algorithm accepts only ``{}``."""
        if state:
            raise invalid_parameter("state", type(self).__name__, "an empty dict (no state)", sorted(state))


# --- shared pieces of the losses --------------------------------------------------------------


def ramp(t: float, rampup: float) -> float:
    """Linear ramp-up of the unlabeled weight: 0 at the start, 1 once a fraction ``rampup`` of the
    run has passed (USB's ``unsup_warm_up``). ``rampup`` 0 means no ramp. A ramp given in steps is
    the same call: ``ramp(step, rampup_steps)``."""
    if rampup <= 0:
        return 1.0
    return float(min(max(t / rampup, 0.0), 1.0))


def forward_split(model: nn.Module, *xs: Tensor) -> list[Tensor]:
    """One forward pass over the concatenation of ``xs`` (BatchNorm sees labeled and unlabeled
    together, as in FixMatch's reference code, without the interleave trick), split back."""
    logits = model(torch.cat(xs))
    return list(logits.split([len(x) for x in xs]))


def sharpen(p: Tensor, temperature: float) -> Tensor:
    """MixMatch's sharpening: p^(1/T) renormalised; T < 1 lowers the entropy."""
    p = p.pow(1.0 / temperature)
    return p / p.sum(dim=1, keepdim=True)


def entropy(p: Tensor) -> Tensor:
    """Per-row entropy (nats) of probabilities ``N×C``."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-row cross-entropy with probability targets ``N×C``."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)
