"""Issue #18: which lever, if any, makes the linear poisoning attack succeed on these CPUs.

Every *arm* is one ``redteam bench`` (its own clean control per trial, the propagation record of
every trial, recordings kept) that changes one thing against a base setting and states the
hypothesis it tests. Arms of one *lever* share the base and the trials' pairs (same seeds), so
their fronts compare row by row.

    nice -n 19 python benchmarks/bench_attack_levers.py list
    nice -n 19 python benchmarks/bench_attack_levers.py run d-tau95 d-tau60 ... [--out /work/data/bench18]
    python benchmarks/bench_attack_levers.py table [ARM ...]     # markdown: one row per arm
    python benchmarks/bench_attack_levers.py fronts ARM          # front vs steps of every trial

Bases (sized for the shared 2-core machine, 1 thread):

* ``d-``: digits 8×8, 4 labels per class, the 1 397-image pool, FixMatch on the narrow CNN
  (16-32-64), B 32, μ 4, no flips, 2 000 steps (~180 passes over the pool), a record every 40
  steps, linear bridge at 5% (70 images), density 1.5-x, 3 trials.
* ``f-``: Fashion-MNIST, 25 labels per class (250, the paper's Table 2 setting; ~78% here), a
  5 000-image pool, the narrow CNN, B 32, μ 7, black fill, 3 000 steps, a record every 50 steps,
  linear bridge at 2% (100 images), 3 trials.

Results and commands: docs/benchmarks.md, "Attack levers (#18)".
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

OUT = Path("/work/data/bench18")
NARROW = {"widths": [16, 32, 64]}


@dataclass(frozen=True)
class Arm:
    name: str
    lever: str
    hypothesis: str
    config: object  # redteam.bench.BenchConfig


def _bases():
    from redteam.bench import BenchConfig, TrainSetup

    digits = BenchConfig(dataset="digits", labels_per_class=4, ratios=(0.05,), trials=3, dynamics_scores=("chain+pixels",),
                         train=TrainSetup(model="cnn", model_options=NARROW, steps=2000, batch_size=32, mu=4,
                                          flip=False, observe_every=40), preset="levers-digits")
    fmnist = BenchConfig(dataset="fashion-mnist", labels_per_class=25, pool=5000, ratios=(0.02,), trials=3,
                         dynamics_scores=("chain+pixels",),
                         train=TrainSetup(model="cnn", model_options=NARROW, steps=3000, batch_size=32, mu=7,
                                          observe_every=50, augment_options={"fill": 0.0}), preset="levers-fmnist")
    return digits, fmnist


def arms() -> dict[str, Arm]:
    d, f = _bases()

    def algo(cfg, **options):
        return replace(cfg, train=replace(cfg.train, algo_config=options or None))

    out: list[Arm] = []

    def add(name, lever, hypothesis, config):
        out.append(Arm(name, lever, hypothesis, replace(config, preset=name)))

    # --- threshold: the stall is the confidence threshold ------------------------------------
    h_tau = ("Past the front, bridge images have top probability 0.45-0.72, under τ 0.95, so they add no "
             "pseudo-label loss and the front cannot advance; a lower τ lets them train and the front "
             "moves past the clean boundary.")
    add("d-tau95", "threshold", "Baseline (FixMatch's τ 0.95) for the threshold arms.", d)
    add("d-tau60", "threshold", h_tau, algo(d, threshold=0.6))
    add("d-tau30", "threshold", h_tau, algo(d, threshold=0.3))
    add("d-freematch", "threshold scheme",
        "FreeMatch's self-adaptive τ_t(c) starts at 1/C and lowers the bar for classes the model is unsure "
        "of, so the contested bridge images past the front get pseudo-labels early, while the front is "
        "still moving.", algo(d, threshold_mode="self_adaptive"))
    add("d-distalign", "distribution alignment",
        "Alignment rescales every guess by p_labeled/p_model; on a bridge whose far end is confidently "
        "x*'s class it lowers that class where the model over-predicts it, tipping contested images to y*.",
        algo(d, dist_align=True))
    return {a.name: a for a in out}


# --- running -----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> None:
    import faiss
    import torch

    from redteam.bench import run_bench

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    table = arms()
    unknown = [a for a in args.arms if a not in table]
    if unknown:
        sys.exit(f"unknown arm(s) {', '.join(unknown)}; see `list`")
    for name in args.arms:
        arm = table[name]
        t0 = time.perf_counter()
        print(f"[{time.strftime('%H:%M:%S')}] {name}: start", flush=True)

        def on_event(e, name=name):
            if e.kind == "done":
                r = e.result
                p = r.propagation
                front = None if p is None else p.final_front
                print(f"[{time.strftime('%H:%M:%S')}] {name} {e.done}/{e.total} {e.spec.label()}: "
                      f"{r.status} success={r.success} P(y*|x*)={r.target_prob} front={front} "
                      f"acc={r.test_acc} train={r.timings.get('train', 0):.0f}s", flush=True)

        run_bench(arm.config, args.out / name, keep_predictions=not args.no_keep, on_event=on_event)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: done in {time.perf_counter() - t0:.0f} s", flush=True)


# --- reading back ------------------------------------------------------------------------------
def _load(out: Path, name: str):
    from redteam.bench import read_results

    path = out / name / "results.json"
    return read_results(path)[1] if path.exists() else None


def _mean(values) -> str:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "n/a"
    return f"{statistics.fmean(vals):.2f}" + (f" [{min(vals):.2f}–{max(vals):.2f}]" if len(vals) > 1 else "")


def summary_row(arm: Arm, results) -> list[str]:
    from redteam.bench.metrics import wilson

    ok = [r for r in results if r.ok]
    pois = [r for r in ok if r.n_poison]
    ctrl = [r for r in ok if not r.n_poison]

    def rate(rs):
        k, n = sum(bool(r.success) for r in rs), len(rs)
        ci = wilson(k, n)
        return f"{k}/{n}" + (f" ({100 * ci[0]:.0f}–{100 * ci[1]:.0f}%)" if ci else "")

    props = [r.propagation for r in pois if r.propagation is not None]
    final = [p.final_front for p in props]
    boundary = [None if not p.clean_boundary else p.clean_boundary[-1] for p in props]
    past = [None if f is None or b is None else f - b for f, b in zip(final, boundary)]
    return [arm.name, rate(pois), rate(ctrl), _mean(final), _mean([p.max_front for p in props]), _mean(boundary),
            _mean(past), _mean([p.settled_at() for p in props]), _mean([p.target_prob[-1] for p in props]),
            _mean([100 * r.test_acc for r in pois if r.test_acc is not None])]


HEADER = ["arm", "attack success", "clean control", "final front", "max front", "clean boundary",
          "front − boundary", "settled at step", "P(y*\\|x*) end", "test acc %"]


def table(args: argparse.Namespace) -> None:
    known = arms()
    names = args.arms or list(known)
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for name in names:
        results = _load(args.out, name)
        if results is not None:
            print("| " + " | ".join(summary_row(known[name], results)) + " |")


def fronts_cmd(args: argparse.Namespace) -> None:
    for name in args.arms:
        results = _load(args.out, name) or []
        for r in results:
            p = r.propagation
            if p is None or not r.n_poison:
                continue
            every = max(1, len(p.steps) // 12)
            cells = [f"{s}:{'–' if v is None else f'{v:.2f}'}" for s, v in list(zip(p.steps, p.front))[::every]]
            print(f"{name} trial {r.spec['trial']} (success={r.success}, boundary "
                  f"{p.clean_boundary[-1] if p.clean_boundary else None}): " + " ".join(cells))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    r = sub.add_parser("run")
    r.add_argument("arms", nargs="+")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--no-keep", action="store_true", help="delete the recordings (default: keep them)")
    for p in (r, sub.add_parser("table"), sub.add_parser("fronts")):
        p.add_argument("--out", type=Path, default=OUT)
        if p is not r:
            p.add_argument("arms", nargs="*")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for a in arms().values():
            print(f"{a.name:16s} [{a.lever}] {a.hypothesis}")
    elif args.cmd == "run":
        run(args)
    elif args.cmd == "table":
        table(args)
    else:
        fronts_cmd(args)


if __name__ == "__main__":
    main()
