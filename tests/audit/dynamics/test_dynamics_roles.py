"""Source and target of a dynamics instance sit where they are (issue #15): a stalled attack, where
the x* end keeps its own class from the start and the front stops mid-chain, put ``source`` on
the x* end and ``target`` mid-chain when roles came from flip order; placed along the members'
pixel line with the labeled set, x' is the source and x* the target."""

from __future__ import annotations

import numpy as np

from audit.data.imageset import ImageSet
from audit.dynamics.config import ScoreOutput
from audit.dynamics.instances import build_instances, orient_instances
from audit.dynamics.predictions import validate_predictions

M, K = 12, 8  # bridge members, records


def _stalled_bridge(fashion200):
    """A 12-image bridge x' (pullover, labeled) -> x* (sneaker) in a pool of 20 images, and
    predictions of a stalled attack: members 0-4 (near x') stay y* = 2, members 5-11 end in x*'s
    class 7; the x* end holds 7 from the start, the middle flips to 7 late (the majority class
    of the chain is x*'s own)."""
    imgs = fashion200.images
    x_src, x_tgt = imgs[40].astype(float), imgs[140].astype(float)  # class 2 and class 7
    alphas = np.linspace(0, 1, M)
    bridge = np.clip(np.rint((1 - alphas[:, None, None, None]) * x_src + alphas[:, None, None, None] * x_tgt), 0, 255)
    order = np.random.default_rng(0).permutation(M)  # pool rows shuffled: position carries no signal
    ids = [f"u{j:02d}.png" for j in range(M)]
    clean = imgs[[0, 21, 61, 81, 101, 121, 161, 181]]
    pool = ImageSet(np.concatenate([bridge[order].astype(np.uint8), clean]),
                    tuple(ids[j] for j in order) + tuple(f"c{i}.png" for i in range(8)))
    probs = np.full((len(pool), K, 10), 0.01, np.float32)
    for r, j in enumerate(order):
        if j < 5:
            probs[r, :, 2] = 0.91
        else:
            flip = 0 if j >= 9 else 1 + (9 - j)  # the x* end is 7 all along, the middle later
            probs[r, :flip, 2], probs[r, flip:, 7] = 0.91, 0.91
    for r in range(M, len(pool)):
        probs[r, :, r % 10] = 0.91
    probs /= probs.sum(-1, keepdims=True)
    labeled = ImageSet(np.ascontiguousarray(imgs[[40, 5, 145]]), ("pullover/x.png", "t-shirt/a.png", "sneaker/b.png"),
                       labels=np.array([2, 0, 7]), class_names=("t-shirt", "trouser", "pullover", "dress", "coat",
                                                                 "sandal", "shirt", "sneaker", "bag", "ankle-boot"))
    return pool, probs, labeled, ids


def _instance(pool, probs):
    pred = validate_predictions(probs, pool.ids, np.arange(1, K + 1) * 10)
    n = len(pool)
    nbr = -np.ones((n, 2), np.int64)
    nbr[: M - 1, 0] = np.arange(1, M)  # link the bridge rows into one component
    out = ScoreOutput("chain", np.ones(n), np.r_[np.full(M, 5.0), np.zeros(n - M)], nbr)
    (finding,) = build_instances(pred, out, np.r_[np.ones(M, bool), np.zeros(n - M, bool)], 1.0)
    return finding


def test_flip_order_roles_misplace_a_stalled_bridge(fashion200):
    pool, probs, _, ids = _stalled_bridge(fashion200)
    f = _instance(pool, probs)
    roles = {m.role: m.id for m in f.members if m.role}
    assert f.evidence["final_class"] == 7  # the chain's majority class is x*'s own
    assert roles["source"] in ids[9:] and roles["target"] in ids[5:9]  # the bug: x* end "source", mid "target"


def test_roles_placed_along_the_pixel_line_with_the_labeled_set(fashion200):
    pool, probs, labeled, ids = _stalled_bridge(fashion200)
    f = _instance(pool, probs)
    flips = {m.id: s for m, s in zip(f.members, f.evidence["flip_steps"])}
    (g,) = orient_instances((f,), pool, labeled)
    assert [m.id for m in g.members] == ids  # x' end first, x* end last
    assert g.members[0].role == "source" and g.members[-1].role == "target"
    assert [m.role for m in g.members[1:-1]] == [None] * (M - 2)
    np.testing.assert_allclose([m.alpha for m in g.members], np.linspace(0, 1, M), atol=0.02)
    assert {m.id: s for m, s in zip(g.members, g.evidence["flip_steps"])} == flips  # evidence follows its member
    assert g.evidence["source_labeled_id"] == "pullover/x.png" and g.evidence["source_class_name"] == "pullover"
    assert "to sneaker one after another" in g.summary and f"from '{ids[0]}'" in g.summary
    assert "likely target x*" in g.summary and ids[-1] in g.summary.split("likely target")[0]


def test_without_the_labeled_set_both_ends_are_endpoints(fashion200):
    pool, probs, _, ids = _stalled_bridge(fashion200)
    (g,) = orient_instances((_instance(pool, probs),), pool, None)
    ends = [g.members[0].id, g.members[-1].id]
    assert sorted(ends) == sorted([ids[0], ids[-1]])  # still the chain's two ends, in pixel order
    assert [m.role for m in g.members if m.role] == ["endpoint", "endpoint"]
    assert "needs the labeled set" in g.summary


def test_a_labeled_set_with_no_image_at_either_end_is_said_as_such(fashion200):
    """--labeled was given but neither end sits on one of its images: the summary says so, not
    that the labeled set is missing."""
    pool, probs, labeled, _ = _stalled_bridge(fashion200)
    far = ImageSet(np.ascontiguousarray(fashion200.images[[5, 61]]), ("t-shirt/a.png", "trouser/c.png"),
                   labels=np.array([0, 1]), class_names=labeled.class_names)
    (g,) = orient_instances((_instance(pool, probs),), pool, far)
    assert [m.role for m in g.members if m.role] == ["endpoint", "endpoint"]
    assert "neither end is next to a labeled image" in g.summary
    assert "needs the labeled set" not in g.summary
