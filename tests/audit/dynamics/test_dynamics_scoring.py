"""The score registry, the flagging rule, attack instances, and the synthetic validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from audit.dynamics import SCORES, DynamicsConfig, flag_outliers, score_predictions, validate_predictions
from audit.dynamics.config import ScoreOutput
from audit.dynamics.flipchain import flip_times
from audit.dynamics.instances import build_instances
from audit.dynamics.simulate import SimConfig, simulate
from audit.errors import InvalidParameterError, UnknownNameError
from audit.findings import Severity


@pytest.fixture(scope="module")
def sim():
    return simulate(SimConfig(n_clean=1000, bridge=50, records=60, seed=3))


def test_registry_names_and_unknown_name():
    assert SCORES.names() == ["influence", "lagged-influence", "flip-chain", "chain"]
    with pytest.raises(UnknownNameError, match="Unknown dynamics score 'flipchain'. Available: influence, "):
        SCORES.get("flipchain")


def test_config_validates_at_the_boundary():
    with pytest.raises(InvalidParameterError, match="'window' parameter of DynamicsConfig"):
        DynamicsConfig(window=(5, 2))
    with pytest.raises(InvalidParameterError, match="'knn' parameter of DynamicsConfig must be one of auto"):
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


def test_flip_times_interpolate_the_crossing():
    p = np.array([[[0.8, 0.2], [0.6, 0.4], [0.4, 0.6], [0.1, 0.9]]], dtype=np.float32)
    tau, final, before = flip_times(p)
    # margin of class 1: -0.6, -0.2, +0.2, +0.8: crosses 0 halfway between records 1 and 2
    assert tau[0] == pytest.approx(1.5) and final[0] == 1 and before[0] == 0


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
    res = score_predictions(pred, DynamicsConfig(score="flip-chain"), features=sim.features, root="pool/")
    assert res.tool == "dynamics" and res.root == "pool/" and res.scores["dynamics"].shape == (len(sim.ids),)
    errors = [f for f in res.findings if f.severity is Severity.ERROR]
    assert len(errors) == 1
    bridge_ids = {sim.ids[i] for i in sim.bridge}
    members = {m.id for m in errors[0].members}
    # members that flip with the bulk of y* are not "late" and may be missed (seed 3: 43 of 50)
    assert len(members & bridge_ids) >= 0.8 * len(bridge_ids) and len(members - bridge_ids) <= 2
    target = [m.id for m in errors[0].members if m.role == "target"]
    assert target == [sim.ids[sim.bridge[-1]]]  # x* flipped last
    doc = json.loads(json.dumps(res.to_json()))
    assert doc["tool"] == "dynamics" and doc["counts"]["dynamics"]["error"] == 1


def test_a_clean_pool_passes_flip_chain():
    clean = simulate(SimConfig(n_clean=1000, bridge=0, records=60, seed=4))
    res = score_predictions(validate_predictions(clean.probs, clean.ids), DynamicsConfig(score="flip-chain"),
                            features=clean.features)
    assert res.findings == () and res.worst() is None


@pytest.mark.parametrize("name", ["influence", "lagged-influence", "flip-chain", "chain"])
def test_every_score_runs_on_the_simulation(sim, name):
    res = score_predictions(validate_predictions(sim.probs, sim.ids), DynamicsConfig(score=name),
                            features=sim.features)
    s = res.scores["dynamics"]
    assert np.isfinite(s).all()
    auroc = roc_auc_score(sim.is_bridge, s)
    assert 0.0 <= auroc <= 1.0  # the table of AUROCs lives in benchmarks/bench_influence.py
    if name == "flip-chain":
        assert auroc > 0.85  # 0.90 on this seed, 1.0 on seeds 0-2 (benchmarks/bench_influence.py)
