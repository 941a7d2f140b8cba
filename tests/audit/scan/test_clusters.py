"""Tight-cluster detector (paper 5.2, agglomerative clustering on the shared kNN graph)."""

from __future__ import annotations

import numpy as np
import pytest
from scan_helpers import make_set

from audit.errors import InvalidParameterError
from audit.features import build_features
from audit.neighbors import knn_graph
from audit.scan import scan
from audit.scan.detectors.cluster import ClusterConfig, find_clusters


def _blob(base: np.ndarray, n: int, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = base.astype(np.float64)[None] + rng.normal(0, sigma, size=(n,) + base.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def with_blob(clean_images):
    blob = _blob(clean_images[30], 30, sigma=4.0)
    return np.concatenate([clean_images, blob]), len(clean_images)


def test_tight_blob_is_flagged_and_not_a_duplicate_group(with_blob):
    images, n = with_blob
    res = scan(make_set(images))
    clusters = [f for f in res.findings if f.kind == "cluster"]
    assert len(clusters) == 1
    members = {m.index for m in clusters[0].members}
    assert set(range(n, n + 30)) <= members and len(members) <= 32
    assert clusters[0].severity.value == "warning"
    others = np.setdiff1d(np.arange(n), [30])  # the blob's centre image belongs to it
    assert res.scores["cluster"][n:].min() > res.scores["cluster"][others].max()
    assert not any(f.kind == "bridge" for f in res.findings)  # noise is not a line


def test_clean_pool_has_no_cluster(clean_images):
    res = scan(make_set(clean_images))
    assert not any(f.kind == "cluster" for f in res.findings)


def test_agglomerative_and_graph_methods_agree(with_blob):
    images, n = with_blob
    feats = build_features(images[n - 300 :])
    g = knn_graph(feats.projected, 16, use_gpu=False)
    a = find_clusters(g, ClusterConfig(method="graph"))[0]
    b = find_clusters(g, ClusterConfig(method="agglomerative"))[0]
    assert [c.members.tolist() for c in a] == [c.members.tolist() for c in b] and len(a) == 1


def test_unknown_method_is_rejected(clean_images):
    g = knn_graph(build_features(clean_images[:50]).projected, 5, use_gpu=False)
    with pytest.raises(InvalidParameterError, match="'method' parameter of ClusterConfig"):
        find_clusters(g, ClusterConfig(method="ward"))
