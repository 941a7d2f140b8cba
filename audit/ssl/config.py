"""What a training run is given and what it reports: :class:`TrainConfig`, the data checks the
loop relies on, and the records it emits (:class:`EvalRecord` per evaluation, :class:`TrainResult`
at the end, :class:`TrainEvent` to observers, :class:`ProgressInfo` after every step).

The loop itself is :mod:`audit.ssl.trainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from audit.data.imageset import ImageSet
from audit.errors import DataError, ShapeMismatchError, invalid_parameter

if TYPE_CHECKING:  # the dataclasses only name these types; importing torch here would slow every CLI
    from torch import nn

    from audit.ssl.trainer import Trainer

NOT_FINGERPRINTED = ("eval_every", "checkpoint_every", "observe_every", "log_every", "device")  # do not change the weights


@dataclass(frozen=True)
class TrainConfig:
    algo: str = "fixmatch"  # a name in audit.ssl.algorithms.ALGORITHMS
    algo_config: Mapping[str, Any] | Any | None = None  # overrides of the algorithm's config (dict) or its config object
    model: str = "cnn"  # a name in audit.ssl.models.MODELS
    model_options: Mapping[str, Any] | None = None  # build_model options, e.g. {"widths": [16, 32, 64]} for cnn
    steps: int = 1000
    batch_size: int = 64  # labeled images per step, B
    mu: int = 7  # unlabeled images per labeled one: μ·B unlabeled images per step (FixMatch)
    lr: float = 0.03
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # on conv/linear weights only; BatchNorm parameters and biases are not decayed
    ema: float = 0.999  # decay of the EMA model (evaluated, saved; Mean Teacher's teacher)
    # decay min(ema, (1+k)/(10+k)) as TF's ExponentialMovingAverage(num_updates) and Mean
    # Teacher's code: without it a short run's EMA is still mostly the random initialisation
    ema_warmup: bool = True
    eval_every: int = 500  # steps between test evaluations (0: only at the end)
    checkpoint_every: int = 500  # steps between checkpoints (0: never)
    observe_every: int | None = None  # steps between observer calls; None: one pass over the unlabeled pool
    # steps between reads of the step logs (a device sync on a GPU): progress shows the loss
    # this often, and a non-finite loss is caught within this many steps
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"
    flip: bool = True  # random horizontal flips in the weak and strong augmentations
    # overrides of audit.ssl.augment.Strong's fields (n_ops, magnitude, cutout, pad, fill); "pad"
    # also sets the weak translation. E.g. {"fill": 0.0} on black-background images (Fashion-MNIST),
    # where the default grey turns every rotated corner and cutout patch into a foreign texture
    augment_options: Mapping[str, Any] | None = None
    # B > number of labeled images means every batch repeats labeled images (FixMatch's 40-label
    # setting does, with B = 64); refused unless asked for, because it is usually a mistake
    allow_repeats: bool = False

    def __post_init__(self) -> None:
        def positive_int(name: str, lo: int = 1) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise invalid_parameter(name, "TrainConfig", f"an int >= {lo}", v)

        for name in ("steps", "batch_size", "mu", "log_every"):
            positive_int(name)
        for name in ("eval_every", "checkpoint_every", "seed"):
            positive_int(name, 0)
        if self.observe_every is not None:
            positive_int("observe_every")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr <= 10):
            raise invalid_parameter("lr", "TrainConfig", "a float in (0, 10]", self.lr)
        for name in ("momentum", "ema"):
            if not (isinstance(getattr(self, name), (int, float)) and 0 <= getattr(self, name) < 1):
                raise invalid_parameter(name, "TrainConfig", "a float in [0, 1)", getattr(self, name))
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise invalid_parameter("weight_decay", "TrainConfig", "a float >= 0", self.weight_decay)
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise invalid_parameter("device", "TrainConfig", "'auto', 'cpu', 'cuda' or 'cuda:N'", self.device)


@dataclass(frozen=True)
class EvalRecord:
    """One line of metrics.jsonl: means of the step logs since the previous record, test accuracies."""

    step: int
    lr: float
    logs: dict[str, float]  # "loss", "sup_loss", "unsup_loss", "mask_rate", ... (algorithm-specific)
    test_acc_ema: float | None
    test_acc_raw: float | None
    elapsed_s: float  # training time so far, across resumes

    def to_json(self) -> dict:
        return {"step": self.step, "lr": self.lr, "test_acc_ema": self.test_acc_ema,
                "test_acc_raw": self.test_acc_raw, "elapsed_s": round(self.elapsed_s, 3), **self.logs}


@dataclass(frozen=True)
class TrainResult:
    algo: str
    steps: int
    test_acc_ema: float | None  # final accuracy of the EMA model on the test set (None without one)
    test_acc_raw: float | None  # the same for the raw (non-averaged) model
    evals: list[EvalRecord]
    wall_time_s: float  # this fit() call
    config: dict = field(default_factory=dict)
    # final EMA accuracy on each test class, by class name (None without a test set): a class the
    # run gave up on (every coat called a pullover) hides inside a respectable mean
    per_class_ema: dict[str, float] | None = None

    def to_json(self) -> dict:
        return {"algo": self.algo, "steps": self.steps, "test_acc_ema": self.test_acc_ema,
                "test_acc_raw": self.test_acc_raw, "test_acc_per_class_ema": self.per_class_ema,
                "wall_time_s": round(self.wall_time_s, 3), "config": self.config,
                "evals": [e.to_json() for e in self.evals]}


@dataclass(frozen=True)
class TrainEvent:
    """What an observer receives. ``model`` is the EMA model in eval mode; do not train it."""

    step: int  # optimiser steps done
    epoch: int  # passes over the unlabeled pool done: step·μ·B // len(unlabeled)
    model: nn.Module
    raw_model: nn.Module
    trainer: "Trainer"
    final: bool  # the last call of this run


@dataclass(frozen=True)
class ProgressInfo:
    step: int
    steps: int
    # loss and algorithm logs as of the latest read of the step logs (every ``log_every`` steps and
    # at the first step of a fit): their means over the steps between the last two reads
    loss: float
    logs: dict[str, float]
    lr: float
    test_acc: float | None  # EMA accuracy at the latest evaluation, if any yet
    elapsed_s: float


Observer = Callable[[TrainEvent], None]  # may also define on_resume(step): drop records after `step`


def check_data(cfg: TrainConfig, labeled: ImageSet, unlabeled: ImageSet, test: ImageSet | None) -> int:
    """Number of classes, after checking everything the loop would otherwise trip on later."""
    if labeled.labels is None or len(labeled) == 0:
        raise DataError("the labeled set has no labels; every labeled image needs a class")
    if len(unlabeled) == 0:
        raise DataError("the unlabeled pool is empty")
    for name, other in (("unlabeled", unlabeled), ("test", test)):
        if other is not None and other.shape != labeled.shape:
            raise ShapeMismatchError(
                f"the {name} images are {'×'.join(map(str, other.shape))} (H×W×C) but the labeled images are "
                f"{'×'.join(map(str, labeled.shape))}; all sets must share one shape and channel count")
    if test is not None and test.labels is None:
        raise DataError("the test set has no labels; accuracy needs them")
    k = labeled.num_classes or 0
    if test is not None and len(test):
        k = max(k, int(test.labels.max()) + 1)
    counts = np.bincount(labeled.labels, minlength=k)
    missing = [(labeled.class_names[i] if labeled.class_names else str(i)) for i in np.flatnonzero(counts == 0)]
    if missing:
        raise DataError(f"class {', '.join(repr(m) for m in missing)} has no labeled example; "
                        f"every class needs at least one")
    if k < 2:
        raise DataError(f"the labeled set has {k} class; at least 2 are needed")
    if cfg.batch_size > len(labeled) and not cfg.allow_repeats:
        raise invalid_parameter(
            "batch_size", "train", f"at most the {len(labeled)} labeled images, or allow repeated labeled "
            f"images within a batch (--allow-repeats; FixMatch's 40-label setting does)", cfg.batch_size)
    return k
