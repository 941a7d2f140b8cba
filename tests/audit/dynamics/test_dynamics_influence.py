"""Paper 5.3's influence, checked by hand and against a brute-force N×N computation; the search."""

from __future__ import annotations

import numpy as np
import pytest

from audit.dynamics import DynamicsConfig, validate_predictions
from audit.dynamics.influence import avg_influence, influence_pair, mu_pair
from audit.dynamics.knn import nearest


def random_probs(n: int, k: int, c: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = np.cumsum(rng.normal(0, 0.5, (n, k, c)), axis=1)  # smooth-ish trajectories
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def brute_avg_influence(probs: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Straight from the definition, with the full N×N matrix (fine for tiny N)."""
    n = len(probs)
    m = np.array([[influence_pair(probs, i, j) for j in range(n)] for i in range(n)])
    np.fill_diagonal(m, np.inf)  # v != u
    order = np.argsort(m, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(m, order, 1).mean(1), order


def test_influence_by_hand_k3_c2():
    # K = 3 records, C = 2 classes. μ_i^(0,1) = [f1-f0, f1]; μ_j^(1,2) = [f2-f1, f2].
    probs = np.array([
        [[0.5, 0.5], [0.7, 0.3], [0.9, 0.1]],  # u_0
        [[0.5, 0.5], [0.5, 0.5], [0.8, 0.2]],  # u_1
    ], dtype=np.float32)
    # μ_0^(0,1) = [0.2, -0.2, 0.7, 0.3];  μ_1^(1,2) = [0.3, -0.3, 0.8, 0.2]
    # Influence(u_0, u_1) = 0.1² + 0.1² + 0.1² + 0.1² = 0.04
    assert influence_pair(probs, 0, 1) == pytest.approx(0.04, abs=1e-6)
    # μ_1^(0,1) = [0.0, 0.0, 0.5, 0.5];  μ_0^(1,2) = [0.2, -0.2, 0.9, 0.1]
    # Influence(u_1, u_0) = 0.04 + 0.04 + 0.16 + 0.16 = 0.40 (not symmetric)
    assert influence_pair(probs, 1, 0) == pytest.approx(0.40, abs=1e-6)
    q, x = mu_pair(probs)
    np.testing.assert_allclose(q[0], [0.2, -0.2, 0.7, 0.3], atol=1e-6)
    np.testing.assert_allclose(x[1], [0.3, -0.3, 0.8, 0.2], atol=1e-6)


def test_a_trajectory_followed_one_record_later_has_zero_influence():
    rng = np.random.default_rng(1)
    base = random_probs(1, 8, 4, seed=1)[0]  # u_i: K = 8 records
    follower = np.concatenate([base[:1], base[:-1]])  # u_j(k+1) = u_i(k): one record behind
    probs = np.stack([base, follower])
    assert influence_pair(probs, 0, 1) == pytest.approx(0.0, abs=1e-10)
    # perturb only u_j's last record: only the f_{K-1} term and the last delta change
    probs[1, -1] = rng.dirichlet(np.ones(4))
    q, x = mu_pair(probs)
    expected = ((base[-2] - base[-3]) - (probs[1, -1] - probs[1, -2])) ** 2
    expected = expected.sum() + ((base[-2] - probs[1, -1]) ** 2).sum()
    assert influence_pair(probs, 0, 1) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("method", ["flat", "ivf", "auto"])
def test_faiss_avg_influence_equals_brute_force(method):
    """ivf with every row a candidate and all 15 axes kept: nothing left to approximate."""
    probs = random_probs(60, 6, 3, seed=2)
    want, order = brute_avg_influence(probs)
    out = avg_influence(probs, DynamicsConfig(knn=method, pca_dim=15, candidates=60))
    assert out.stats["method"] == ("flat" if method == "auto" else method)
    np.testing.assert_allclose(out.value, want, rtol=1e-4)
    assert (np.sort(out.neighbors, 1) == np.sort(order, 1)).mean() > 0.99  # ties may swap
    np.testing.assert_allclose(out.suspicion, -np.log(want + 1e-12), rtol=1e-4)


def test_self_is_excluded_even_when_own_shifted_vector_is_closest():
    # a constant trajectory has μ^(0,K-2) == μ^(1,K-1): Influence(u, u) = 0, but v != u
    probs = random_probs(20, 5, 3, seed=3)
    probs[0] = np.array([0.6, 0.3, 0.1], dtype=np.float32)
    out = avg_influence(probs, DynamicsConfig(knn="flat"))
    assert 0 not in out.neighbors[0]
    assert out.value[0] > 1e-3


def test_the_approximate_search_never_underestimates():
    probs = random_probs(300, 12, 4, seed=4)
    exact = avg_influence(probs, DynamicsConfig(knn="flat"))
    ivf = avg_influence(probs, DynamicsConfig(knn="ivf", pca_dim=8, candidates=16))
    assert ivf.stats["method"] == "ivf" and ivf.stats["pca_dim"] == 8 and ivf.stats["candidates"] == 16
    assert np.all(ivf.value >= exact.value * (1 - 1e-5))  # exact distances to real neighbours
    assert np.corrcoef(np.log(ivf.value), np.log(exact.value))[0, 1] > 0.95


def test_nearest_is_brute_force_without_self():
    rng = np.random.default_rng(5)
    n = 40
    q = rng.normal(size=(n, 6)).astype(np.float32)
    x = q + rng.normal(0, 0.5, size=(n, 6)).astype(np.float32)  # u's own row is close: it must be left out
    d = ((q[:, None].astype(np.float64) - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    want = np.sort(d, 1)[:, :4]
    for method in ("flat", "ivf"):
        dist, nbr, _ = nearest(q, x, 4, method=method, dim=6, candidates=39)
        np.testing.assert_allclose(dist, want, rtol=1e-5)
        np.testing.assert_allclose(np.take_along_axis(d, nbr, 1), dist, rtol=1e-5)  # each one's own distance
        assert not (nbr == np.arange(n)[:, None]).any()
    dist, nbr, _ = nearest(q[:3], x[:3], 4)  # fewer other rows than k: padded
    assert (nbr[:, 2:] == -1).all() and np.isinf(dist[:, 2:]).all() and (nbr[:, :2] >= 0).all()


def test_window_scores_only_the_chosen_records():
    from audit.dynamics import score_predictions

    probs = random_probs(50, 10, 3, seed=6)
    pred = validate_predictions(probs, [f"u{i}" for i in range(50)])
    full = score_predictions(pred, DynamicsConfig(score="influence", window=(2, 7)))
    direct = avg_influence(probs[:, 2:8], DynamicsConfig())
    np.testing.assert_allclose(full.scores["dynamics"], direct.suspicion)
    assert full.params["records"] == 6
