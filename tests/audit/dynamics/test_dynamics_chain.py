"""The motion-chain score: its geometry on hand-built points, its chunking, and the planted bridge."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import audit.dynamics.chain as chain
from audit.dynamics import DynamicsConfig, flag_outliers, score_predictions, validate_predictions
from audit.dynamics.chain import betweenness, motion_chain, motions
from audit.errors import InvalidParameterError, PredictionsError
from simulate import SimConfig, simulate


def test_betweenness_is_one_between_opposite_neighbours_and_zero_for_orthogonal_ones():
    line = np.array([[0.0, 0, 0], [1, 0, 0], [-1, 0, 0]], dtype=np.float32)
    star = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    nbr = np.array([[1, 2], [0, 2], [0, 1]])
    assert betweenness(line, nbr)[0] == pytest.approx(1.0)
    assert betweenness(star, nbr)[0] == pytest.approx(0.0, abs=1e-6)
    # an end of the line has both neighbours on one side: cos +1, between -1
    assert betweenness(line, nbr)[1] == pytest.approx(-1.0)
    # padding (-1) and zero-length offsets (an exact duplicate) are ignored; < 2 usable -> -1
    assert betweenness(line, np.array([[1, -1], [0, 2], [0, 1]]))[0] == -1.0
    dup = np.array([[0.0, 0, 0], [0, 0, 0], [-1, 0, 0]], dtype=np.float32)
    assert betweenness(dup, nbr)[0] == -1.0


def test_motions_are_log_probability_steps():
    p = np.array([[[0.5, 0.5], [0.9, 0.1], [0.99, 0.01]]], dtype=np.float32)
    m = motions(p, 1e-4)
    assert m.shape == (1, 4)
    np.testing.assert_allclose(m[0, :2], np.log(np.array([0.9, 0.1]) + 1e-4) - np.log(0.5 + 1e-4), rtol=1e-5)


def test_chunked_computation_matches_one_pass(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    nbr = np.stack([rng.choice(np.delete(np.arange(300), i), 6, replace=False) for i in range(300)])
    whole = betweenness(x, nbr)
    monkeypatch.setattr(chain, "_CHUNK", 7)
    np.testing.assert_allclose(betweenness(x, nbr), whole, rtol=1e-6)


@pytest.fixture(scope="module")
def sim():
    return simulate(SimConfig(n_clean=1000, bridge=50, records=60, seed=3))


@pytest.mark.parametrize("pixels", [False, True])
def test_the_planted_bridge_ranks_on_top(sim, pixels):
    out = motion_chain(sim.probs, DynamicsConfig(score="chain"), sim.features if pixels else None)
    assert out.suspicion.shape == (len(sim.ids),) and np.isfinite(out.suspicion).all()
    assert roc_auc_score(sim.is_bridge, out.suspicion) > 0.95  # 0.97 on this seed
    assert out.stats["smooth_space"] == ("features" if pixels else "motion")


def test_near_duplicate_groups_flag_unless_deduplicated():
    clean = simulate(SimConfig(n_clean=1000, bridge=0, records=60, seed=4))
    plain = DynamicsConfig(score="chain")
    deduped = DynamicsConfig(score="chain", motion_dedupe=0.05)
    loud, _ = flag_outliers(motion_chain(clean.probs, plain).suspicion, plain)
    quiet, _ = flag_outliers(motion_chain(clean.probs, deduped).suspicion, deduped)
    # the simulation's copies share their motion noise: without deduplication they are the flags
    assert loud.sum() > 20 and (loud <= clean.is_duplicate).all()
    assert quiet.sum() == 0


def test_chain_through_score_predictions_groups_the_bridge(sim):
    res = score_predictions(validate_predictions(sim.probs, sim.ids), DynamicsConfig(score="chain"),
                            features=sim.features)
    flagged = set(res.flagged())
    bridge = {sim.ids[i] for i in sim.bridge}
    assert len(flagged & bridge) >= 0.8 * len(bridge)
    assert max((len({m.id for m in f.members} & bridge) for f in res.findings), default=0) >= 10


def test_bad_features_and_parameters():
    p = np.full((5, 4, 2), 0.5, dtype=np.float32)
    for name in ("chain", "influence"):
        with pytest.raises(PredictionsError, match="needs at least 2"):
            score_predictions(validate_predictions(p[:1], ["only.png"]), DynamicsConfig(score=name))
    two = score_predictions(validate_predictions(p[:2], ["a.png", "b.png"]), DynamicsConfig(score="chain"))
    assert two.scores["dynamics"].tolist() == [-1.0, -1.0] and two.findings == ()
    with pytest.raises(PredictionsError, match="features have 3 rows for 5"):
        motion_chain(p, DynamicsConfig(score="chain"), np.zeros((3, 2)))
    with pytest.raises(InvalidParameterError, match="motion_dedupe"):
        DynamicsConfig(motion_dedupe=-1.0)
    with pytest.raises(InvalidParameterError, match="motion_eps"):
        DynamicsConfig(motion_eps=0.0)
