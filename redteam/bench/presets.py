"""Named bench configurations (``redteam bench --preset NAME``); every flag of the CLI overrides
a preset's field. Each includes the clean control (the matrix adds it). Sizing and measured times:
docs/bench.md.

* ``smoke``: digits (8×8), FixMatch, linear and jitter at 2% and 5%, 2 trials of 200 steps: the whole
  pipeline in ~2 minutes on 2 shared cores. For tests, the README and CI, not for conclusions.
* ``cpu_small``: Fashion-MNIST, a 5 000-image pool, FixMatch with a narrow CNN (16-32-64), linear
  at 0.5% and 1% (25 and 50 images), density 1.5-x, 3 trials of 1 200 steps (batch 32, μ 7: ~54
  passes over the pool, one prediction record per pass). 9 trials × ~6 min ≈ 55 min on 2 idle
  cores with 1 thread (measured 0.26 s/step).
* ``adaptive``: the scan against attackers who know it (issue #14): Fashion-MNIST, a 5 000-image
  pool, the 3.1 bridge and its adaptive variants at their defaults (``noise``, per-image
  ``translate``, ``jitter_translate``, ``curved``, ``slerp``) at 1% (50 images), 2 trials each.
  Training is short (300 steps): the scan detectors (``scan:bridge``, ``scan:path``) are the point
  and do not depend on it; the attack's success does. Stronger variants (σ = 8 noise, ±2 px shifts,
  GAN paths) with 5 seeds and cleanlab side by side: ``benchmarks/bench_adaptive.py``.
* ``paper``: Table 1's setting for a GPU: CIFAR-10 from its python-version folder (``--dataset``
  to point elsewhere: SVHN, STL-10), WRN-28-2, 40 labels, FixMatch/MixMatch/UDA at 0.1/0.2/0.5%,
  8 trials, FixMatch's 2^20 steps of batch 64, μ 7, predictions recorded every 1 024 steps (FixMatch's
  "epoch"; once per pass over 50k images would be 9 400 records of 50k×10).
* ``paper_densities``: Table 3: FixMatch on CIFAR-10, the eleven densities × the three ratios.
* ``gpu``: one call of a lent H200 (10 minutes): the Fashion-MNIST setting of the CPU lever runs
  (issue #18: 250 labels, a 5 000-image pool, linear at 2%, B 32, μ 7, black fill) trained ~7×
  longer (20 000 steps, ~900 passes over the pool) on the default-width CNN, one trial (its
  control + the poisoned run), a record every 250 steps. Unmeasured on a GPU: at an assumed
  ≤ 10 ms per step a training takes ≤ 3.5 min, both ≤ 8 min with the audits; a call cut short
  keeps the finished control and the next call resumes. ``--trials N`` adds trials, one call each.
  Fashion-MNIST must travel with the job (``--root`` a carried copy of its IDX files; docs/bench.md).
"""

from __future__ import annotations

from typing import Callable

from audit.registry import Registry
from audit.ssl.config import TrainConfig
from redteam.bench.matrix import BenchConfig
from redteam.density import DENSITIES

PRESETS: Registry[Callable[[], BenchConfig]] = Registry("preset")
PAPER_STEPS = 1 << 20  # FixMatch trains 2^20 steps (paper 3.2.1: "20 GPU-hours" per run)
PAPER_EPOCH = 1024  # FixMatch's code calls 1024 steps an epoch; the dynamics record once per epoch


@PRESETS("smoke")
def smoke() -> BenchConfig:
    return BenchConfig(
        dataset="digits", labels_per_class=4, algos=("fixmatch",), attacks=("linear", "jitter"),
        ratios=(0.02, 0.05), densities=("1.5-x",), trials=2, preset="smoke",
        # 200 steps of 32 + 4·32 images: ~18 passes over the 1 400-image pool, one record each
        train=TrainConfig(model="cnn", model_options={"widths": [16, 32, 64]}, steps=200, batch_size=32, mu=4,
                          flip=False))


@PRESETS("cpu_small")
def cpu_small() -> BenchConfig:
    return BenchConfig(
        dataset="fashion-mnist", labels_per_class=4, pool=5000, algos=("fixmatch",), attacks=("linear",),
        ratios=(0.005, 0.01), densities=("1.5-x",), trials=3, preset="cpu_small",
        train=TrainConfig(model="cnn", model_options={"widths": [16, 32, 64]}, steps=1200, batch_size=32, mu=7))


@PRESETS("adaptive")
def adaptive() -> BenchConfig:
    return BenchConfig(
        dataset="fashion-mnist", labels_per_class=4, pool=5000, algos=("fixmatch",),
        attacks=("linear", "noise", "translate", "jitter_translate", "curved", "slerp"), ratios=(0.01,),
        densities=("1.5-x",), trials=2, preset="adaptive",
        train=TrainConfig(model="cnn", model_options={"widths": [16, 32, 64]}, steps=300, batch_size=32, mu=7))


@PRESETS("paper")
def paper() -> BenchConfig:
    return BenchConfig(
        dataset="cifar-10-batches-py", labels_per_class=4, algos=("fixmatch", "mixmatch", "uda"),
        attacks=("linear",), ratios=(0.001, 0.002, 0.005), densities=("1.5-x",), trials=8, preset="paper",
        train=TrainConfig(model="wrn28_2", steps=PAPER_STEPS, batch_size=64, mu=7, observe_every=PAPER_EPOCH))


@PRESETS("paper_densities")
def paper_densities() -> BenchConfig:
    base = paper()
    return BenchConfig(**{**{f: getattr(base, f) for f in base.__dataclass_fields__},
                          "algos": ("fixmatch",), "densities": tuple(DENSITIES), "preset": "paper_densities"})


@PRESETS("gpu")
def gpu() -> BenchConfig:
    return BenchConfig(
        dataset="fashion-mnist", labels_per_class=25, pool=5000, algos=("fixmatch",), attacks=("linear",),
        ratios=(0.02,), densities=("1.5-x",), trials=1, preset="gpu",
        dynamics_scores=("influence", "chain", "chain+pixels"),
        train=TrainConfig(model="cnn", steps=20000, batch_size=32, mu=7, observe_every=250,
                          augment_options={"fill": 0.0}))
