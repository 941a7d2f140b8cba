"""The SSL trainer: one loop that any algorithm of :mod:`audit.ssl.algorithms` plugs into.

Read :meth:`Trainer.fit` top to bottom: sample, forward + loss (the algorithm), backward, step,
EMA, record / evaluate / observe / checkpoint. Data lives on the device as uint8 tensors and
batches are drawn by index there (random with replacement, from a seeded generator, so a resumed
run draws exactly what the killed one would have). SGD with Nesterov momentum, weight decay on
weights only, FixMatch's cosine decay ``lr·cos(7πk/16K)``; the EMA model is the one evaluated,
observed and saved. Observers (``audit dynamics``' prediction recorder) get a :class:`TrainEvent`
every ``observe_every`` steps and at the end (paper 5.3 records predictions after each epoch).
The step logs (loss, mask rate, ...) stay on the device and are read every ``log_every`` steps
(nanoGPT's ``log_interval``): reading a GPU value waits for the GPU, so a read per step would
stall every step. :mod:`audit.ssl.config` holds the configuration, the data checks and the
records a run emits.

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
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from audit.atomic import atomic_open, remove_stale_temps, write_atomic
from audit.data.imageset import ImageSet
from audit.errors import AuditError, OutputError, RunInterrupted, ShapeMismatchError, invalid_parameter
from audit.ssl import checkpoint
from audit.ssl.algorithms import ALGORITHMS, Batch
from audit.ssl.augment import Strong, Weak, channel_stats, to_float
from audit.ssl.config import (  # noqa: F401  (TrainEvent, Observer: re-exported for observers)
    NOT_FINGERPRINTED, EvalRecord, Observer, ProgressInfo, TrainConfig, TrainEvent, TrainResult, check_data,
)
from audit.ssl.models import build_model

class Trainer:
    def __init__(self, config: TrainConfig, labeled: ImageSet, unlabeled: ImageSet, test: ImageSet | None = None,
                 *, out_dir: Path | None = None, observers: Sequence[Observer] = (),
                 on_progress: Callable[[ProgressInfo], None] | None = None,
                 should_stop: Callable[[ProgressInfo], bool] | None = None) -> None:
        # should_stop: asked after every step; True ends the run there as if it were the last
        # step (final evaluation, observers' final call, model.pt), e.g. at a CPU-time budget
        self.config = cfg = config
        algo_cls = ALGORITHMS.get(cfg.algo)
        self.num_classes = check_data(cfg, labeled, unlabeled, test)
        self.labeled, self.unlabeled, self.test = labeled, unlabeled, test
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.observers, self.on_progress, self.should_stop = list(observers), on_progress, should_stop
        self.device = resolve_device(cfg.device)
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
        # step-log sums since the last evaluation and its accuracy: carried by checkpoints, so a
        # resumed run's next metrics line averages the same steps as an uninterrupted run's
        self._logs, self._last_acc = StepLogs(), None
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
        logs, last_observed, first = self._logs, -1, self.step + 1
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

                logs.add({"loss": out.loss, **out.logs})  # on the device: no wait here
                if self.step % cfg.log_every == 0 or self.step == first:
                    self._read_logs()
                elapsed = self._elapsed_before + time.perf_counter() - t0
                info = ProgressInfo(self.step, cfg.steps, logs.shown.get("loss", math.nan),
                                    {k: v for k, v in logs.shown.items() if k != "loss"},
                                    self.scheduler.get_last_lr()[0], self._last_acc, elapsed)
                last = self.step == cfg.steps or (self.should_stop is not None and self.should_stop(info))
                if (cfg.eval_every and self.step % cfg.eval_every == 0) or last:
                    evals.append(self._evaluate({k: v / logs.n for k, v in self._read_logs().items()}, elapsed))
                    logs.reset()
                    self._last_acc = evals[-1].test_acc_ema
                    info = replace(info, test_acc=self._last_acc)
                if self.step % observe_every == 0 or last:
                    self._observe(final=last)
                    last_observed = self.step
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

    def _read_logs(self) -> dict[str, float]:
        """The step-log sums as floats (one device sync); a non-finite loss ends the run here."""
        sums = self._logs.read()
        loss = sums.get("loss", 0.0)
        if not math.isfinite(loss):
            raise AuditError(f"the {self.config.algo} loss became {loss} by step {self.step}; try a lower --lr")
        return sums

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
    @torch.inference_mode()
    def predict(self, images: ImageSet | np.ndarray, *, model: nn.Module | None = None,
                batch_size: int | None = None) -> np.ndarray:
        """float32 ``N×C`` softmax of ``model`` (default: the EMA model) on the clean, un-augmented
        images (uint8 ``N×H×W×C``, same shape as the training images), eval mode, no gradient;
        ``batch_size`` images per forward pass (default :meth:`predict_batch`)."""
        arr = images.images if isinstance(images, ImageSet) else images
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != self.labeled.shape:
            raise ShapeMismatchError(
                f"predict needs uint8 N×{'×'.join(map(str, self.labeled.shape))} images like the training set; got "
                f"{getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', '')}")
        return self._probs(model or self.ema_model, torch.from_numpy(np.ascontiguousarray(arr)), batch_size).cpu().numpy()

    def predict_batch(self) -> int:
        """Images per forward pass when predicting: 1024 on a GPU; on a CPU ~200k pixels (256 images
        of 28×28), whose activations stay in cache: a record of 60k Fashion-MNIST images takes 0.6x
        the time it takes in batches of 1024 (docs/benchmarks.md, "Recording cost")."""
        if self.device.type != "cpu":
            return 1024
        h, w, _ = self.labeled.shape
        return max(16, 200_000 // (h * w))

    @torch.inference_mode()
    def _probs(self, model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        batch_size = batch_size or self.predict_batch()
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
            "pending": {"sums": self._read_logs(), "n_logged": self._logs.n, "last_acc": self._last_acc},
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
        pending = state.get("pending") or {}  # absent in checkpoints of earlier versions
        self._logs, self._last_acc = StepLogs(pending), pending.get("last_acc")
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


def resolve_device(name: str, owner: str = "train") -> torch.device:
    """Every model's device (SSL, GAN, attacks): "auto" = CUDA when present; CUDA only where it is."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise invalid_parameter("device", owner, "'auto', 'cpu', 'cuda' or 'cuda:N'", name) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise invalid_parameter("device", owner, "'auto' or 'cpu' on a machine without CUDA", name)
    return device


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62  # unreadable line: dropped


class StepLogs:
    """Step logs (the loss and the algorithm's ``logs``: floats or 0-dim tensors) summed since the
    last evaluation. Tensors stay on their device, so adding a step waits for nothing; :meth:`read`
    turns every sum into a float with one device sync. Sums are float64 in step order, exactly as
    a sum of the floats would be, so the metrics do not depend on how often they are read.
    ``shown``: the means over the steps between the two latest reads (what progress displays)."""

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        state = state or {}
        self.sums: dict[str, Any] = dict(state.get("sums", {}))
        self.n = int(state.get("n_logged", 0))
        self.shown: dict[str, float] = {}
        self._seen, self._seen_n = dict(self.sums), self.n

    def add(self, logs: Mapping[str, Any]) -> None:
        for k, v in logs.items():
            v = v.detach().to(torch.float64) if isinstance(v, torch.Tensor) else float(v)
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def read(self) -> dict[str, float]:
        pending = [k for k, v in self.sums.items() if isinstance(v, torch.Tensor)]
        if pending:
            values = torch.stack([self.sums[k] for k in pending]).tolist()  # the one sync
            self.sums.update(zip(pending, values))
        if self.n > self._seen_n:
            steps = self.n - self._seen_n
            self.shown = {k: (v - self._seen.get(k, 0.0)) / steps for k, v in self.sums.items()}
        self._seen, self._seen_n = dict(self.sums), self.n
        return dict(self.sums)

    def reset(self) -> None:
        self.sums, self.n, self._seen, self._seen_n = {}, 0, {}, 0
