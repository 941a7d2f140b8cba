"""Group flagged examples into attack instances, one reviewable Finding each (paper 3.3, 5.3).

A bridge is learned in order (paper 3.3, Figure 5): x' first, then each next member, x* last.
So flagged examples linked by the score's "closest influencers" relation are grouped into
connected components; each component's members are ordered by when their prediction flipped
to the component's majority final class, and the one that flipped last is the likely target x*.

Evidence per instance (JSON-able, for the report's heatmap): flip steps, the final class, the
score values, and every member's probability of the final class at every record (members × K).
"""

from __future__ import annotations

import numpy as np

from audit.dynamics.config import ScoreOutput
from audit.dynamics.predictions import Predictions
from audit.findings import Finding, Member, Severity

MIN_ERROR_SIZE = 3  # an instance of >= 3 linked examples is a chain, not a coincident pair


def flip_time_to(probs: np.ndarray, cls: int) -> np.ndarray:
    """Fractional record index at which each row of ``probs`` (M×K×C) last became ``cls``
    (its margin over the runner-up crossing 0); inf when ``cls`` is not its final argmax."""
    p = np.asarray(probs, dtype=np.float64)
    m, k, c = p.shape
    own = p[:, :, cls]
    other = np.delete(p, cls, axis=2).max(2)
    margin = own - other
    below = margin <= 0
    out = np.full(m, np.inf)
    for i in range(m):
        if margin[i, -1] <= 0:
            continue
        if not below[i].any():
            out[i] = 0.0
            continue
        t = int(np.flatnonzero(below[i]).max())
        m0, m1 = margin[i, t], margin[i, t + 1]
        out[i] = t + float(np.clip(-m0 / max(m1 - m0, 1e-12), 0.0, 1.0))
    return out


def build_instances(pred: Predictions, out: ScoreOutput, flagged: np.ndarray,
                    threshold: float) -> tuple[Finding, ...]:
    """One Finding (kind ``dynamics``) per connected component of the flagged examples."""
    idx = np.flatnonzero(flagged)
    if len(idx) == 0:
        return ()
    from scipy.sparse import coo_matrix  # here, not at the top: `audit --help` imports this module
    from scipy.sparse.csgraph import connected_components

    n = pred.n
    nbr = out.neighbors
    u = np.repeat(np.arange(n), nbr.shape[1])
    v = nbr.reshape(-1)
    keep = (v >= 0) & flagged[u] & flagged[np.maximum(v, 0)]
    graph = coo_matrix((np.ones(int(keep.sum())), (u[keep], v[keep])), shape=(n, n))
    _, label = connected_components(graph, directed=True, connection="weak")
    findings = [_finding(pred, out, np.sort(idx[label[idx] == lab]), threshold)
                for lab in np.unique(label[idx])]
    findings.sort(key=lambda f: (-f.score, -len(f.members), f.members[0].index))
    return tuple(findings)


def _finding(pred: Predictions, out: ScoreOutput, members: np.ndarray, threshold: float) -> Finding:
    probs = pred.probs[members]  # M×K×C
    final = probs[:, -1].argmax(1)
    cls = int(np.bincount(final, minlength=pred.num_classes).argmax())
    tau = flip_time_to(probs, cls)
    order = np.lexsort((members, tau))  # by flip time; never-flipped-to-cls members last
    members, tau, final = members[order], tau[order], final[order]
    k = pred.num_records
    steps = np.interp(np.where(np.isfinite(tau), tau, k - 1), np.arange(k), pred.steps.astype(np.float64))
    flipped = np.isfinite(tau)
    last = int(np.flatnonzero(flipped).max()) if flipped.any() else len(members) - 1
    m = len(members)
    roles = [None] * m
    if m >= 2:
        roles[0], roles[last] = "source", "target"
    out_members = tuple(
        Member(id=pred.ids[j], index=int(j), alpha=(i / (m - 1) if m > 1 else None), role=roles[i],
               score=float(out.suspicion[j]))
        for i, j in enumerate(members))
    severity = Severity.ERROR if m >= MIN_ERROR_SIZE else Severity.WARNING
    target = pred.ids[members[last]]
    if m >= 2:
        summary = (f"{m} examples flip to class {cls} one after another (steps {steps[flipped].min():.0f}"
                   f"–{steps[flipped].max():.0f}); '{target}' flipped last: likely target x*.")
    else:
        summary = f"'{target}' has an outlying {out.name} score; its prediction ends in class {cls}."
    nbr = out.neighbors[members]
    evidence = {
        "score": out.name,
        "final_class": cls,
        "threshold": float(threshold),
        "flip_steps": [None if not f else float(s) for f, s in zip(flipped, steps)],
        "flip_records": [None if not f else float(t) for f, t in zip(flipped, tau)],
        "final_classes": final.tolist(),
        "values": out.value[members].tolist(),
        "suspicion": out.suspicion[members].tolist(),
        "closest_influencers": {pred.ids[j]: [pred.ids[v] for v in row if v >= 0]
                                for j, row in zip(members, nbr)},
        "steps": pred.steps.tolist(),
        "trajectory": np.round(pred.probs[members][:, :, cls], 4).tolist(),  # members × K, heatmap
    }
    return Finding(kind="dynamics", severity=severity, score=float(out.suspicion[members].max()),
                   members=out_members, summary=summary, evidence=evidence)


def orient_instances(findings: tuple[Finding, ...], pool, labeled=None) -> tuple[Finding, ...]:
    """Place each instance's members along their pixel line and put ``source``/``target`` where
    they are (the report calls this; ``pool``/``labeled`` are ImageSets, members found by id).

    Flip order alone cannot say which end is which: members near x' hold y* from the start
    (their flip times tie at 0), and where the attack stalls, the majority class of the chain may
    be x*'s own, so "first to flip" lands on the x* end and "last" mid-chain. A bridge is a line
    in pixel space (paper 3.1), so members are ordered by their position along their first
    principal axis (α in [0, 1]); with the labeled set, the end nearest a labeled image is x'
    (``source``, α = 0), the other end x* (``target``); without it both ends are ``endpoint``.
    Per-member evidence lists follow the new order; instances whose members are not all in
    ``pool`` (or of another shape) are left as they are."""
    row = {i: r for r, i in enumerate(pool.ids)}
    lab = None
    if labeled is not None and len(labeled) and labeled.shape == pool.shape:
        lab = labeled.images.reshape(len(labeled), -1).astype(np.float32)
    return tuple(_orient(f, pool, row, lab, labeled) if f.kind == "dynamics" else f for f in findings)


def _orient(f: Finding, pool, row: dict, lab: np.ndarray | None, labeled) -> Finding:
    import dataclasses

    m = len(f.members)
    if m < 2 or any(mm.id not in row for mm in f.members):
        return f
    x = pool.images[[row[mm.id] for mm in f.members]].reshape(m, -1).astype(np.float64)
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    t = xc @ vt[0]
    span = float(t.max() - t.min())
    if span <= 0:
        return f
    alpha = (t - t.min()) / span
    order = np.argsort(alpha, kind="stable")
    ends = (int(order[0]), int(order[-1]))
    roles, source, ev = ("endpoint", "endpoint"), None, dict(f.evidence)
    if lab is not None:
        d = [np.sqrt(((lab - x[e].astype(np.float32)) ** 2).sum(1)) for e in ends]
        near = [int(np.argmin(di)) for di in d]
        length = float(np.sqrt(((x[ends[0]] - x[ends[1]]) ** 2).sum()))
        best = 0 if d[0][near[0]] <= d[1][near[1]] else 1
        if d[best][near[best]] <= 0.25 * length:  # x' is a labeled image: its end sits on it
            if best == 1:
                order, alpha = order[::-1], 1.0 - alpha
            roles = ("source", "target")
            source = near[best]
    members = []
    for k, j in enumerate(order):
        mm = f.members[j]
        role = roles[0] if k == 0 else roles[1] if k == m - 1 else None
        members.append(dataclasses.replace(mm, alpha=float(alpha[j]), role=role))
    for key in ("flip_steps", "flip_records", "final_classes", "values", "suspicion", "trajectory"):
        if isinstance(ev.get(key), list) and len(ev[key]) == m:
            ev[key] = [ev[key][j] for j in order]
    ev["order"] = "pixel line (first principal axis of the members' pixels)"
    if source is not None:
        ev["source_labeled_id"] = labeled.ids[source]
        if labeled.labels is not None:
            ev["source_class"] = int(labeled.labels[source])
            if labeled.class_names is not None:
                ev["source_class_name"] = labeled.class_names[int(labeled.labels[source])]
    a, b = members[0].id, members[-1].id
    if source is not None:
        where = f"they run from '{a}' (next to labeled '{labeled.ids[source]}') to '{b}': likely target x*."
    elif lab is not None:  # the labeled set was given: no end sits on one of its images
        where = (f"their pixel line runs from '{a}' to '{b}'; neither end is next to a labeled image "
                 "(a source outside the labeled set given, or not a bridge from one).")
    else:
        where = f"their pixel line runs from '{a}' to '{b}' (which end is the labeled source needs the labeled set)."
    head = f.summary.split(";")[0]
    names = None if labeled is None else labeled.class_names
    fc = ev.get("final_class")
    if names is not None and isinstance(fc, int) and 0 <= fc < len(names):
        head = head.replace(f"to class {fc} ", f"to {names[fc]} ")
    return dataclasses.replace(f, members=tuple(members), evidence=ev, summary=f"{head}; along their pixels {where}")
