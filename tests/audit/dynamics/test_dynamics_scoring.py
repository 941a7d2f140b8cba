"""The score registry, the flagging rule, attack instances, and the synthetic validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from audit.dynamics import SCORES, DynamicsConfig, flag_outliers, score_predictions, validate_predictions
from audit.dynamics.config import DEFAULT_SCORE, ScoreOutput
from audit.dynamics.instances import build_instances
from audit.dynamics.scoring import REFERENCE_SCORE
from audit.errors import InvalidParameterError, UnknownNameError
from audit.findings import Severity
from simulate import SimConfig, simulate


@pytest.fixture(scope="module")
def sim():
    return simulate(SimConfig(n_clean=1000, bridge=50, records=60, seed=3))


def test_registry_names_and_unknown_name():
    assert DEFAULT_SCORE in SCORES and REFERENCE_SCORE in SCORES and DynamicsConfig().score == DEFAULT_SCORE
    for name in SCORES:
        assert name.replace("_", "").isalnum() and name == name.lower()  # one key convention: file-name words
        assert callable(SCORES.get(name).fn) and SCORES.get(name).min_scale > 0
    with pytest.raises(UnknownNameError, match=f"Unknown dynamics score 'flipchain'. Available: {', '.join(SCORES)}."):
        SCORES.get("flipchain")


def test_config_validates_at_the_boundary():
    with pytest.raises(InvalidParameterError, match="'window' parameter of DynamicsConfig"):
        DynamicsConfig(window=(5, 2))
    with pytest.raises(InvalidParameterError, match="'knn' parameter of DynamicsConfig must be one of 'auto', 'ivf', 'flat'. Got"):
        DynamicsConfig(knn="hnsw")


def test_flag_rule_passes_a_pool_without_outliers():
    rng = np.random.default_rng(0)
    s = rng.normal(3.0, 0.5, 5000)  # log-scores of a clean pool: no outliers
    flagged, thr = flag_outliers(s)
    assert not flagged.any() and thr > s.max()
    flagged, _ = flag_outliers(np.full(100, 2.0))  # all alike: MAD 0, the floor keeps it quiet
    assert not flagged.any()


def test_flag_rule_catches_outliers_and_honours_the_budget():
    rng = np.random.default_rng(1)
    s = np.concatenate([rng.uniform(2.0, 4.0, 5000), [12.0, 11.0, 10.0]])  # bounded: no natural outliers
    flagged, _ = flag_outliers(s)
    assert set(np.flatnonzero(flagged)) == {5000, 5001, 5002}
    flagged, _ = flag_outliers(s, DynamicsConfig(max_flagged=2))
    assert set(np.flatnonzero(flagged)) == {5000, 5001}


def test_instances_group_order_and_severity():
    # 5 examples; 0-1-2 linked (a chain flipping to class 1 in order 2, 0, 1), 3 alone, 4 clean
    k = 6
    p = np.full((5, k, 2), 0.5, dtype=np.float32)
    for j, flip in [(2, 1), (0, 2), (1, 3), (3, 2), (4, 0)]:
        p[j, flip:] = [0.1, 0.9]
        p[j, :flip] = [0.9, 0.1]
    pred = validate_predictions(p, [f"u{i}" for i in range(5)], np.arange(k) * 100)
    nbr = np.array([[1, -1], [2, -1], [0, -1], [-1, -1], [0, -1]])
    out = ScoreOutput("test", np.ones(5), np.array([5.0, 6.0, 7.0, 9.0, 0.0]), nbr)
    findings = build_instances(pred, out, np.array([True, True, True, True, False]), 4.0)
    assert [f.severity for f in findings] == [Severity.WARNING, Severity.ERROR]  # ordered by score
    chain = findings[1]
    assert [m.id for m in chain.members] == ["u2", "u0", "u1"]
    assert chain.members[-1].role == "target" and chain.members[0].role == "source"
    assert chain.evidence["final_class"] == 1
    assert chain.evidence["flip_steps"] == pytest.approx([50.0, 150.0, 250.0])
    assert np.array(chain.evidence["trajectory"]).shape == (3, k)
    json.dumps(chain.to_json())


def test_score_predictions_finds_the_planted_bridge_with_a_pixel_term(sim):
    pred = validate_predictions(sim.probs, sim.ids)
    config = DynamicsConfig(score="chain", motion_dedupe=0.05)  # the simulation's duplicate groups share noise
    res = score_predictions(pred, config, features=sim.features, root="pool/")
    assert res.tool == "dynamics" and res.root == "pool/" and res.scores["dynamics"].shape == (len(sim.ids),)
    errors = [f for f in res.findings if f.severity is Severity.ERROR]
    assert len(errors) == 1
    bridge_ids = {sim.ids[i] for i in sim.bridge}
    members = {m.id for m in errors[0].members}
    # seed 3: all 50 members and no other image in the one error finding
    assert len(members & bridge_ids) >= 0.8 * len(bridge_ids) and len(members - bridge_ids) <= 2
    target = [m.id for m in errors[0].members if m.role == "target"]
    assert target == [sim.ids[sim.bridge[-1]]]  # x* flipped last
    doc = json.loads(json.dumps(res.to_json()))
    assert doc["tool"] == "dynamics" and doc["counts"]["dynamics"]["error"] == 1


def test_a_clean_pool_passes_the_default_score():
    clean = simulate(SimConfig(n_clean=1000, bridge=0, records=60, seed=4))
    res = score_predictions(validate_predictions(clean.probs, clean.ids), DynamicsConfig(motion_dedupe=0.05),
                            features=clean.features)
    assert res.params["score"] == DEFAULT_SCORE and res.findings == () and res.worst() is None


@pytest.mark.parametrize("name", SCORES.names())
def test_every_score_runs_on_the_simulation(sim, name):
    """Every registered score: finite suspicion per image, its neighbours other real examples,
    the same result twice; the default ranks the planted bridge on top."""
    pred = validate_predictions(sim.probs, sim.ids)
    res = score_predictions(pred, DynamicsConfig(score=name), features=sim.features)
    s = res.scores["dynamics"]
    assert s.shape == (len(sim.ids),) and np.isfinite(s).all()
    out = SCORES.get(name).fn(sim.probs, DynamicsConfig(score=name), sim.features)
    nbr = out.neighbors
    assert nbr.ndim == 2 and ((nbr >= -1) & (nbr < len(sim.ids))).all()
    assert not (nbr == np.arange(len(sim.ids))[:, None]).any()  # never its own neighbour
    np.testing.assert_array_equal(score_predictions(pred, DynamicsConfig(score=name), features=sim.features)
                                  .scores["dynamics"], s)
    if name == DEFAULT_SCORE:
        assert roc_auc_score(sim.is_bridge, s) > 0.95  # 0.974 on this seed
