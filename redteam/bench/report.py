"""The bench report: tables in the shape of the paper's Tables 1 and 3, detection quality per
detector, the clean control's false alarms, failures; plots beside it (plots.py).

The content is built once (:func:`build`: sections of prose and tables, cells as plain text with
names marked :class:`Code`) and rendered twice: ``report.md`` here (:func:`markdown`) and the
self-contained ``report.html`` (``redteam.bench.html``), so the two cannot say different things.

Rules: every cell states its n (trials that finished; failed ones are counted apart and listed),
a success rate comes with its 95% Wilson interval, a mean with its range; a metric that is
undefined (AUROC on a pool without poison) prints "n/a", never 0.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Union

from redteam.bench.matrix import CONTROL, BenchConfig
from redteam.bench.metrics import FPR_POINTS, wilson
from redteam.bench.trial import TrialResult


class Code(str):
    """A name shown as code (a detector, a density, a trial key): `x` in Markdown, <code> in HTML."""


Text = Union[str, tuple[str, ...]]  # one string, or parts of which the Code ones are shown as code


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Text]]


Block = Union[Text, Table]  # a paragraph or a table


@dataclass(frozen=True)
class Section:
    heading: Text
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    title: str
    intro: Text
    sections: tuple[Section, ...]


def parts(text: Text) -> tuple[str, ...]:
    return (text,) if isinstance(text, str) else text


def _cells(results: Iterable[TrialResult], **where) -> list[TrialResult]:
    return [r for r in results if all(r.spec[k] == v for k, v in where.items())]


def _pct(x: float | None, digits: int = 0) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def success_cell(rs: list[TrialResult]) -> str:
    """``k/n (lo–hi%)`` over the finished trials, ``+ f failed`` when some failed; ``–`` if none ran."""
    ok = [r for r in rs if r.ok]
    failed = len(rs) - len(ok)
    if not rs:
        return "–"
    k, n = sum(bool(r.success) for r in ok), len(ok)
    ci = wilson(k, n)
    text = f"{k}/{n}" + (f" ({100 * ci[0]:.0f}–{100 * ci[1]:.0f}%)" if ci else "")
    return text + (f" + {failed} failed" if failed else "")


def stat_cell(values: list[float | None], fmt: Callable[[float], str] = lambda v: f"{v:.3f}") -> str:
    """``mean [min–max] (n)`` over the defined values; ``n/a`` when none is defined."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{fmt(vals[0])} (n=1)"
    return f"{fmt(statistics.fmean(vals))} [{fmt(min(vals))}–{fmt(max(vals))}] (n={len(vals)})"


def table1(config: BenchConfig, results: list[TrialResult], attack: str, density: str) -> Table:
    """Paper Table 1: success k/n per algorithm × poison ratio (plus the clean control)."""
    header = ["algorithm", "clean control (x* → y* without poison)"] + [f"{100 * r:g}% poisoned" for r in config.ratios]
    rows = []
    for algo in config.algos:
        row = [algo, success_cell(_cells(results, algo=algo, attack=CONTROL))]
        row += [success_cell(_cells(results, algo=algo, attack=attack, density=density, ratio=float(r)))
                for r in config.ratios]
        rows.append(row)
    return Table(header, rows)


def table3(config: BenchConfig, results: list[TrialResult], algo: str, attack: str) -> Table:
    """Paper Table 3: success k/n per density × poison ratio."""
    header = ["density"] + [f"{100 * r:g}% poisoned" for r in config.ratios]
    rows = [[Code(d)] + [success_cell(_cells(results, algo=algo, attack=attack, density=d, ratio=float(r)))
                          for r in config.ratios] for d in config.densities]
    return Table(header, rows)


def accuracy_table(config: BenchConfig, results: list[TrialResult]) -> Table:
    header = ["algorithm", "attack", "clean control"] + [f"{100 * r:g}%" for r in config.ratios]
    rows = []
    for algo in config.algos:
        ctrl = stat_cell([r.test_acc for r in _cells(results, algo=algo, attack=CONTROL) if r.ok], _pct1)
        for attack in config.attacks:
            rows.append([algo, attack, ctrl] + [
                stat_cell([r.test_acc for r in _cells(results, algo=algo, attack=attack, ratio=float(x)) if r.ok],
                          _pct1) for x in config.ratios])
    return Table(header, rows)


def _pct1(v: float) -> str:
    return f"{100 * v:.1f}%"


def detectors_of(results: list[TrialResult]) -> list[str]:
    names: dict[str, None] = {}
    for r in results:
        names.update(dict.fromkeys(r.detectors))
    return list(names)


def detection_table(config: BenchConfig, results: list[TrialResult]) -> Block:
    """Detector × attack (× every other axis with more than one value): ranking metrics over the
    finished poisoned trials, and what the detector flagged at its own operating point."""
    axes = [a for a, vals in (("algo", config.algos), ("ratio", config.ratios), ("density", config.densities))
            if len(vals) > 1]
    header = (["detector", "attack"] + axes + ["AUROC", "AP"] + [f"TPR@FPR {100 * p:g}%" for p in FPR_POINTS]
              + ["review cost (images)", "flagged poisoned", "flagged clean"])
    rows = []
    poisoned = [r for r in results if r.ok and r.spec["attack"] != CONTROL]
    groups: dict[tuple, list[TrialResult]] = {}
    for r in poisoned:
        groups.setdefault((r.spec["attack"],) + tuple(r.spec[a] for a in axes), []).append(r)
    for det in detectors_of(poisoned):
        for key, rs in groups.items():
            ms = [r.detectors[det] for r in rs if det in r.detectors]
            cost_fmt = lambda v: f"{v:.0f}"  # noqa: E731
            rows.append([Code(det), key[0]] + [_axis(a, v) for a, v in zip(axes, key[1:])] + [
                stat_cell([m.auroc for m in ms]), stat_cell([m.ap for m in ms]),
                *[stat_cell([m.tpr_at_fpr.get(str(p)) for m in ms], _pct1) for p in FPR_POINTS],
                stat_cell([m.review_cost for m in ms], cost_fmt) + f" of {_pool(rs)}",
                stat_cell([m.flagged_poison for m in ms], cost_fmt) + f" of {_npoison(rs)}",
                stat_cell([m.flagged_clean for m in ms], cost_fmt)])
    return Table(header, rows) if rows else "(no finished poisoned trial)"


def control_table(config: BenchConfig, results: list[TrialResult]) -> Block:
    """The clean control: no poison, so every flag is a false alarm; AUROC/AP/review cost are n/a."""
    header = ["detector", "algorithm", "n", "flagged images (false alarms)", "false-alarm rate", "AUROC"]
    rows = []
    ctrl = [r for r in results if r.ok and r.spec["attack"] == CONTROL]
    for det in detectors_of(ctrl):
        for algo in config.algos:
            ms = [r.detectors[det] for r in ctrl if r.spec["algo"] == algo and det in r.detectors]
            if not ms:
                continue
            rows.append([Code(det), algo, str(len(ms)),
                         stat_cell([m.flagged_clean for m in ms], lambda v: f"{v:.1f}") + f" of {ms[0].n_clean}",
                         stat_cell([m.flag_fpr for m in ms], lambda v: f"{100 * v:.2f}%"), "n/a"])
    return Table(header, rows) if rows else "(no finished clean-control trial)"


def propagation_table(config: BenchConfig, results: list[TrialResult]) -> Block:
    """How far y* reached along the bridge (paper 3.3; propagation.py), per poisoned cell: the final
    and the furthest front, the clean control's boundary on the same line, how far past it the
    front ended, the step from which it no longer moved (±0.05), P(y*|x*) at the end, and where
    the x*-end region confident in x*'s class began."""
    header = ["algorithm", "attack", "ratio", "density", "success", "final front", "max front",
              "clean boundary", "front − boundary", "settled at step", "P(y*|x*) at the end",
              "x* end ≥0.95 from α"]
    groups: dict[tuple, list[TrialResult]] = {}
    for r in results:
        if r.ok and r.spec["attack"] != CONTROL and r.propagation is not None:
            groups.setdefault((r.spec["algo"], r.spec["attack"], r.spec["ratio"], r.spec["density"]), []).append(r)
    rows = []
    for (algo, attack, ratio, density), rs in groups.items():
        ps = [r.propagation for r in rs]
        ends = [None if not p.clean_boundary else p.clean_boundary[-1] for p in ps]
        past = [None if f is None or b is None else f - b for f, b in zip((p.final_front for p in ps), ends)]
        rows.append([algo, attack, _axis("ratio", ratio), _axis("density", density), success_cell(rs),
                     stat_cell([p.final_front for p in ps], _f2), stat_cell([p.max_front for p in ps], _f2),
                     stat_cell(ends, _f2), stat_cell(past, lambda v: f"{v:+.2f}"),
                     stat_cell([p.settled_at() for p in ps], lambda v: f"{v:.0f}"),
                     stat_cell([p.target_prob[-1] for p in ps], lambda v: f"{v:.2g}"),
                     stat_cell([p.hard_from[-1] for p in ps], _f2)])
    return Table(header, rows) if rows else "(no finished poisoned trial with a propagation record)"


def _f2(v: float) -> str:
    return f"{v:.2f}"


def _axis(name: str, v: object) -> str:
    return f"{100 * v:g}%" if name == "ratio" else Code(v) if name == "density" else str(v)


def _pool(rs: list[TrialResult]) -> str:
    sizes = sorted({r.pool_size + r.n_poison for r in rs})
    return "/".join(map(str, sizes))


def _npoison(rs: list[TrialResult]) -> str:
    return "/".join(map(str, sorted({r.n_poison for r in rs})))


def pairs_table(results: list[TrialResult]) -> Table:
    """The (x', x*, y*) of each trial index, and whether every cell used the same one (3.2.1)."""
    by_trial: dict[int, set] = {}
    for r in results:
        if r.ok:
            t = r.target
            by_trial.setdefault(r.spec["trial"], set()).add(
                (t["test_id"], t["true_label"], t["target_label"], t["source_id"]))
    rows = [[str(k), *map(str, sorted(v)[0]), "yes" if len(v) == 1 else f"NO ({len(v)} different)"]
            for k, v in sorted(by_trial.items())]
    return Table(["trial", "target x* (test id)", "true label", "y*", "source x'", "same in every cell"], rows)


def failures(results: list[TrialResult]) -> Block:
    bad = [r for r in results if not r.ok]
    if not bad:
        return "None: every trial finished."
    rows = [[Code(r.key), _label(r), ((r.error or "").splitlines() or [""])[0]] for r in bad]
    return Table(["trial", "cell", "error (full text in trials/<key>.json)"], rows)


def _label(r: TrialResult) -> Text:
    s = r.spec
    if s["attack"] == CONTROL:
        return f"{s['algo']} · clean control · trial {s['trial']}"
    return (f"{s['algo']} · {s['attack']} {100 * s['ratio']:g}% ", Code(s["density"]), f" · trial {s['trial']}")


def build(config: BenchConfig, results: list[TrialResult]) -> Report:
    """Everything the report says, in order, for both renderings."""
    ok = sum(r.ok for r in results)
    t = config.train
    intro = (f"{len(results)} trials: {ok} finished, {len(results) - ok} failed. Dataset ", Code(config.dataset),
             f", {config.labels_per_class} labels per class, pool "
             f"{config.pool or 'all non-labeled training images'}; model ", Code(t.model),
             f" {t.model_options or ''}, {t.steps} steps, batch {t.batch_size}, μ {t.mu}, "
             f"lr {t.lr}; trials {config.trials}, seeds {config.seed}..{config.seed + config.trials - 1}. "
             "Attack success = the EMA model's argmax on x* is y*; intervals are 95% Wilson.")
    density = config.headline_density
    sections = [Section(("Attack success: ", Code(attack), ", density ", Code(density), " (paper Table 1)"),
                        (table1(config, results, attack, density),)) for attack in config.attacks]
    sections += [Section((f"Attack success by density: {algo}, ", Code(attack), " (paper Table 3)"),
                         (table3(config, results, algo, attack),)) for algo in config.algos for attack in config.attacks]
    sections += [
        Section("Clean test accuracy of the victim (EMA model)", (accuracy_table(config, results),)),
        Section("Propagation of y* along the bridge (paper 3.3, Figure 5)", (
            ("Front = α (from x') of the last bridge image of the unbroken run predicted y* from x'; clean boundary "
             "= the same on the probe line x'→x* for the clean control of the same trial (where a model that never "
             "saw the bridge stops calling the line y*). The attack succeeds when the front reaches α = 1. Cells: "
             "mean [min–max] (n trials); ", Code("propagation.png"), " draws every trial over the steps."),
            propagation_table(config, results))),
        Section("Detection (poisoned trials)", (
            "Higher score = more suspicious. AUROC/AP rank the whole pool; TPR@FPR f = the largest share of poisoned "
            "images caught at a threshold with at most f of the clean pool above it; review cost = images a "
            "reviewer reads, top-ranked first, until every poisoned one has been seen (ties counted against the "
            "detector). Flagged = the detector's own findings. Cells: mean [min–max] (n trials).",
            detection_table(config, results))),
        Section("False alarms on the clean control (no poison)", (control_table(config, results),)),
        Section("Source/target pairs (reused across cells)", (pairs_table(results),)),
        Section("Failed trials", (failures(results),))]
    return Report(f"redteam bench: {config.preset}", intro, tuple(sections))


def _md(text: Text, cell: bool = False) -> str:
    out = "".join(f"`{p}`" if isinstance(p, Code) else p for p in parts(text))
    return out.replace("|", "\\|") if cell else out  # a bare | would end the table cell


def markdown(report: Report, plots: list[str]) -> str:
    """``report.md``: the sections as headings, paragraphs and pipe tables; plots as image links."""
    lines = [f"# {report.title}", "", _md(report.intro), ""]
    for sec in report.sections:
        lines += [f"## {_md(sec.heading)}", ""]
        for block in sec.blocks:
            if isinstance(block, Table):
                lines += ["| " + " | ".join(_md(h, True) for h in block.header) + " |",
                          "|" + "|".join("---" for _ in block.header) + "|"]
                lines += ["| " + " | ".join(_md(c, True) for c in row) + " |" for row in block.rows]
            else:
                lines.append(_md(block))
            lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def write_report(config: BenchConfig, results: list[TrialResult], out_dir: str | Path) -> Path:
    """``OUT/report.md``, ``OUT/report.html`` (self-contained: the plots inside) and the PNG plots;
    returns report.md's path."""
    from redteam.bench.html import render_html
    from redteam.bench.plots import write_plots
    from audit.atomic import write_atomic

    out = Path(out_dir)
    plots = write_plots(config, results, out)
    report = build(config, results)
    path = out / "report.md"
    write_atomic(path, markdown(report, plots))
    write_atomic(out / "report.html", render_html(report, {p: (out / p).read_bytes() for p in plots}))
    return path
