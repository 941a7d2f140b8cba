"""Issue #18: which lever, if any, makes the linear poisoning attack succeed on these CPUs.

Every *arm* is one ``redteam bench`` (its own clean control per trial, the propagation record of
every trial, recordings kept) that changes one thing against a base setting and states the
hypothesis it tests. Arms of one *lever* share the base and the trials' pairs (same seeds), so
their fronts compare row by row.

    nice -n 19 python benchmarks/bench_attack_levers.py list
    nice -n 19 python benchmarks/bench_attack_levers.py run d-tau95 d-tau60 ... [--out /work/data/bench18]
    python benchmarks/bench_attack_levers.py table [ARM ...]     # markdown: one row per arm
    python benchmarks/bench_attack_levers.py fronts ARM          # front vs steps of every trial
    python benchmarks/bench_attack_levers.py strips [ARM ...] --png F   # one panel of fronts per arm

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
    pair_rule: str | None = None  # redteam.bench.pairs rule: pairs chosen from a surrogate before the run
    base: str = ""  # "d" or "f": the surrogates' cache key
    band: tuple[float, float] = (0.7, 0.9)  # the near-boundary rule's band of surrogate clean boundaries


def _bases():
    from audit.ssl.config import TrainConfig
    from redteam.bench import BenchConfig

    digits = BenchConfig(dataset="digits", labels_per_class=4, ratios=(0.05,), trials=3, dynamics_scores=("chain+pixels",),
                         train=TrainConfig(model="cnn", model_options=NARROW, steps=2000, batch_size=32, mu=4,
                                           flip=False, observe_every=40), preset="levers-digits")
    fmnist = BenchConfig(dataset="fashion-mnist", labels_per_class=25, pool=5000, ratios=(0.02,), trials=3,
                         dynamics_scores=("chain+pixels",),
                         train=TrainConfig(model="cnn", model_options=NARROW, steps=3000, batch_size=32, mu=7,
                                           observe_every=50, augment_options={"fill": 0.0}), preset="levers-fmnist")
    return digits, fmnist


def arms() -> dict[str, Arm]:
    d, f = _bases()

    def algo(cfg, **options):
        return replace(cfg, train=replace(cfg.train, algo_config=options or None))

    out: list[Arm] = []

    def add(name, lever, hypothesis, config, pair_rule=None, band=(0.7, 0.9)):
        out.append(Arm(name, lever, hypothesis, replace(config, preset=name), pair_rule, name[0], band))

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
    # --- pair: the attacker picks y* and x' (redteam.bench.pairs) ------------------------------
    h_runner = ("y* = the surrogate's runner-up class for x* and x' = the nearest labeled y* image put x* "
                "close to the boundary the attack must move, so the front has less far to go than from a "
                "random pair.")
    h_near = ("Where the clean boundary on x'→x* already lies at α 0.7-0.9 (surrogate), a front that "
              "stops ~0.05 past it still falls short; the attack succeeds only if it can push the last "
              "0.1-0.3 of the line, so success here tells whether any push past the boundary exists.")
    add("d-nearest", "pair", "x' = the labeled y* image nearest x* (random x*, y*): a shorter, more direct "
        "bridge moves the clean boundary towards x*.", replace(d, source_choice="nearest"))
    add("d-runnerup", "pair", h_runner, d, "runner-up")
    add("d-nearbound", "pair", h_near, d, "near-boundary")
    # chosen after d-nearbound (seeds 0-2) measured a push of about +0.07 past the clean boundary:
    # held-out seeds 100-107, pairs whose surrogate boundary is within reach of such a push
    h_edge = ("The front ends near the clean boundary plus ~0.07 (d-nearbound, d-tau*): targets whose "
              "surrogate clean boundary lies at α 0.85-0.95 are within that reach, so the attack succeeds on "
              "most of them while their clean controls keep x* in its class. Held-out seeds 100-107.")
    add("d-edge", "pair", h_edge, replace(d, seed=100, trials=8), "near-boundary", (0.85, 0.95))
    # --- soft labels and other threshold schemes ----------------------------------------------
    add("d-soft", "soft pseudo-labels",
        "Hard labels snap each contested image past the front to its argmax, x*'s class; soft, "
        "sharpened (T 0.5), unthresholded targets keep the y* mass it has, so y* can creep along the "
        "bridge instead of stopping where the argmax flips.",
        algo(d, pseudo_label="soft", soft_temperature=0.5, threshold=0.0))
    add("d-flexmatch", "threshold scheme",
        "FlexMatch's class-wise thresholds start near 0 (warm-up) and stay low for classes with few "
        "confident predictions, so contested bridge images are trained early, before the x* end hardens.",
        algo(d, threshold_mode="flexmatch"))
    # --- the algorithm: sharpening instead of a threshold -------------------------------------
    add("d-uda", "algorithm", "UDA's soft sharpened targets (T 0.4, mask 0.8) move contested images "
        "gradually rather than by argmax, as soft labels should.", replace(d, algos=("uda",)))
    add("d-mixmatch", "algorithm", "MixMatch has no threshold: every bridge image trains towards its "
        "sharpened guess, and MixUp itself blends images, so the bridge is not the only interpolation "
        "the model sees (λu ramped over 1 000 steps: a 1/16 ramp collapses a short run).",
        algo(replace(d, algos=("mixmatch",)), rampup_steps=1000))
    # chosen after d-mixmatch (MixMatch was the only algorithm whose front rose through the run)
    mix = algo(replace(d, algos=("mixmatch",)), rampup_steps=1000)
    add("d-mixmatch-long", "algorithm × length",
        "MixMatch's front was still rising at step 2 000 (+0.19 past the clean boundary and climbing): "
        "three times as long (6 000 steps) it reaches x*.", replace(mix, train=replace(mix.train, steps=6000)))
    add("d-edge-mixmatch", "algorithm × pair",
        "On d-edge's pairs (same seeds, same surrogate choice), MixMatch's extra push past the boundary "
        "turns more of them into successes than FixMatch's 5/8.", replace(mix, seed=100, trials=8),
        "near-boundary", (0.85, 0.95))
    # --- density and number of bridge images near the front ------------------------------------
    add("d-density", "density/number",
        "More bridge images where the front stalls (the uniform and x densities put 1.3x and 2x as many "
        "images past α 0.5 as 1.5-x, at the same 5%) would move the front if it were short of images "
        "there (the number at 5/10/30%: issue #18, no effect).", replace(d, densities=("1", "x"), ratios=(0.05,)))
    # --- Fashion-MNIST: training length and the pair lever there ------------------------------
    add("f-base", "training length", "Baseline on Fashion-MNIST (3 000 steps) for the f- arms.", f)
    add("f-long", "training length", "On Fashion-MNIST the front was still moving at 3 000 steps: twice "
        "as long (6 000 steps, ~270 passes) lets it go on past the clean boundary.",
        replace(f, train=replace(f.train, steps=6000)))
    add("f-runnerup", "pair", h_runner, f, "runner-up")
    add("f-nearbound", "pair", h_near, f, "near-boundary")
    add("f-edge", "pair", h_edge.replace("(d-nearbound, d-tau*)", "(digits)"),
        replace(f, seed=100, trials=8), "near-boundary", (0.85, 0.95))
    return {a.name: a for a in out}


def with_pairs(arm: Arm, out: Path) -> Arm:
    """The arm with its pairs chosen (module redteam.bench.pairs), computing and caching the
    surrogates' candidates per base and trial under OUT/pairs/ on first use."""
    if arm.pair_rule is None:
        return arm
    from audit.data.load import load_dataset
    from redteam.bench.pairs import Candidate, choose, surrogate_candidates, to_pair

    folder = out / "pairs"
    folder.mkdir(parents=True, exist_ok=True)
    cfg = arm.config
    splits = None
    chosen = []
    for t in range(cfg.trials):
        path = folder / f"{arm.base}-{cfg.seed + t}.json"
        if not path.exists():
            splits = splits or load_dataset(cfg.dataset, cfg.root)
            t0 = time.perf_counter()
            cands = surrogate_candidates(cfg, t, splits)
            path.write_text(json.dumps([c.to_json() for c in cands]))
            print(f"[{time.strftime('%H:%M:%S')}] surrogate {path.name}: {len(cands)} candidates in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        cands = [Candidate(**c) for c in json.loads(path.read_text())]
        chosen.append(choose(cands, arm.pair_rule, cfg.seed + t, band=arm.band))
    (folder / f"{arm.name}.chosen.json").write_text(json.dumps([c.to_json() for c in chosen], indent=1))
    return replace(arm, config=replace(cfg, pairs=tuple(to_pair(c) for c in chosen)))


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
        if args.trials:  # the first N trials of the arm (more later: finished trials are reused)
            arm = replace(arm, config=replace(arm.config, trials=min(args.trials, arm.config.trials)))
        arm = with_pairs(arm, args.out)
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


def _mean(values, fmt: str = ".2f") -> str:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "n/a"
    return f"{statistics.fmean(vals):{fmt}}" + (f" [{min(vals):{fmt}}–{max(vals):{fmt}}]" if len(vals) > 1 else "")


def summary_rows(arm: Arm, results) -> list[list[str]]:
    """One row per poisoned cell (algorithm × ratio × density) of the arm, beside its controls."""
    ok = [r for r in results if r.ok]
    cells: dict[tuple, list] = {}
    for r in ok:
        if r.n_poison:
            cells.setdefault((r.spec["algo"], r.spec["ratio"], r.spec["density"]), []).append(r)
    rows = []
    for (algo, ratio, density), pois in cells.items():
        ctrl = [r for r in ok if not r.n_poison and r.spec["algo"] == algo]
        name = arm.name if len(cells) == 1 else f"{arm.name} ({100 * ratio:g}% {density})"
        rows.append(summary_row(name, pois, ctrl))
    return rows


def summary_row(name: str, pois, ctrl) -> list[str]:
    from redteam.bench.metrics import wilson

    def rate(rs):
        k, n = sum(bool(r.success) for r in rs), len(rs)
        ci = wilson(k, n)
        return f"{k}/{n}" + (f" ({100 * ci[0]:.0f}–{100 * ci[1]:.0f}%)" if ci else "")

    props = [r.propagation for r in pois if r.propagation is not None]
    final = [p.final_front for p in props]
    boundary = [None if not p.clean_boundary else p.clean_boundary[-1] for p in props]
    past = [None if f is None or b is None else f - b for f, b in zip(final, boundary)]
    return [name, rate(pois), rate(ctrl), _mean(final), _mean([p.max_front for p in props]), _mean(boundary),
            _mean(past, "+.2f"), _mean([p.settled_at() for p in props], ".0f"),
            _mean([p.target_prob[-1] for p in props], ".2g"),
            _mean([100 * r.test_acc for r in pois if r.test_acc is not None], ".1f")]


HEADER = ["arm", "attack success", "clean control", "final front", "max front", "clean boundary",
          "front − boundary", "settled at step", "P(y*\\|x*) end", "test acc %"]


def table(args: argparse.Namespace) -> None:
    known = arms()
    names = args.arms or list(known)
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for name in names:
        results = _load(args.out, name)
        for row in summary_rows(known[name], results or []):
            print("| " + " | ".join(row) + " |")


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


def trials_cmd(args: argparse.Namespace) -> None:
    """Every poisoned trial of the arms, sorted by its clean boundary: does success follow it?"""
    rows = []
    for name in args.arms or list(arms()):
        for r in _load(args.out, name) or []:
            p = r.propagation
            if r.ok and r.n_poison and p is not None:
                b = p.clean_boundary[-1] if p.clean_boundary else None
                rows.append((-1.0 if b is None else b, name, r, p))
    print("| clean boundary | final front | max front | success | P(y*\\|x*) | arm | trial | x* → y* |")
    print("|---|---|---|---|---|---|---|---|")
    for b, name, r, p in sorted(rows, key=lambda t: t[0]):
        f = lambda v: "–" if v is None or v < 0 else f"{v:.2f}"  # noqa: E731
        t = r.target
        print(f"| {f(b)} | {f(p.final_front)} | {f(p.max_front)} | {'yes' if r.success else 'no'} | "
              f"{r.target_prob:.2g} | {name} | {r.spec['trial']} | {t['true_label']} → {t['target_label']} |")


def dynamics_cmd(args: argparse.Namespace) -> None:
    """``audit dynamics`` re-measured on the kept recordings of every poisoned trial (and its
    control's false alarms): the chain score with pixel links (``--pixel-links``), dynamics alone,
    and the paper's influence; AUROC, TPR at FPR 1%, flagged bridge / clean images."""
    import numpy as np

    from audit.data.load import load_dataset
    from audit.dynamics import DynamicsConfig, load_predictions, score_predictions
    from redteam.bench.matrix import TrialSpec
    from redteam.bench.metrics import detection_metrics
    from redteam.bench.trial import poisoned_pool

    known = arms()
    print("| arm | trial | attack | score | AUROC | TPR@FPR1% | flagged bridge | flagged clean |")
    print("|---|---|---|---|---|---|---|---|")
    splits = {}
    for name in args.arms:
        cfg = known[name].config
        splits.setdefault(cfg.dataset, load_dataset(cfg.dataset, cfg.root))
        for r in _load(args.out, name) or []:
            kept = args.out / name / "predictions" / r.key / "predictions"
            if not r.ok or not kept.exists():
                continue
            ds = poisoned_pool(splits[cfg.dataset], TrialSpec.from_json(r.spec))
            pred = load_predictions(kept)
            assert pred.ids == ds.unlabeled.ids
            pixels = ds.unlabeled.pixels()
            attack = "control" if not r.n_poison else ("succeeded" if r.success else "failed")
            for score, feats in (("chain+pixels", pixels), ("chain", None), ("influence", None)):
                res = score_predictions(pred, DynamicsConfig(score=score.split("+")[0]), features=feats)
                flagged = np.zeros(len(ds.is_poison), bool)
                for f in res.findings:
                    flagged[[m.index for m in f.members]] = True
                m = detection_metrics(res.scores["dynamics"], ds.is_poison, flagged)
                auroc = "n/a" if m.auroc is None else f"{m.auroc:.3f}"
                tpr = m.tpr_at_fpr.get("0.01")
                print(f"| {name} | {r.spec['trial']} | {attack} | {score} | {auroc} | "
                      f"{'n/a' if tpr is None else f'{100 * tpr:.0f}%'} | {m.flagged_poison}/{int(ds.is_poison.sum())} | "
                      f"{m.flagged_clean} |", flush=True)


def strips(args: argparse.Namespace) -> None:
    """One panel per arm: every poisoned trial's front over the steps (solid) and its control's
    clean boundary (dashed, same colour): the paper's Figure 5 as strips, lever by lever."""
    import numpy as np
    from matplotlib.figure import Figure

    names = [n for n in (args.arms or list(arms())) if _load(args.out, n)]
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.3 * cols, 2.3 * rows), dpi=100, layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        results = [r for r in _load(args.out, name) if r.ok and r.n_poison and r.propagation is not None]
        for j, r in enumerate(results):
            p = r.propagation
            colour = f"C{j % 10}"
            nan = lambda vs: np.array([np.nan if v is None else v for v in vs or ()], dtype=float)  # noqa: E731
            ax.plot(p.steps, nan(p.front), color=colour, lw=1.2 if not r.success else 2.5)
            if p.clean_boundary:
                ax.plot(p.steps, nan(p.clean_boundary), "--", color=colour, lw=0.8)
        k = sum(bool(r.success) for r in results)
        ax.set_title(f"{name}: {k}/{len(results)} succeeded", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=6)
        if i % cols == 0:
            ax.set_ylabel("α of the front (from x')", fontsize=7)
        if i >= (rows - 1) * cols:
            ax.set_xlabel("step", fontsize=7)
    fig.suptitle("y*'s front along x'→x* (solid; thick = succeeded) and the clean control's boundary (dashed)",
                 fontsize=8)
    fig.savefig(args.png)
    print(f"wrote {args.png}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    r = sub.add_parser("run")
    r.add_argument("arms", nargs="+")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--trials", type=int, default=0, help="run only the first N trials of each arm")
    r.add_argument("--no-keep", action="store_true", help="delete the recordings (default: keep them)")
    st = sub.add_parser("strips")
    st.add_argument("--png", type=Path, default=OUT / "levers.png")
    for p in (r, sub.add_parser("table"), sub.add_parser("fronts"), sub.add_parser("trials"), st,
              sub.add_parser("dynamics")):
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
    elif args.cmd == "strips":
        strips(args)
    elif args.cmd == "trials":
        trials_cmd(args)
    elif args.cmd == "dynamics":
        dynamics_cmd(args)
    else:
        fronts_cmd(args)


if __name__ == "__main__":
    main()
