"""Evidence in words: for each finding, one sentence a reviewer can act on and a small table of
the numbers behind it, in the labeled set's class names. The raw evidence (α lists, flip steps,
trajectories) stays in the JSON report and is folded away in the HTML.

One function per finding kind (the detector registry's names, plus ``dynamics``); a kind without
one gets its summary and its scalar evidence. Plain text out (the HTML escapes it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from audit.findings import Finding
from audit.report.context import ReportContext


@dataclass(frozen=True)
class Explanation:
    sentence: str
    rows: list[tuple[str, str]] = field(default_factory=list)  # (what, value) for the small table
    member_columns: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> {member id: value}


def explain(f: Finding, ctx: ReportContext) -> Explanation:
    return _KINDS.get(f.kind, _generic)(f, ctx)


def source_text(f: Finding, ctx: ReportContext) -> str | None:
    """``labeled image 0/x.png (T-shirt)`` when the finding names its labeled source x'."""
    ev = f.evidence
    src = ev.get("source_labeled_id")
    if src is None:
        return None
    name = ev.get("source_class_name")
    if name is None and ev.get("source_class") is not None:
        name = ctx.class_name(ev["source_class"])
    return f"labeled image {src}" + (f" ({name})" if name is not None else "")


def _ends(f: Finding) -> tuple[str, str]:
    return f.members[0].id, f.members[-1].id


def _bridge(f: Finding, ctx: ReportContext) -> Explanation:
    ev, n = f.evidence, len(f.members)
    a, b = _ends(f)
    src = source_text(f, ctx)
    start = f"{src}, copied into the pool as {a}," if src else a
    length = _num(ev.get("length_px"))
    worst = _num(ev.get("max_residual_px"))
    ratio = _num(ev.get("max_residual_ratio"))
    sentence = (f"{n} images are blends of two images: each one is (1−α)·start + α·end, so they lie on one straight "
                f"line in pixel space from {start} to {b}. Scraped photos almost never do; the interpolation "
                "attack of the paper (3.1) inserts exactly such a line to carry a label to its far end.")
    rows = [("images on the line", str(n)), ("from → to", f"{a} → {b}")]
    if src:
        rows.append(("labeled source x'", src))
    if length is not None:
        rows.append(("distance between the ends", f"{length:.0f} (pixel units, L2)"))
    if worst is not None:
        share = f", {100 * worst / length:.2g}% of that distance" if length else ""
        rows.append(("farthest any image is from the line", f"{worst:.1f}{share}"))
    if ratio is not None:
        rows.append(("that, against the rounding/noise allowance", f"{100 * ratio:.0f}% of the allowance"))
    if ev.get("exact_rounding"):
        rows.append(("pixels", "exactly the rounded blend (uint8)"))
    alphas = [m.alpha for m in f.members if m.alpha is not None]
    if alphas:
        rows.append(("α from start to end", f"{min(alphas):.2f} … {max(alphas):.2f}, {len(alphas)} steps"))
    return Explanation(sentence, rows)


def _path(f: Finding, ctx: ReportContext) -> Explanation:
    ev, n = f.evidence, len(f.members)
    a, b = _ends(f)
    src = source_text(f, ctx)
    start = f"{src}, copied into the pool as {a}," if src else a
    tighter, extent = _num(ev.get("tighter_than_pool")), _num(ev.get("extent_steps"))
    views = ev.get("views") or []
    where = {"pixels": "pixel space", "invariant": "a brightness-, contrast- and shift-invariant view"}
    seen = " and ".join(where.get(v, str(v)) for v in views) or "pixel space"
    sentence = (f"{n} images form one chain from {start} to {b}: each is much closer to its neighbours on the "
                "chain than this pool's close pairs are to each other, and the chain runs far end to end. "
                "A curved, noisy, JPEG-compressed or shifted interpolation between two images looks like this.")
    rows = [("images on the chain", str(n)), ("from → to", f"{a} → {b}")]
    if src:
        rows.append(("labeled source x'", src))
    if tighter is not None:
        rows.append(("closer than the pool's close pairs", f"{tighter:.1f}×"))
    if extent is not None:
        rows.append(("length, in steps between neighbours", f"{extent:.0f}"))
    rows.append(("seen in", seen))
    return Explanation(sentence, rows)


def _cluster(f: Finding, ctx: ReportContext) -> Explanation:
    ev, n = f.evidence, len(f.members)
    mean, tight, size = _num(ev.get("mean_edge")), _num(ev.get("tight_threshold")), _num(ev.get("size_threshold"))
    sentence = (f"{n} images sit unusually close together: a group this large and this tight is rare in this pool "
                "(paper 5.2: poison inserted as many near-copies forms such a cluster). Check whether they are "
                "one image repeated or slightly varied.")
    rows = [("images", str(n))]
    if mean is not None:
        rows.append(("typical distance inside the group", f"{mean:.1f}"))
    if tight is not None:
        rows.append(("the pool's tight-group limit", f"≤ {tight:.1f}"))
    if size is not None:
        rows.append(("the pool's large-group limit", f"≥ {size:.0f} images"))
    return Explanation(sentence, rows)


def _near_duplicate(f: Finding, ctx: ReportContext) -> Explanation:
    n = len(f.members)
    sentence = (f"{n} images differ by at most a few grey levels in every pixel: copies or re-encodings of one "
                "image. Common in scraped data and harmless on their own; listed for review, they do not fail "
                "the gate unless --fail-on says so.")
    return Explanation(sentence, [("images", str(n))])


def _dynamics(f: Finding, ctx: ReportContext) -> Explanation:
    ev, n = f.evidence, len(f.members)
    cls = ctx.class_name(ev.get("final_class")) if ev.get("final_class") is not None else "one class"
    steps = [s for s in ev.get("flip_steps") or [] if s is not None]
    flipped = len(steps)
    when = f" between steps {min(steps):.0f} and {max(steps):.0f}" if steps else ""
    src = source_text(f, ctx)
    roles = {m.role: m.id for m in f.members if m.role}
    if "source" in roles and "order" not in ev:  # roles from flip order only (no pixels to place them)
        along = f" In flip order: first {roles['source']}, last {roles.get('target', '?')}."
    elif "source" in roles:
        along = (f" Along their pixel line they run from {roles['source']}" + (f" (next to {src})" if src else "")
                 + f" to {roles['target']}, the likely target x*.")
    elif "endpoint" in roles:
        along = (" Their pixel line runs between the two marked ends; which end is the labeled source is not known "
                 "without the labeled set.")
    else:
        along = ""
    sentence = (f"{n} images were predicted as {cls} one after another during training{when}: a bridge is learned "
                f"that way, one image after the next (paper 3.3, Figure 5).{along}")
    rows = [("images", str(n)), ("predicted class at the end", cls),
            ("images that switched to it", f"{flipped} of {n}")]
    if steps:
        rows.append(("training steps of the switches", f"{min(steps):.0f} … {max(steps):.0f}"))
    if src:
        rows.append(("labeled source x'", src))
    score, thr = ev.get("score"), _num(ev.get("threshold"))
    if score is not None:
        rows.append(("score", f"{score}" + (f" (flag above {thr:.3g})" if thr is not None else "")))
    if ev.get("round"):
        rows.append(("found in", f"round {ev['round']} (after removing what earlier rounds flagged)"))
    cols: dict[str, dict[str, str]] = {}
    ids = [m.id for m in f.members]
    fs = ev.get("flip_steps")
    if isinstance(fs, list) and len(fs) == n:
        cols["switched at step"] = {i: "never" if s is None else f"{s:.0f}" for i, s in zip(ids, fs)}
    fc = ev.get("final_classes")
    if isinstance(fc, list) and len(fc) == n:
        cols["class at the end"] = {i: ctx.class_name(c) for i, c in zip(ids, fc)}
    return Explanation(sentence, rows, cols)


def _generic(f: Finding, ctx: ReportContext) -> Explanation:
    rows = [(str(k), _scalar(v)) for k, v in f.evidence.items() if _scalar(v) is not None]
    return Explanation(f.summary, rows)  # type: ignore[arg-type]


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _scalar(v: Any) -> str | None:
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    x = _num(v)
    return None if x is None else f"{x:.4g}"


_KINDS: dict[str, Callable[[Finding, ReportContext], Explanation]] = {
    "bridge": _bridge, "path": _path, "cluster": _cluster, "near_duplicate": _near_duplicate,
    "dynamics": _dynamics,
}
