"""SSL engine benchmarks on CPU (docs/benchmarks.md quotes their output).

    python benchmarks/bench_ssl.py timings                      # seconds per step of every algorithm
    python benchmarks/bench_ssl.py accuracy --minutes 28        # FixMatch, Fashion-MNIST, 40 labels
    python benchmarks/bench_ssl.py accuracy --algo supervised   # the same 40 labels, no unlabeled loss

Setting (paper 3.2.1, scaled to a 2-core CPU): Fashion-MNIST, 40 labels (4 per class, seed 0),
a 10k-image unlabeled pool drawn from the rest of the training split, the ``cnn`` model, batch 64,
μ 7, SGD lr 0.03 with FixMatch's cosine decay, EMA 0.999 evaluated on the 10k test images.
``accuracy`` sizes the run to the wall-clock budget from a short timing of the same setting
(the cosine schedule needs the number of steps up front), unless ``--steps`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from audit.data.builtin import fashion_mnist
from audit.ssl.algorithms import ALGORITHMS, Algorithm, Batch, StepOutput
from audit.ssl.trainer import TrainConfig, Trainer, balanced_split


@dataclass(frozen=True)
class SupervisedConfig:
    pass


class Supervised(Algorithm):
    """Baseline: cross-entropy on the weakly augmented labeled batch; the unlabeled batch is unused."""

    Config = SupervisedConfig

    def step(self, model, batch: Batch) -> StepOutput:
        loss = F.cross_entropy(model(batch.weak(batch.x_l)), batch.y_l)
        return StepOutput(loss, {"sup_loss": loss.item()})


def data(pool: int, per_class: int = 4, seed: int = 0):
    splits = fashion_mnist()
    labeled, rest = balanced_split(splits.train, per_class, seed)
    idx = np.sort(np.random.default_rng(seed).choice(len(rest), pool, replace=False))
    return labeled, rest.subset(idx).without_labels(), splits.test


def seconds_per_step(algo: str, labeled, unlabeled, steps: int, warmup: int = 2, **cfg) -> float:
    stamps: list[float] = []
    config = TrainConfig(algo=algo, steps=warmup + steps, eval_every=0, checkpoint_every=0, device="cpu",
                         observe_every=10**6, **cfg)
    Trainer(config, labeled, unlabeled, on_progress=lambda info: stamps.append(time.perf_counter())).fit()
    return (stamps[-1] - stamps[warmup - 1]) / steps


def timings(args) -> None:
    labeled, unlabeled, _ = data(2000)
    rows = {}
    for algo in ALGORITHMS.names():
        rows[algo] = seconds_per_step(algo, labeled, unlabeled, args.steps, model=args.model,
                                      batch_size=args.batch_size, mu=args.mu, allow_repeats=True)
        print(f"{algo:12s} {rows[algo]:.3f} s/step  (model {args.model}, 28×28×1, B {args.batch_size}, "
              f"μ {args.mu}, {torch.get_num_threads()} threads)", flush=True)
    print(json.dumps(rows))


def accuracy(args) -> None:
    labeled, unlabeled, test = data(args.pool)
    algo_config = json.loads(args.algo_config) if args.algo_config else None
    model_options = json.loads(args.model_options) if args.model_options else None
    common = dict(model=args.model, model_options=model_options, batch_size=args.batch_size, mu=args.mu, lr=args.lr, seed=args.seed,
                  flip=True, allow_repeats=True)
    steps = args.steps
    if steps is None:
        per_step = seconds_per_step(args.algo, labeled, unlabeled, 5, algo_config=algo_config, **common)
        evals = args.minutes * 60 / (args.eval_every * per_step) if args.eval_every else 0
        steps = int((args.minutes * 60 - evals * args.eval_seconds) / per_step)
        print(f"{per_step:.3f} s/step -> {steps} steps for {args.minutes} min", flush=True)
    config = TrainConfig(algo=args.algo, algo_config=algo_config, steps=steps, eval_every=args.eval_every,
                         checkpoint_every=args.eval_every, device="cpu", **common)
    t0 = time.perf_counter()

    def report(info) -> None:
        if info.step % 50 == 0 or info.step == info.steps:
            logs = " ".join(f"{k} {v:.3f}" for k, v in info.logs.items())
            acc = "" if info.test_acc is None else f" acc(EMA, last eval) {100 * info.test_acc:.2f}%"
            print(f"step {info.step}/{info.steps} {time.perf_counter() - t0:.0f}s loss {info.loss:.3f} {logs}{acc}",
                  flush=True)

    trainer = Trainer(config, labeled, unlabeled, test, out_dir=args.out, on_progress=report)
    result = trainer.fit(resume=args.resume)
    print(f"RESULT {args.algo}: {steps} steps in {result.wall_time_s / 60:.1f} min, test accuracy "
          f"{100 * result.test_acc_ema:.2f}% (EMA), {100 * result.test_acc_raw:.2f}% (raw); out {args.out}", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("timings")
    t.add_argument("--steps", type=int, default=5)
    a = sub.add_parser("accuracy")
    a.add_argument("--algo", default="fixmatch")
    a.add_argument("--algo-config", default=None, help='JSON overrides, e.g. \'{"threshold": 0.9}\'')
    a.add_argument("--model-options", default=None, help='JSON build_model options, e.g. \'{"widths": [16, 32, 64]}\'')
    a.add_argument("--minutes", type=float, default=28.0)
    a.add_argument("--steps", type=int, default=None, help="overrides --minutes")
    a.add_argument("--pool", type=int, default=10_000)
    a.add_argument("--lr", type=float, default=0.03)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--eval-every", type=int, default=250)
    a.add_argument("--eval-seconds", type=float, default=12.0, help="cost of one evaluation, for sizing")
    a.add_argument("--out", type=Path, default=Path("/tmp/bench_ssl_run"))
    a.add_argument("--resume", action="store_true")
    for q in (t, a):
        q.add_argument("--model", default="cnn")
        q.add_argument("--batch-size", type=int, default=64)
        q.add_argument("--mu", type=int, default=7)
        q.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if "supervised" not in ALGORITHMS:
        ALGORITHMS.register("supervised", Supervised)  # benchmark-only baseline
    {"timings": timings, "accuracy": accuracy}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
