"""SSL engine benchmarks on CPU (docs/benchmarks.md, "SSL engine", quotes their output).

    python benchmarks/bench_ssl.py timings --batch-size 32 --model-options '{"widths": [16, 32, 64]}'
    python benchmarks/bench_ssl.py accuracy --cpu-minutes 30 --batch-size 32 \
        --model-options '{"widths": [16, 32, 64]}' --augment-options '{"fill": 0.0}' \
        --algo-config '{"weak_no_grad": true, "dist_align": true}' --eval-every 1000
    python benchmarks/bench_ssl.py accuracy --algo supervised --cpu-minutes 2 ...  # same 40 labels only
    python benchmarks/bench_ssl.py table RUN_DIR [RUN_DIR ...]  # one markdown row per finished run

Setting (paper 3.2.1, scaled to a 2-core CPU): Fashion-MNIST, 40 labels (4 per class, seed 0),
a 10k-image unlabeled pool drawn from the rest of the training split, the ``cnn`` model, SGD
lr 0.03 with FixMatch's cosine decay, EMA 0.999 evaluated on the 10k test images, 1 torch thread.

Budgets are in process CPU time (``--cpu-minutes``): on a shared machine wall time measures the
other users' load, CPU time measures the work. The cosine schedule needs the number of steps up
front, so ``accuracy`` first times a few steps and one evaluation of the same setting and sizes
the run to the budget; training then stops when the process CPU time since its start reaches the
budget (intermediate evaluations included) and the final evaluation follows. ``--minutes`` sizes
by wall time instead (no stop). ``timings`` reports the median CPU and wall seconds of a few steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from audit.data.builtin import fashion_mnist
from audit.ssl.augment import to_float
from audit.ssl.algorithms import ALGORITHMS, Algorithm, Batch, StepOutput
from audit.data.split import balanced_split
from audit.ssl.trainer import TrainConfig, Trainer


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


def step_times(algo: str, labeled, unlabeled, steps: int, test=None, warmup: int = 2, **cfg) -> dict:
    """CPU and wall seconds of each of ``steps`` steps after ``warmup`` (the first steps allocate),
    and, with ``test``, the CPU seconds of one evaluation (EMA and raw model on the test set)."""
    cpu: list[float] = []
    wall: list[float] = []
    config = TrainConfig(algo=algo, steps=warmup + steps, eval_every=0, checkpoint_every=0, device="cpu",
                         observe_every=10**6, **cfg)

    def stamp(info) -> None:
        cpu.append(time.process_time())
        wall.append(time.perf_counter())

    Trainer(config, labeled, unlabeled, test, on_progress=stamp).fit()
    # with a test set the last stamp also holds the final evaluation: time it apart
    n = len(cpu) - (1 if test is not None else 0)
    cpu_steps = np.diff(cpu[warmup - 1:n])
    out = {"cpu_s": float(np.median(cpu_steps)), "wall_s": float(np.median(np.diff(wall[warmup - 1:n])))}
    if test is not None:
        out["eval_cpu_s"] = max(0.0, cpu[-1] - cpu[-2] - out["cpu_s"])
    return out


def timings(args) -> None:
    labeled, unlabeled, _ = data(2000)
    model_options = json.loads(args.model_options) if args.model_options else None
    algo_config = json.loads(args.algo_config) if args.algo_config else None
    rows = {}
    load = os.getloadavg()[0]
    for algo in ALGORITHMS.names() if args.algos == "all" else args.algos.split(","):
        t = step_times(algo, labeled, unlabeled, args.steps, model=args.model, model_options=model_options,
                       batch_size=args.batch_size, mu=args.mu, allow_repeats=True, algo_config=algo_config)
        rows[algo] = t
        print(f"{algo:12s} {t['cpu_s']:.3f} CPU-s/step, {t['wall_s']:.3f} wall-s/step (median of {args.steps}; model "
              f"{args.model} {model_options or ''} {algo_config or ''}, 28×28×1, B {args.batch_size}, μ {args.mu}, "
              f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f})", flush=True)
    print(json.dumps({"load_start": load, "load_end": os.getloadavg()[0], "rows": rows}))


def accuracy(args) -> None:
    labeled, unlabeled, test = data(args.pool, seed=args.label_seed)
    algo_config = json.loads(args.algo_config) if args.algo_config else None
    model_options = json.loads(args.model_options) if args.model_options else None
    augment_options = json.loads(args.augment_options) if args.augment_options else None
    common = dict(model=args.model, model_options=model_options, batch_size=args.batch_size, mu=args.mu, lr=args.lr,
                  seed=args.seed, flip=True, allow_repeats=True, augment_options=augment_options,
                  algo_config=algo_config)
    steps = args.steps
    budget_cpu = None if args.cpu_minutes is None else args.cpu_minutes * 60
    if steps is None:
        # the cosine schedule needs the number of steps up front: size it from a short timing
        t = step_times(args.algo, labeled, unlabeled, 8, test=test, **common)
        if budget_cpu is not None:  # process CPU time: what other agents' load cannot distort
            per_step, evals_cost = t["cpu_s"], t["eval_cpu_s"]
            budget = budget_cpu
        else:
            per_step, evals_cost = t["wall_s"], args.eval_seconds
            budget = args.minutes * 60
        n_evals = budget / (args.eval_every * per_step) + 1 if args.eval_every else 1
        # 2% margin: a run that overshoots its estimate is cut by --cpu-minutes before the decay ends
        steps = max(1, int(0.98 * (budget - n_evals * evals_cost) / per_step))
        print(f"{per_step:.3f} s/step ({'CPU' if budget_cpu else 'wall'}), eval {evals_cost:.1f} s -> {steps} steps "
              f"for {budget / 60:.1f} min", flush=True)
    config = TrainConfig(algo=args.algo, steps=steps, eval_every=args.eval_every, checkpoint_every=args.eval_every,
                         device="cpu", **common)
    loads: list[float] = []
    cpu0, t0 = time.process_time(), time.perf_counter()

    def report(info) -> None:
        if info.step % 50 == 0 or info.step == info.steps:
            loads.append(os.getloadavg()[0])
            logs = " ".join(f"{k} {v:.3f}" for k, v in info.logs.items())
            acc = "" if info.test_acc is None else f" acc(EMA, last eval) {100 * info.test_acc:.2f}%"
            print(f"step {info.step}/{info.steps} cpu {(time.process_time() - cpu0) / 60:.2f}m wall "
                  f"{(time.perf_counter() - t0) / 60:.2f}m load {loads[-1]:.2f} loss {info.loss:.3f} {logs}{acc}",
                  flush=True)

    def out_of_budget(info) -> bool:  # the final evaluation runs after this, outside the budget
        return budget_cpu is not None and time.process_time() - cpu0 >= budget_cpu

    trainer = Trainer(config, labeled, unlabeled, test, out_dir=args.out, on_progress=report,
                      should_stop=out_of_budget)
    result = trainer.fit(resume=args.resume)
    cpu_min, wall_min = (time.process_time() - cpu0) / 60, (time.perf_counter() - t0) / 60
    summary = {"algo": args.algo, "steps_done": result.steps, "steps_planned": steps, "cpu_minutes": round(cpu_min, 2),
               "wall_minutes": round(wall_min, 2), "load_mean": round(float(np.mean(loads)), 2) if loads else None,
               "test_acc_ema": result.test_acc_ema, "test_acc_raw": result.test_acc_raw,
               "threads": torch.get_num_threads(), "label_seed": args.label_seed,
               "config": {k: v for k, v in common.items()}, "out": str(args.out)}
    print(f"RESULT {args.algo}: {result.steps}/{steps} steps, {cpu_min:.1f} CPU-min, {wall_min:.1f} wall-min "
          f"(load {summary['load_mean']}), test accuracy {100 * result.test_acc_ema:.2f}% (EMA), "
          f"{100 * result.test_acc_raw:.2f}% (raw); out {args.out}", flush=True)
    print("JSON " + json.dumps(summary), flush=True)


def table(args) -> None:
    """One markdown row per finished ``accuracy`` run: steps, EMA and raw test accuracy, and the
    EMA model's accuracy on each test class (re-evaluated from ``model.pt``)."""
    from audit.ssl.models import build_model

    test = fashion_mnist().test
    names = list(test.class_names or range(10))
    print("| run | algo | steps | test acc. EMA | raw | " + " | ".join(str(n) for n in names) + " |")
    print("|---|---|---|---|---|" + "---|" * len(names))
    for run in args.runs:
        summary_path, model_path = run / "summary.json", run / "model.pt"
        if not (summary_path.is_file() and model_path.is_file()):
            print(f"error: {run} is not a finished run (no summary.json and model.pt)", file=sys.stderr)
            raise SystemExit(2)
        summary = json.loads(summary_path.read_text())
        saved = torch.load(model_path, map_location="cpu", weights_only=True)
        model = build_model(saved["model"], saved["num_classes"], saved["in_channels"], tuple(saved["image_size"]),
                            **(saved["model_options"] or {}))
        model.load_state_dict(saved["state_dict"])
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(to_float(test.images[i:i + 1000])).argmax(1)
                              for i in range(0, len(test), 1000)]).numpy()
        per_class = [float(np.mean(pred[test.labels == k] == k)) for k in range(len(names))]
        print(f"| {run.name} | {summary['algo']} | {summary['steps']:,} | {100 * summary['test_acc_ema']:.2f}% | "
              f"{100 * summary['test_acc_raw']:.2f}% | " + " | ".join(f"{100 * a:.0f}" for a in per_class) + " |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("timings")
    t.add_argument("--steps", type=int, default=5, help="timed steps per algorithm (median reported)")
    t.add_argument("--algos", default="all", help="comma-separated names (supervised included), or all")
    r = sub.add_parser("table")
    r.add_argument("runs", type=Path, nargs="+", help="--out folders of finished accuracy runs")
    r.add_argument("--threads", type=int, default=1, help="torch threads for the re-evaluation")
    a = sub.add_parser("accuracy")
    a.add_argument("--algo", default="fixmatch")
    a.add_argument("--minutes", type=float, default=28.0, help="wall-clock budget (sizing only)")
    a.add_argument("--cpu-minutes", type=float, default=None,
                   help="process CPU-time budget: sizes the run and stops training when exceeded, then evaluates")
    a.add_argument("--steps", type=int, default=None, help="overrides the sizing by --minutes / --cpu-minutes")
    a.add_argument("--augment-options", default=None, help='JSON Strong overrides, e.g. \'{"fill": 0.0}\'')
    a.add_argument("--pool", type=int, default=10_000)
    a.add_argument("--lr", type=float, default=0.03)
    a.add_argument("--seed", type=int, default=0, help="training seed (init, sampling, augmentation)")
    a.add_argument("--label-seed", type=int, default=0, help="which 4 labels per class and which 10k pool")
    a.add_argument("--eval-every", type=int, default=250)
    a.add_argument("--eval-seconds", type=float, default=12.0, help="cost of one evaluation, for sizing")
    a.add_argument("--out", type=Path, default=Path("/tmp/bench_ssl_run"))
    a.add_argument("--resume", action="store_true")
    for q in (t, a):
        q.add_argument("--model", default="cnn")
        q.add_argument("--algo-config", default=None,
                       help='JSON overrides of the algorithm config (timings: of every --algos entry), e.g. \'{"threshold": 0.9}\'')
        q.add_argument("--model-options", default=None, help='JSON build_model options, e.g. \'{"widths": [16, 32, 64]}\'')
        q.add_argument("--batch-size", type=int, default=64)
        q.add_argument("--mu", type=int, default=7)
        q.add_argument("--threads", type=int, default=1, help="torch threads (1: budgets in CPU time stay honest)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if "supervised" not in ALGORITHMS:
        ALGORITHMS.register("supervised", Supervised)  # benchmark-only baseline
    {"timings": timings, "accuracy": accuracy, "table": table}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
