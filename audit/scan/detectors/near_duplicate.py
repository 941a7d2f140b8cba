"""``near_duplicate``: near-duplicate groups (paper 5.2, Figure 8: look-alikes are common and benign).

Two images are near duplicates when their largest per-pixel difference is at most
``max_diff`` (default 2: uint8 rounding of the same picture, or a lossless re-save with a
colour-profile nudge). Groups are connected components of such pairs among kNN edges (the
shared graph, so no all-pairs work), reported as ``near_duplicate`` / info: enough to review,
never enough to fail a gate. Exact copies are near duplicates with ``max_diff`` 0.

Shape contract: rows uint8 ``N×D``; returns int64 label per row (-1 = not in a group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from audit.features import Features
from audit.findings import Finding, Member, Severity
from audit.neighbors import NeighborGraph
from audit.scan.detectors.base import Detector, DetectorOutput, ScanInputs, members_union
from audit.validate import check_int


@dataclass(frozen=True)
class DuplicateConfig:
    max_diff: int = 2  # max |pixel difference| of a near duplicate (uint8 rounding is <= 1)
    min_group: int = 2  # a pair is already a group

    def __post_init__(self) -> None:
        check_int("DuplicateConfig", "max_diff", self.max_diff, 0, 255)
        check_int("DuplicateConfig", "min_group", self.min_group, 2)


class NearDuplicate(Detector):
    name = "near_duplicate"
    Config = DuplicateConfig
    severity = Severity.INFO
    summary = "groups of images that differ by at most a few grey levels in every pixel (benign, for review)"

    def run(self, inputs: ScanInputs, earlier: Mapping[str, DetectorOutput]) -> DetectorOutput:
        groups = near_duplicate_groups(inputs.features, inputs.graph, self.config)
        score = np.zeros(len(inputs))
        for g in groups:
            score[g] = len(g)
        # a group wholly inside an error finding (rounding copies along a bridge) is part of it
        inside = members_union(earlier, Severity.ERROR)
        findings = [duplicate_finding(g, inputs.ids, self.config.max_diff) for g in groups
                    if not inside.issuperset(g.tolist())]
        return DetectorOutput(findings, score, {"groups": len(groups), "inside_error_findings": len(groups) - len(findings)})


def duplicate_finding(group: np.ndarray, ids: tuple[str, ...], max_diff: int) -> Finding:
    members = tuple(Member(id=ids[m], index=int(m)) for m in group)
    return Finding(kind="near_duplicate", severity=Severity.INFO, score=float(len(group)), members=members,
                   summary=f"{len(group)} near-identical images (max pixel difference <= {max_diff})",
                   evidence={"size": len(group)})


def near_duplicate_groups(features: Features, graph: NeighborGraph, cfg: DuplicateConfig) -> list[np.ndarray]:
    """Connected components (size >= ``min_group``) of kNN edges whose endpoints differ by at
    most ``max_diff`` in every pixel; each group sorted by row index."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    src, dst, sq = graph.edges()
    # a pair within max_diff per pixel is within max_diff·sqrt(D) in L2, and projections only shrink
    bound = cfg.max_diff**2 * features.rows.shape[1]
    cand = sq <= bound
    src, dst = src[cand], dst[cand]
    keep = np.zeros(len(src), bool)
    step = 8192
    for s in range(0, len(src), step):
        a = features.rows[src[s : s + step]].astype(np.int16)
        b = features.rows[dst[s : s + step]].astype(np.int16)
        keep[s : s + step] = np.abs(a - b).max(axis=1) <= cfg.max_diff
    src, dst = src[keep], dst[keep]
    n = len(features)
    if len(src) == 0:
        return []
    adj = sparse.coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))
    _, labels = connected_components(adj, directed=False)
    counts = np.bincount(labels)
    in_edge = np.zeros(n, bool)
    in_edge[src] = in_edge[dst] = True
    groups = []
    for lab in np.unique(labels[in_edge]):
        if counts[lab] >= cfg.min_group:
            groups.append(np.flatnonzero(labels == lab))
    return groups
