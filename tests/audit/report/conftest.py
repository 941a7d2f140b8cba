"""Hand-made AuditResults for the report tests: a 5-image bridge with endpoints, a cluster, a
near-duplicate pair, hostile file names, a NaN score and an unreadable file."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from audit.data.imageset import ImageSet, Unreadable
from audit.findings import AuditResult, Finding, Member, Severity

SCRIPT = "<script>alert(1)</script>.png"
ATTR = '"><img src=x onerror=alert(1)>.png'
FORMULA = "=HYPERLINK(\"http://evil\",\"x\").png"
IDS = ("a/0.png", "a/1.png", "a/2.png", "a/3.png", "a/4.png", SCRIPT, ATTR, FORMULA, "b/8.png", "b/9.png")


@pytest.fixture()
def images(fashion200) -> ImageSet:
    return ImageSet(images=np.ascontiguousarray(fashion200.images[: len(IDS)]), ids=IDS)


@pytest.fixture()
def result() -> AuditResult:
    n = len(IDS)
    alphas = (0.0, 0.25, 0.5, 0.75, 1.0)
    roles = ("source", None, None, None, "target")
    bridge = Finding(
        kind="bridge", severity=Severity.ERROR, score=0.97,
        members=tuple(Member(IDS[i], i, alpha=a, role=r) for i, (a, r) in enumerate(zip(alphas, roles))),
        summary="5 images interpolate between a/0.png and a/4.png",
        evidence={"max_residual": 0.41, "note": "<b>bold</b>"},
    )
    cluster = Finding(
        kind="cluster", severity=Severity.WARNING, score=0.5,
        members=(Member(SCRIPT, 5), Member(ATTR, 6)), summary=f"cluster containing {SCRIPT}",
    )
    dup = Finding(
        kind="near_duplicate", severity=Severity.INFO, score=0.1,
        members=(Member(FORMULA, 7), Member("b/8.png", 8)), summary="2 near-identical images",
    )
    scores = {
        "bridge": np.array([0.9, 0.8, 0.8, 0.8, 0.9, 0, 0, 0, 0, np.nan]),
        "cluster": np.linspace(0, 1, n),
        "near_duplicate": np.full(n, -0.5),
    }
    return AuditResult(
        tool="scan", root="incoming", ids=IDS, findings=(dup, cluster, bridge),
        unreadable=(Unreadable("broken, file.png", "truncated\nfile"),), scores=scores,
        params={"k": 10}, timings={"read": 0.1234},
    )


def with_findings(result: AuditResult, *severities: Severity) -> AuditResult:
    """The same result with one finding per given severity."""
    fs = tuple(Finding("cluster", s, 1.0, (Member("a/0.png", 0),), "x") for s in severities)
    return AuditResult(tool=result.tool, root=result.root, ids=result.ids, findings=fs)


@pytest.fixture()
def case() -> SimpleNamespace:
    """The constants above, for tests (importing ``conftest`` by name is fragile under pytest)."""
    return SimpleNamespace(SCRIPT=SCRIPT, ATTR=ATTR, FORMULA=FORMULA, IDS=IDS, with_findings=with_findings)
