"""The shared kNN graph (audit.neighbors) against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from audit.errors import InvalidParameterError
from audit.neighbors import knn_graph


def test_exact_graph_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    g = knn_graph(x, k=7, use_gpu=False)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    want = np.argsort(d2, axis=1)[:, :7]
    assert g.kind == "flat"
    assert g.indices.shape == (300, 7) and g.indices.dtype == np.int64
    np.testing.assert_array_equal(g.indices, want)
    np.testing.assert_allclose(g.sqdist, np.take_along_axis(d2, want, 1), rtol=1e-4, atol=1e-3)
    assert not (g.indices == np.arange(300)[:, None]).any()


def test_ivf_graph_finds_most_true_neighbours_and_sparse_form_is_symmetric():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    g = knn_graph(x, k=5, exact_max=500, use_gpu=False)
    assert g.kind == "ivf"
    exact = knn_graph(x, k=5, use_gpu=False)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(g.indices, exact.indices)])
    assert recall > 0.9
    m = g.to_sparse()
    assert m.shape == (2000, 2000) and (m != m.T).nnz == 0


def test_exact_duplicates_never_list_themselves_and_tiny_pools_are_padded():
    x = np.zeros((3, 4), np.float32)
    g = knn_graph(x, k=5, use_gpu=False)
    assert g.indices.shape == (3, 5)
    for i in range(3):
        assert i not in g.indices[i]
        assert set(g.indices[i][g.indices[i] >= 0]) == set(range(3)) - {i}


def test_bad_k_is_rejected_in_sklearn_form():
    with pytest.raises(InvalidParameterError, match="The 'k' parameter of knn_graph must be an int >= 1. Got 0"):
        knn_graph(np.zeros((4, 2), np.float32), k=0)
