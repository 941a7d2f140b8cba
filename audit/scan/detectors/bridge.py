"""``bridge``: interpolation chains, images on one pixel-space line segment (paper 5.2,
"Detecting pixel-space interpolations"). The geometry lives in :mod:`audit.scan.colinearity`;
this file turns chains into findings, with the labeled source x' when one sits at an end.

Severity error: a chain of images on one line up to uint8 rounding is how a bridge is built
(paper 3.1) and is very rare in natural pools (0 chains on the clean Fashion-MNIST 60k).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from audit.findings import Finding, Member, Severity
from audit.scan.colinearity import Chain, ColinearityConfig, find_chains, line_fit
from audit.scan.detectors.base import Detector, DetectorOutput, LabeledRows, ScanInputs


class Bridge(Detector):
    name = "bridge"
    Config = ColinearityConfig
    severity = Severity.ERROR
    summary = "images on one pixel-space line segment (a linear bridge, paper 3.1)"

    def run(self, inputs: ScanInputs, earlier: Mapping[str, DetectorOutput]) -> DetectorOutput:
        cfg = self.config
        chains, counts = find_chains(inputs.features, inputs.graph, inputs.eligible, cfg, points=inputs.points)
        # per image, for every image: how well it lies on the line between two of its neighbours
        # (min(1, tolerance / residual) of its best proposed triple, 0 if none was proposed), and
        # 1 + its own fit for a member of a reported chain, so members rank above lone triples
        score = counts.pop("linearity")
        findings = []
        for c in chains:
            f = chain_finding(c, inputs, cfg)
            findings.append(f)
            fit = np.array([m.score for m in f.members])
            idx = np.array([m.index for m in f.members])
            score[idx] = np.maximum(score[idx], 1.0 + fit)
        return DetectorOutput(findings, score, counts)


def match_source(chain: Chain, inputs: ScanInputs, cfg: ColinearityConfig) -> dict | None:
    """The labeled image on the chain's line at (or just beyond) one end, within the chain's
    tolerance: that end is the source x'. Returns {end: 0|1, index, id, label, residual}."""
    lab: LabeledRows = inputs.labeled  # type: ignore[assignment]
    features = inputs.features
    e0, e1 = features.full([chain.members[0], chain.members[-1]])
    proj = features.projection
    best = None
    for end, e in ((0, e0), (1, e1)):
        pe = proj.transform(e[None])[0]
        near = np.argsort(((lab.projected - pe) ** 2).sum(axis=1))[:5]
        x = lab.rows[near].astype(np.float32)
        t, r, abs_tol, _ = line_fit(x, e0, e1, cfg)
        tol = np.maximum(abs_tol, cfg.noise_factor * chain.extra.get("noise", 0.0) * np.sqrt(1 + (1 - t) ** 2 + t**2))
        off = t if end == 0 else 1 - t  # how far inside the chain (negative: beyond the end)
        ok = (r <= tol) & (off <= 0.05) & (off >= -0.25)
        for j in np.flatnonzero(ok):
            label = None if lab.images.labels is None else int(lab.images.labels[near[j]])
            cand = {"end": end, "index": int(near[j]), "id": lab.images.ids[int(near[j])], "label": label,
                    "residual": float(r[j]), "offset": float(abs(off[j]))}
            if best is None or cand["offset"] < best["offset"]:
                best = cand
    return best


def chain_finding(chain: Chain, inputs: ScanInputs, cfg: ColinearityConfig) -> Finding:
    ids = inputs.ids
    members, alphas, ratio = chain.members, chain.alphas, chain.residuals / np.maximum(chain.tolerances, 1e-9)
    src = match_source(chain, inputs, cfg) if inputs.labeled is not None else None
    if src is not None and src["end"] == 1:
        members, alphas, ratio = members[::-1], 1.0 - alphas[::-1], ratio[::-1]
    first, last = ("source", "target") if src is not None else ("endpoint", "endpoint")
    n = len(members)
    linearity = float(np.clip(1.0 - 0.5 * np.median(ratio), 0.0, 1.0))
    score = n * linearity  # a 3-point chain scores ~3, a paper-sized bridge (60+) ~60
    out = []
    for j, (m, a) in enumerate(zip(members, alphas)):
        role = first if j == 0 else last if j == n - 1 else None
        out.append(Member(id=ids[m], index=int(m), alpha=float(a), role=role,
                          score=float(np.clip(1.0 - ratio[j], 0.0, 1.0))))
    evidence: dict[str, Any] = {
        "alphas": [round(float(a), 4) for a in alphas],
        "endpoints": [ids[members[0]], ids[members[-1]]],
        "length_px": chain.length,
        "max_residual_px": float(chain.residuals.max()),
        "max_residual_ratio": float(ratio.max()),
        "exact_rounding": chain.extra.get("exact", False),
        "noise_px": chain.extra.get("noise", 0.0),
    }
    if inputs.labeled is not None:
        evidence.update(inputs.labeled.source_evidence(src))
    who = f"from labeled {src['id']} " if src is not None else ""
    summary = (f"{n} images on one pixel-space line {who}between {ids[members[0]]} and {ids[members[-1]]} "
               f"(max residual {chain.residuals.max():.1f} px over a {chain.length:.0f} px span)")
    return Finding(kind="bridge", severity=Severity.ERROR, score=score, members=tuple(out), summary=summary,
                   evidence=evidence)
