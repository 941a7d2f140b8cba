"""The detector contract, once for every registered detector (STYLE.md 9): it runs on the shared
inputs of a real pool with a planted bridge, returns one score per image, and its findings carry
its own name as kind and its own severity."""

from __future__ import annotations

import numpy as np
import pytest

from audit.findings import Severity
from audit.scan.detectors import DETECTORS, DetectorOutput
from audit.scan.pipeline import ScanConfig, build_context, run_detectors, scan
from scan_helpers import bridge, make_set


@pytest.fixture(scope="module")
def poisoned(clean_images, fashion):
    images, labels = fashion
    src, dst = int(np.flatnonzero(labels == 5)[0]), int(np.flatnonzero(labels == 0)[0])
    b = bridge(images[src], images[dst], np.linspace(0, 1, 24))
    return make_set(np.concatenate([clean_images, b])), len(clean_images)


@pytest.mark.parametrize("name", list(DETECTORS))
def test_every_detector_keeps_the_contract(poisoned, name):
    pool, _ = poisoned
    cls = DETECTORS.get(name)
    assert cls.name == name and cls.summary and isinstance(cls.severity, Severity)
    res = scan(pool, ScanConfig(detectors=(name,)))
    assert list(res.scores) == [name]
    scores = res.scores[name]
    assert scores.shape == (len(pool),) and scores.dtype == np.float64
    assert all(f.kind == name and f.severity is cls.severity for f in res.findings)
    for f in res.findings:  # members index the pool and carry its ids
        assert all(pool.ids[m.index] == m.id for m in f.members)
    assert name in res.params["detectors"] and name in res.params["options"]


def test_detectors_run_in_registry_order_and_see_earlier_outputs(poisoned):
    pool, n_clean = poisoned
    seen = {}

    class Spy(DETECTORS.get("near_duplicate")):
        def run(self, inputs, earlier):
            seen["earlier"] = list(earlier)
            return DetectorOutput([], np.zeros(len(inputs)))

    ctx = build_context(pool, ScanConfig())
    original = DETECTORS._items["near_duplicate"]
    DETECTORS._items["near_duplicate"] = Spy
    try:
        res = run_detectors(ctx.features, ctx.graph, pool, ScanConfig(detectors=("near_duplicate", "bridge")),
                            labeled=None, progress=None, timings={})
    finally:
        DETECTORS._items["near_duplicate"] = original
    assert seen["earlier"] == ["bridge"]  # given last, run after bridge: registry order wins
    assert res.params["detectors"] == ["bridge", "near_duplicate"]


def test_incremental_scans_skip_detectors_that_need_the_whole_pool(poisoned):
    pool, n_clean = poisoned
    ctx = build_context(pool, ScanConfig())
    res = run_detectors(ctx.features, ctx.graph, pool, ScanConfig(), labeled=None, progress=None, timings={},
                        points=np.arange(n_clean, len(pool)))
    assert "cluster" not in res.scores and DETECTORS.get("cluster").needs_full_pool
    assert {m.index for f in res.findings if f.kind == "bridge" for m in f.members} >= set(range(n_clean + 1, len(pool) - 1))


def test_a_detector_returning_misshapen_scores_is_an_error(poisoned):
    pool, _ = poisoned
    from audit.errors import ShapeMismatchError

    class Broken(DETECTORS.get("near_duplicate")):
        def run(self, inputs, earlier):
            return DetectorOutput([], np.zeros(3))

    original = DETECTORS._items["near_duplicate"]
    DETECTORS._items["near_duplicate"] = Broken
    try:
        with pytest.raises(ShapeMismatchError, match="near_duplicate detector returned"):
            scan(pool, ScanConfig(detectors=("near_duplicate",)))
    finally:
        DETECTORS._items["near_duplicate"] = original


def test_bridge_scores_are_per_image_not_the_finding_score_copied(poisoned):
    pool, n_clean = poisoned
    res = scan(pool, ScanConfig(detectors=("bridge",)))
    s = res.scores["bridge"]
    (f,) = [f for f in res.findings if f.kind == "bridge"]
    members = np.array([m.index for m in f.members])
    assert np.all(s[members] >= 1.0) and len(np.unique(s[members])) > 1  # each member its own fit
    assert not np.any(np.isclose(s[members], f.score))
    others = np.setdiff1d(np.arange(len(pool)), members)
    assert s[others].max() < 1.0 + 1e-9 and (s[others] > 0).sum() > 10  # lone triples: a graded score
