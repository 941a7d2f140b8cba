"""Training checkpoints: written atomically, read back safely, tied to the run that wrote them.

A checkpoint is a plain dict of tensors, numbers and strings (loaded with ``weights_only=True``:
no arbitrary pickle), holding everything a killed run needs to continue exactly: model, EMA,
optimiser, scheduler, step, every RNG state, and a fingerprint of the configuration and data.

Also here, because both are about not losing a run: :class:`StopRequests` (SIGINT/SIGTERM ask
the training loop to stop at a step boundary, where it can checkpoint) and the files of a run
folder that a new run must not silently replace (:func:`earlier_run`, :func:`clear_run`).
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit.atomic import atomic_open
from audit.errors import CheckpointError

FORMAT = "ssl-poison-audit/checkpoint/1"
REQUIRED = ("format", "fingerprint", "config", "step", "model", "ema", "optimizer", "scheduler", "rng")
RUN_FILES = ("checkpoint.pt", "model.pt", "summary.json", "metrics.jsonl")  # what a training run writes


class StopRequests:
    """``with StopRequests() as stop:`` SIGINT and SIGTERM set ``stop.signal`` (``"SIGINT"``)
    instead of ending the process, so a loop can finish its step, checkpoint and stop; a second
    signal raises KeyboardInterrupt at once (the user insists). The previous handlers come back on
    exit. Outside the main thread (where Python cannot set handlers) it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name


def earlier_run(out_dir: Path) -> list[str]:
    """The files of a training run already in ``out_dir`` (empty when there is none)."""
    return [name for name in RUN_FILES if (Path(out_dir) / name).is_file()]


def clear_run(out_dir: Path) -> None:
    """Remove the files a training run writes (``RUN_FILES``) from ``out_dir`` and nothing else:
    ``--force`` starts over without leaving an old checkpoint that a later ``--resume`` would take."""
    for name in RUN_FILES:
        p = Path(out_dir) / name
        if p.is_file() and not p.is_symlink():
            p.unlink()


def fingerprint(config: dict[str, Any], data_digest: str) -> str:
    """sha256 of the training-relevant configuration (JSON, sorted keys) and the data digest."""
    blob = json.dumps(config, sort_keys=True, default=str) + data_digest
    return hashlib.sha256(blob.encode()).hexdigest()


def data_digest(*arrays: np.ndarray | None) -> str:
    """sha256 over the shapes and bytes of the arrays (images, labels) a run trains on."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state(sampler: torch.Generator) -> dict[str, Any]:
    """Every random state a training step reads: torch (CPU and CUDA), numpy, python, the sampler."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
        "sampler": sampler.get_state(),
    }


def set_rng_state(state: dict[str, Any], sampler: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    sampler.set_state(state["sampler"])


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.
    A run killed mid-write leaves the previous checkpoint intact (and a ``.checkpoint.pt.PID.N.tmp``
    that the next run in the folder removes)."""
    with atomic_open(path) as f:
        torch.save({"format": FORMAT, **state}, f)


def load(path: Path, expected_fingerprint: str, config: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint for the run described by ``config``; every way it can be unusable is one
    :class:`CheckpointError` saying what to do. Tensors are loaded on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume from at {path}; run without --resume to start afresh")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, a foreign pickle: all the same to the user
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}); delete it to start afresh"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or any(k not in state for k in REQUIRED):
        raise CheckpointError(f"{path} is not a training checkpoint of this tool; delete it to start afresh")
    if state["fingerprint"] != expected_fingerprint:
        old = state["config"] if isinstance(state["config"], dict) else {}
        diffs = [f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in sorted(config)
                 if old.get(k) != config.get(k)]
        what = "; ".join(diffs) if diffs else "different training data"
        raise CheckpointError(
            f"checkpoint {path} was written by a different run ({what}); "
            f"resume with the same options and data, or use another --out"
        )
    return state
