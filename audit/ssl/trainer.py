"""The SSL trainer: one loop that any algorithm of :mod:`audit.ssl.algorithms` plugs into.

Read :meth:`Trainer.fit` top to bottom: sample, forward + loss (the algorithm), backward, step,
EMA, record / evaluate / observe / checkpoint. Data lives on the device as uint8 tensors and
batches are drawn by index there (random with replacement, from a seeded generator, so a resumed
run draws exactly what the killed one would have). SGD with Nesterov momentum, weight decay on
weights only, FixMatch's cosine decay ``lr·cos(7πk/16K)``; the EMA model is the one evaluated,
observed and saved. Observers (``audit dynamics``' prediction recorder) get a :class:`TrainEvent`
every ``observe_every`` steps and at the end (paper 5.3 records predictions after each epoch).

Interruptions: while :meth:`Trainer.fit` runs, SIGINT (Ctrl-C) and SIGTERM end the run at the
next step boundary: with an ``out_dir`` it writes a checkpoint there, then raises
``audit.errors.RunInterrupted`` (exit 130 in the CLIs); resuming from it continues exactly as the
uninterrupted run would have. A second signal aborts at once (KeyboardInterrupt).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from audit.atomic import atomic_open, remove_stale_temps, write_atomic
from audit.data.imageset import ImageSet
from audit.errors import AuditError, DataError, OutputError, RunInterrupted, ShapeMismatchError, invalid_parameter
from audit.ssl import checkpoint
from audit.ssl.algorithms import ALGORITHMS, Batch
from audit.ssl.augment import Strong, Weak, channel_stats, to_float
from audit.ssl.models import build_model

NOT_FINGERPRINTED = ("eval_every", "checkpoint_every", "observe_every", "device")  # do not change the weights


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

        for name in ("steps", "batch_size", "mu"):
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
    loss: float
    logs: dict[str, float]  # this step's algorithm logs
    lr: float
    test_acc: float | None  # EMA accuracy at the latest evaluation, if any yet
    elapsed_s: float


Observer = Callable[[TrainEvent], None]  # may also define on_resume(step): drop records after `step`


class Trainer:
    def __init__(self, config: TrainConfig, labeled: ImageSet, unlabeled: ImageSet, test: ImageSet | None = None,
                 *, out_dir: Path | None = None, observers: Sequence[Observer] = (),
                 on_progress: Callable[[ProgressInfo], None] | None = None,
                 should_stop: Callable[[ProgressInfo], bool] | None = None) -> None:
        # should_stop: asked after every step; True ends the run there as if it were the last
        # step (final evaluation, observers' final call, model.pt), e.g. at a CPU-time budget
        self.config = cfg = config
        algo_cls = ALGORITHMS.get(cfg.algo)
        self.num_classes = _check_data(cfg, labeled, unlabeled, test)
        self.labeled, self.unlabeled, self.test = labeled, unlabeled, test
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.observers, self.on_progress, self.should_stop = list(observers), on_progress, should_stop
        self.device = _resolve_device(cfg.device)
        self.algorithm = algo_cls(algo_cls.make_config(cfg.algo_config), num_classes=self.num_classes)

        checkpoint.seed_everything(cfg.seed)
        h, w, c = labeled.shape
        mean, std = channel_stats(unlabeled.images)
        self.model_options = {**self.algorithm.model_options(), **dict(cfg.model_options or {})}
        self.model = build_model(cfg.model, self.num_classes, c, (h, w), mean=mean, std=[max(s, 1e-3) for s in std],
                                 **self.model_options).to(self.device)
        self.ema_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]  # BatchNorm weights, biases
        self.optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda k: math.cos(7 * math.pi * k / (16 * cfg.steps)))
        self.weak, self.strong = _augmenters(cfg)

        # the data, once, on the device: uint8 N×H×W×C, batches drawn by index
        self._x_l = torch.from_numpy(labeled.images).to(self.device)
        self._y_l = torch.from_numpy(labeled.labels).to(self.device)
        self._x_u = torch.from_numpy(unlabeled.images).to(self.device)
        self._x_test = None if test is None else torch.from_numpy(test.images).to(self.device)
        self._pred_cache: dict[int, tuple[int, np.ndarray]] = {}  # id(model) -> (step, test predictions)
        self._sampler = torch.Generator().manual_seed(cfg.seed)
        # the global RNGs as fit() must find them: whatever runs between __init__ and fit()
        # (another trainer, say) cannot change this run's augmentations
        self._rng_at_start = checkpoint.rng_state(self._sampler)
        self.step = 0
        self._elapsed_before = 0.0  # training seconds of the runs this one resumes
        self._pending: dict = {}  # fit()'s step-log sums since its last evaluation (checkpointed)
        self._config_json = json.loads(json.dumps(_config_dict(cfg, self.algorithm.config), default=str))
        fp_config = {k: v for k, v in self._config_json.items() if k not in NOT_FINGERPRINTED}
        self._fingerprint = checkpoint.fingerprint(
            fp_config, checkpoint.data_digest(labeled.images, labeled.labels, unlabeled.images))

    # --- the loop ------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Train to ``config.steps``; ``resume`` first restores ``out_dir/checkpoint.pt`` exactly.
        SIGINT / SIGTERM stop it at a step boundary with a checkpoint (module doc)."""
        cfg, model = self.config, self.model
        if resume and self.step == 0:
            self.resume()  # raises before anything is written
        elif self.step == 0:
            checkpoint.set_rng_state(self._rng_at_start, self._sampler)
            if self.out_dir is not None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / "metrics.jsonl").unlink(missing_ok=True)
        if self.out_dir is not None:
            remove_stale_temps(self.out_dir)  # .checkpoint.pt.PID.N.tmp and the like of killed runs
        observe_every = cfg.observe_every or math.ceil(len(self.unlabeled) / (cfg.mu * cfg.batch_size))
        evals: list[EvalRecord] = []
        # step logs since the last evaluation: carried by checkpoints, so a resumed run's next
        # metrics line averages the same steps as an uninterrupted run's
        sums: dict[str, float] = dict(self._pending.get("sums", {}))
        n_logged, last_acc, last_observed = int(self._pending.get("n_logged", 0)), self._pending.get("last_acc"), -1
        t0 = time.perf_counter()
        model.train()
        last = self.step >= cfg.steps
        with checkpoint.StopRequests() as stop:
            while not last:
                batch = self._next_batch()
                out = self.algorithm.step(model, batch)  # forward + loss
                self.optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                self.optimizer.step()
                self.scheduler.step()
                self._update_ema()
                self.step += 1

                loss = out.loss.item()
                if not math.isfinite(loss):
                    raise AuditError(f"the {cfg.algo} loss became {loss} at step {self.step}; try a lower --lr")
                for k, v in {"loss": loss, **out.logs}.items():
                    sums[k] = sums.get(k, 0.0) + v
                n_logged += 1
                elapsed = self._elapsed_before + time.perf_counter() - t0
                info = ProgressInfo(self.step, cfg.steps, loss, out.logs, self.scheduler.get_last_lr()[0], last_acc,
                                    elapsed)
                last = self.step == cfg.steps or (self.should_stop is not None and self.should_stop(info))
                if (cfg.eval_every and self.step % cfg.eval_every == 0) or last:
                    evals.append(self._evaluate({k: v / n_logged for k, v in sums.items()}, elapsed))
                    sums, n_logged, last_acc = {}, 0, evals[-1].test_acc_ema
                    info = replace(info, test_acc=last_acc)
                if self.step % observe_every == 0 or last:
                    self._observe(final=last)
                    last_observed = self.step
                self._pending = {"sums": sums, "n_logged": n_logged, "last_acc": last_acc}
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.out_dir is not None:
                    self.save_checkpoint(elapsed)
                if self.on_progress is not None:
                    self.on_progress(info)
                if stop.signal is not None and not last:  # the last step finishes the run anyway
                    self._stop(stop.signal, elapsed)
            # still under StopRequests: a first signal from here on lets the finished run save
            if last_observed != self.step:  # resumed at the end: still give observers their final call
                self._observe(final=True)

            if evals and evals[-1].step == self.step:
                acc_ema, acc_raw = evals[-1].test_acc_ema, evals[-1].test_acc_raw
            else:  # resumed at the end
                acc_ema, acc_raw = self._accuracy(self.ema_model), self._accuracy(self.model)
            result = TrainResult(cfg.algo, self.step, acc_ema, acc_raw, evals, time.perf_counter() - t0,
                                 self._config_json, self._per_class(self.ema_model))
            if self.out_dir is not None:
                with atomic_open(self.out_dir / "model.pt") as f:
                    torch.save(self._model_file(), f)
                write_atomic(self.out_dir / "summary.json", json.dumps(result.to_json(), indent=2))
        return result

    def _stop(self, signal_name: str, elapsed: float) -> None:
        """After SIGINT/SIGTERM: checkpoint this step (when there is an out_dir), then stop."""
        where = f"at step {self.step} of {self.config.steps} ({signal_name})"
        if self.out_dir is None:
            raise RunInterrupted(f"interrupted {where}; no out_dir, so nothing was saved")
        path = self.save_checkpoint(elapsed)
        raise RunInterrupted(f"interrupted {where}; saved {path}: continue with --resume")

    def _next_batch(self) -> Batch:
        cfg = self.config
        il = torch.randint(len(self._x_l), (cfg.batch_size,), generator=self._sampler).to(self.device)
        iu = torch.randint(len(self._x_u), (cfg.mu * cfg.batch_size,), generator=self._sampler).to(self.device)
        return Batch(x_l=to_float(self._x_l[il], self.device), y_l=self._y_l[il],
                     x_u=to_float(self._x_u[iu], self.device), weak=self.weak, strong=self.strong,
                     t=self.step / cfg.steps, teacher=self.ema_model, step=self.step)

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config.ema
        if self.config.ema_warmup:
            decay = min(decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema_model.parameters(), self.model.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(self.ema_model.buffers(), self.model.buffers()):
            e.copy_(b)  # BatchNorm statistics are copied, as in FixMatch's code

    # --- evaluation, prediction, observers -----------------------------------------------
    @torch.no_grad()
    def predict(self, images: ImageSet | np.ndarray, *, model: nn.Module | None = None,
                batch_size: int = 1024) -> np.ndarray:
        """float32 ``N×C`` softmax of ``model`` (default: the EMA model) on the clean, un-augmented
        images (uint8 ``N×H×W×C``, same shape as the training images), eval mode, no gradient."""
        arr = images.images if isinstance(images, ImageSet) else images
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != self.labeled.shape:
            raise ShapeMismatchError(
                f"predict needs uint8 N×{'×'.join(map(str, self.labeled.shape))} images like the training set; got "
                f"{getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', '')}")
        return self._probs(model or self.ema_model, torch.from_numpy(np.ascontiguousarray(arr)), batch_size).cpu().numpy()

    @torch.no_grad()
    def _probs(self, model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        was_training = model.training
        model.eval()
        out = [torch.softmax(model(to_float(x[i:i + batch_size].to(self.device), self.device)).float(), dim=1)
               for i in range(0, len(x), batch_size)]
        model.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, self.num_classes, device=self.device)

    def _test_predictions(self, model: nn.Module) -> np.ndarray:
        # each model's latest predictions are kept: the final evaluation and _per_class share them
        cached = self._pred_cache.get(id(model))
        if cached is None or cached[0] != self.step:
            cached = (self.step, self._probs(model, self._x_test).argmax(dim=1).cpu().numpy())
            self._pred_cache[id(model)] = cached
        return cached[1]

    def _accuracy(self, model: nn.Module) -> float | None:
        if self._x_test is None:
            return None
        return float((self._test_predictions(model) == self.test.labels).mean())

    def _per_class(self, model: nn.Module) -> dict[str, float] | None:
        if self._x_test is None:
            return None
        pred, labels = self._test_predictions(model), self.test.labels
        names = list(self.labeled.class_names or [])
        return {(names[k] if k < len(names) else str(k)): float((pred[labels == k] == k).mean())
                for k in range(self.num_classes) if (labels == k).any()}

    def _evaluate(self, logs: dict[str, float], elapsed: float) -> EvalRecord:
        rec = EvalRecord(self.step, self.scheduler.get_last_lr()[0], logs, self._accuracy(self.ema_model),
                         self._accuracy(self.model), elapsed)
        if self.out_dir is not None:
            path = self.out_dir / "metrics.jsonl"
            try:
                with open(path, "a") as f:
                    f.write(json.dumps(rec.to_json()) + "\n")
            except OSError as exc:  # disk full: one line naming the file
                raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        return rec

    def _observe(self, final: bool) -> None:
        epoch = self.step * self.config.mu * self.config.batch_size // len(self.unlabeled)
        event = TrainEvent(self.step, epoch, self.ema_model, self.model, self, final)
        for observer in self.observers:
            observer(event)

    # --- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, elapsed: float = 0.0) -> Path:
        """Write ``out_dir/checkpoint.pt`` atomically with everything :meth:`fit` needs to resume."""
        if self.out_dir is None:
            raise invalid_parameter("out_dir", "Trainer", "a folder to write the checkpoint to", None)
        path = self.out_dir / "checkpoint.pt"
        checkpoint.save(path, {
            "fingerprint": self._fingerprint, "config": self._config_json, "step": self.step,
            "elapsed_s": elapsed, "model": self.model.state_dict(), "ema": self.ema_model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "algorithm": self.algorithm.state_dict(), "rng": checkpoint.rng_state(self._sampler),
            "pending": self._pending,
        })
        return path

    def resume(self) -> int:
        """Restore ``out_dir/checkpoint.pt`` (weights, optimiser, schedule, every RNG), drop metrics
        past it, tell observers (``on_resume(step)``); returns the step. :meth:`fit` then continues
        exactly as the killed run would have. Raises :class:`CheckpointError`, writing nothing."""
        if self.out_dir is None:
            raise invalid_parameter("out_dir", "Trainer", "the folder of the run to resume", None)
        fp_config = {k: v for k, v in self._config_json.items() if k not in NOT_FINGERPRINTED}
        state = checkpoint.load(self.out_dir / "checkpoint.pt", self._fingerprint, fp_config)
        try:
            self.model.load_state_dict(state["model"])
            self.ema_model.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.algorithm.load_state_dict(state.get("algorithm", {}))
            checkpoint.set_rng_state(state["rng"], self._sampler)
        except Exception as exc:
            raise checkpoint.CheckpointError(
                f"checkpoint {self.out_dir / 'checkpoint.pt'} does not fit this run ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]}); delete it to start afresh") from None
        self.step, self._elapsed_before = int(state["step"]), float(state.get("elapsed_s", 0.0))
        self._pending = state.get("pending") or {}  # absent in checkpoints of earlier versions
        self._pred_cache.clear()  # new weights at a step that may have been evaluated already
        metrics = self.out_dir / "metrics.jsonl"  # a killed run may have evaluated past its checkpoint
        if metrics.is_file():
            lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
            kept = [ln for ln in lines if _line_step(ln) <= self.step]
            write_atomic(metrics, "".join(ln + "\n" for ln in kept))
        for observer in self.observers:
            on_resume = getattr(observer, "on_resume", None)
            if on_resume is not None:
                on_resume(self.step)
        return self.step

    def _model_file(self) -> dict:
        h, w, c = self.labeled.shape
        return {"model": self.config.model, "num_classes": self.num_classes, "in_channels": c,
                "image_size": [h, w], "class_names": list(self.labeled.class_names or []),
                "model_options": self.model_options, "state_dict": self.ema_model.state_dict()}


# --- helpers ---------------------------------------------------------------------------------
def _check_data(cfg: TrainConfig, labeled: ImageSet, unlabeled: ImageSet, test: ImageSet | None) -> int:
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


def balanced_split(imageset: ImageSet, per_class: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """(labeled, rest): ``per_class`` images of every class drawn at random (seeded), and all the
    others, for the built-in datasets (paper 3.2.1: 40 labels = 4 per class on CIFAR-10)."""
    if imageset.labels is None:
        raise DataError("balanced_split needs a labeled image set")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise invalid_parameter("per_class", "balanced_split", "an int >= 1", per_class)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(imageset.labels):
        idx = np.flatnonzero(imageset.labels == c)
        if len(idx) < per_class:
            name = imageset.class_names[c] if imageset.class_names else str(c)
            raise DataError(f"class {name!r} has {len(idx)} images, fewer than the {per_class} labels per class asked for")
        chosen.extend(rng.choice(idx, size=per_class, replace=False))
    mask = np.zeros(len(imageset), bool)
    mask[chosen] = True
    return imageset.subset(np.flatnonzero(mask)), imageset.subset(np.flatnonzero(~mask))


_AUGMENT_OPTIONS = ("n_ops", "magnitude", "cutout", "pad", "fill")


def _augmenters(cfg: TrainConfig) -> tuple[Weak, Strong]:
    options = dict(cfg.augment_options or {})
    unknown = sorted(set(options) - set(_AUGMENT_OPTIONS))
    if unknown:
        raise invalid_parameter("augment_options", "TrainConfig", f"a dict with keys among {', '.join(_AUGMENT_OPTIONS)}",
                                unknown)
    weak = Weak(flip=cfg.flip, **({"pad": options["pad"]} if "pad" in options else {}))
    return weak, Strong(flip=cfg.flip, **options)


def _config_dict(cfg: TrainConfig, algo_config: Any) -> dict:
    d = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    d["algo_config"] = asdict(algo_config)
    return d


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise invalid_parameter("device", "train", "'auto' or 'cpu' on a machine without CUDA", name)
    return torch.device(name)


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62  # unreadable line: dropped
