"""The bench's figures, PNG files beside report.md (matplotlib's object API: no pyplot global
state, no display needed).

* ``success_vs_ratio.png``: attack success against the poison ratio per algorithm × attack, 95%
  Wilson intervals, the clean control at 0.
* ``scores_<detector>.png``: per attack, the histogram of the clean images' scores (rebuilt from the
  stored quantiles, each quantile standing for an equal share of the clean pool) and the poisoned
  images' scores on the same bins, log counts; pooled over the poisoned trials.
* ``propagation.png``: the paper's Figure 5 as a strip over training steps, one panel per trial
  (and algorithm): how far y* reached along the bridge (α from x', the front) in every poisoned
  cell, the clean control's boundary on the same line (dashed), P(y*|x*) (dotted) and the x*-end
  region confidently x*'s class (shaded, first poisoned cell). Success is written in the legend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from redteam.bench.matrix import CONTROL, BenchConfig
from redteam.bench.metrics import wilson
from redteam.bench.trial import TrialResult


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def success_plot(config: BenchConfig, results: list[TrialResult], path: Path) -> bool:
    fig = _figure(6.0, 3.8)
    ax = fig.add_subplot()
    xs = [0.0] + [float(r) for r in config.ratios]
    series = [(algo, attack) for algo in config.algos for attack in config.attacks]
    dodge = 0.012 * 100 * max(xs)  # overlapping series side by side, a little apart
    drew = False
    for i, (algo, attack) in enumerate(series):
        pts = []
        for x in xs:
            cell = [r for r in results if r.ok and r.spec["algo"] == algo and (
                r.spec["attack"] == CONTROL if x == 0 else (r.spec["attack"] == attack and r.spec["ratio"] == x
                                                            and r.spec["density"] == config.headline_density))]
            if cell:
                k = sum(bool(r.success) for r in cell)
                lo, hi = wilson(k, len(cell))
                pts.append((100 * x + dodge * (i - (len(series) - 1) / 2), k / len(cell), lo, hi, len(cell)))
        if not pts:
            continue
        drew = True
        px, p, lo, hi, _ = map(np.array, zip(*pts))
        ax.errorbar(px, p, yerr=[p - lo, hi - p], marker="o", capsize=3, label=f"{algo} · {attack}")
    if not drew:
        return False
    ax.set_xlabel("poisoned images (% of the clean unlabeled pool; 0 = clean control)")
    ax.set_ylabel("attack success (x* → y*)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"{config.preset}: success vs poison ratio (density {config.headline_density}, 95% Wilson)", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path)
    return True


def score_plot(config: BenchConfig, results: list[TrialResult], detector: str, path: Path) -> bool:
    attacks = [a for a in config.attacks
               if any(r.ok and r.spec["attack"] == a and detector in r.detectors for r in results)]
    if not attacks:
        return False
    fig = _figure(4.2 * len(attacks), 3.2)
    for i, attack in enumerate(attacks):
        ax = fig.add_subplot(1, len(attacks), i + 1)
        ms = [r.detectors[detector] for r in results
              if r.ok and r.spec["attack"] == attack and detector in r.detectors]
        poison = [v for m in ms for v in m.poison_scores if np.isfinite(v)]
        qs = [(np.asarray(m.clean_quantiles, dtype=float), m.n_clean) for m in ms if len(m.clean_quantiles)]
        qs = [(q, n) for q, n in qs if np.isfinite(q).all()]
        edges = np.concatenate([q for q, _ in qs] + [np.asarray(poison)]) if qs or poison else np.zeros(1)
        bins = np.histogram_bin_edges(edges, bins=40)
        if qs:  # the stored quantiles are a piecewise-linear CDF: each bin gets the clean mass it spans
            counts = sum(n * np.diff(np.interp(bins, q, np.linspace(0, 1, len(q)))) for q, n in qs)
            ax.stairs(counts, bins, fill=True, color="0.6", label="clean")
        if poison:
            ax.hist(poison, bins=bins, color="tab:red", alpha=0.8, label=f"poisoned (n={len(poison)})")
            ax.plot(poison, np.full(len(poison), 0.7), "|", color="tab:red", markersize=8)
        ax.set_yscale("log")
        ax.set_title(f"{attack} ({len(ms)} trials)", fontsize=9)
        ax.set_xlabel(_xlabel(detector), fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"{detector}: per-image scores", fontsize=9)
    fig.savefig(path)
    return True


def _xlabel(detector: str) -> str:
    if detector == "dynamics:influence":
        return "−log(avg influence)  (higher = more suspicious)"
    return "score (higher = more suspicious)"


def propagation_plot(config: BenchConfig, results: list[TrialResult], path: Path) -> bool:
    rows = sorted({(r.spec["algo"], r.spec["trial"]) for r in results if r.ok and r.propagation is not None})
    if not rows:
        return False
    cols = min(4, len(rows))
    nrows = -(-len(rows) // cols)
    fig = _figure(3.4 * cols, 2.6 * nrows)
    for i, (algo, trial) in enumerate(rows):
        ax = fig.add_subplot(nrows, cols, i + 1)
        mine = [r for r in results if r.ok and r.propagation is not None and r.spec["algo"] == algo
                and r.spec["trial"] == trial]
        shaded = False
        for r in mine:
            p = r.propagation
            steps = np.asarray(p.steps)
            if r.spec["attack"] == CONTROL:
                ax.plot(steps, _nan(p.line_front), "k--", lw=1, label="clean boundary (control)")
                continue
            cell = f"{r.spec['attack']} {100 * r.spec['ratio']:g}%" + (
                f" {r.spec['density']}" if len(config.densities) > 1 else "")
            line, = ax.plot(steps, _nan(p.front), lw=1.5, label=f"{cell}: {'success' if r.success else 'failed'}")
            ax.plot(steps, p.target_prob, ":", lw=1, color=line.get_color())
            if not shaded:
                ax.fill_between(steps, _nan(p.hard_from), 1.0, color="tab:gray", alpha=0.2, lw=0)
                shaded = True
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{algo} · trial {trial}", fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel("α from x' (front) · P(y*|x*)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{config.preset}: propagation of y* along x'→x* (solid: front; dashed: clean boundary; "
                 f"dotted: P(y*|x*); grey: ≥0.95 x*'s class)", fontsize=8)
    fig.savefig(path)
    return True


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values or ()], dtype=float)


def write_plots(config: BenchConfig, results: list[TrialResult], out: Path) -> list[str]:
    """Write every figure that has data; returns their file names (relative to ``out``)."""
    names = []
    if success_plot(config, results, out / "success_vs_ratio.png"):
        names.append("success_vs_ratio.png")
    if propagation_plot(config, results, out / "propagation.png"):
        names.append("propagation.png")
    dets: dict[str, None] = {}
    for r in results:
        dets.update(dict.fromkeys(r.detectors))
    for det in dets:
        name = f"scores_{det.replace(':', '_')}.png"
        if score_plot(config, results, det, out / name):
            names.append(name)
    return names
