"""The ``path`` detector: bridges that are smooth but not straight, or roughened against the line
test, in a real pool (1997 images: Fashion-MNIST fixture + upscaled digits). Bridges are built
here (tests never import redteam)."""

from __future__ import annotations

import numpy as np
import pytest

from audit.data.imageset import ImageSet
from audit.errors import InvalidParameterError
from audit.scan.pipeline import ScanConfig, scan
from scan_helpers import make_set

N = 24


def _used(fashion, a=5, b=0, c=8):
    return [int(np.flatnonzero(fashion[1] == k)[1]) for k in (a, b, c)]


def _pair(fashion):
    """x', x* and a third image z, float64; they are left out of the pool (``_pool``), so the
    bridge's ends are the only copies of them."""
    return tuple(fashion[0][i].astype(np.float64) for i in _used(fashion))


def _pool(clean_images, fashion):
    keep = np.setdiff1d(np.arange(len(clean_images)), _used(fashion))  # the fixture comes first
    return clean_images[keep]


def _shift(img, dy, dx):
    out = np.zeros_like(img)
    h, w = img.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = img[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _curve(fashion, kind: str, rng):
    xs, xt, z = _pair(fashion)
    a = np.linspace(0, 1, N)[:, None, None, None]
    if kind == "bezier":  # through a third natural image: on a parabola, not a line
        x = (1 - a) ** 2 * xs + 2 * a * (1 - a) * z + a**2 * xt
    else:
        x = (1 - a) * xs + a * xt
    if kind == "noise":
        x = x + rng.normal(0, 8, x.shape)
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if kind == "shift":
        out = np.stack([_shift(im, *rng.integers(-2, 3, 2)) for im in out])
    return out, np.linspace(0, 1, N)


def _found(res, kind, first, last):
    return [f for f in res.findings if f.kind == kind and {m.index for m in f.members} & set(range(first, last))]


@pytest.mark.parametrize("kind", ["bezier", "noise", "shift"])
def test_roughened_and_curved_bridges_are_found_as_one_ordered_path(clean_images, fashion, kind):
    rng = np.random.default_rng(1)
    bridge, alpha = _curve(fashion, kind, rng)
    clean = _pool(clean_images, fashion)
    n0 = len(clean)
    res = scan(make_set(np.concatenate([clean, bridge])))
    paths = _found(res, "path", n0, n0 + N)
    assert len(paths) == 1, [f.summary for f in res.findings]
    f = paths[0]
    got = np.array([m.index for m in f.members])
    assert np.isin(np.arange(n0 + 1, n0 + N - 1), got).mean() >= 0.9  # the interior, ends aside
    assert (got >= n0).mean() >= 0.95  # and hardly a clean image with it
    assert f.severity.value == "error" and "smooth path" in f.summary and "not a straight line" in f.summary
    order = got[got >= n0] - n0
    rho = np.corrcoef(np.argsort(np.argsort(order)), order)[0, 1]
    assert abs(rho) > 0.9  # members in bridge order (either direction)
    if kind == "shift":
        assert f.evidence["views"] == ["invariant"]  # only the shift-tolerant view sees it
    scores = res.scores["path"]
    assert np.median(scores[n0:]) > 2 * np.quantile(scores[:n0], 0.99)  # an honest per-image score


def test_a_clean_pool_has_no_path(clean_images):
    res = scan(make_set(clean_images), ScanConfig(detectors=("path",)))
    assert not [f for f in res.findings if f.kind == "path"]
    assert res.params["stats"]["path"]["candidates"] == 0


def test_a_labeled_source_names_the_end_it_sits_at(clean_images, fashion):
    bridge, _ = _curve(fashion, "bezier", np.random.default_rng(0))
    clean = _pool(clean_images, fashion)
    n0 = len(clean)
    pool = make_set(np.concatenate([clean, bridge[1:]]))  # x' itself is only in the labeled set
    xs = np.clip(np.rint(_pair(fashion)[0]), 0, 255).astype(np.uint8)
    labeled = ImageSet(np.stack([xs, clean_images[0]]), ("sandal/x.png", "other/y.png"), np.array([1, 0]),
                       class_names=("other", "sandal"))
    res = scan(pool, labeled=labeled)
    f = _found(res, "path", n0, n0 + N)[0]
    assert f.members[0].role == "source" and f.members[-1].role == "target"
    assert f.evidence["source_labeled_id"] == "sandal/x.png" and f.evidence["source_class_name"] == "sandal"
    assert f.members[0].index - n0 < 3 and f.members[-1].index - n0 > N - 6  # x' end first


def test_a_straight_bridge_is_left_to_the_bridge_detector(clean_images, fashion):
    xs, xt, _ = _pair(fashion)
    a = np.linspace(0, 1, N)[:, None, None, None]
    bridge = np.clip(np.rint((1 - a) * xs + a * xt), 0, 255).astype(np.uint8)
    clean = _pool(clean_images, fashion)
    n0 = len(clean)
    res = scan(make_set(np.concatenate([clean, bridge])))
    assert _found(res, "bridge", n0, n0 + N) and not _found(res, "path", n0, n0 + N)
    alone = scan(make_set(np.concatenate([clean, bridge])), ScanConfig(detectors=("path",)))
    assert _found(alone, "path", n0, n0 + N)  # it does see it when asked alone


@pytest.mark.parametrize("options, message", [
    ({"views": ("pixels", "fourier")}, "'views' parameter of PathConfig"),
    ({"views": "pixels"}, "'views' parameter of PathConfig"),
    ({"k_mutual": 1}, "'k_mutual' parameter of PathConfig must be an int >= 6"),
    ({"tightness": 0}, "'tightness' parameter of PathConfig"),
    ({"min_size": 2}, "'min_size' parameter of PathConfig"),
    ({"grow_k": -1}, "'grow_k' parameter of PathConfig must be an int >= 0"),
    ({"grow_links": 0}, "'grow_links' parameter of PathConfig must be an int >= 1"),
])
def test_path_options_are_validated(clean_images, options, message):
    with pytest.raises(InvalidParameterError, match=message):
        scan(make_set(clean_images[:20]), ScanConfig(options={"path": options}))


def test_a_curve_is_never_reported_as_a_line(clean_images, fashion):
    bridge, _ = _curve(fashion, "bezier", np.random.default_rng(0))
    clean = _pool(clean_images, fashion)
    res = scan(make_set(np.concatenate([clean, bridge])), ScanConfig(detectors=("bridge",)))
    assert not [f for f in res.findings if f.kind == "bridge"], [f.summary for f in res.findings]
    assert res.params["stats"]["bridge"]["curved_chains"] >= 1  # seen, measured, left to path


def test_a_path_holding_a_straight_piece_is_one_finding_that_includes_it(clean_images, fashion):
    """x' -> z exact, then z -> x* roughened with noise: the line test sees the first segment
    only, the path detector the whole route; one finding remains, naming the piece it holds."""
    xs, xt, z = _pair(fashion)
    t = np.linspace(0, 1, 2 * N)[:, None, None, None]
    hop = np.where(t < 0.5, (1 - 2 * t) * xs + 2 * t * z, (2 - 2 * t) * z + (2 * t - 1) * xt)
    hop[N + 1:] += np.random.default_rng(0).normal(0, 8, hop[N + 1:].shape)
    hop = np.clip(np.rint(hop), 0, 255).astype(np.uint8)
    clean = _pool(clean_images, fashion)
    n0 = len(clean)
    res = scan(make_set(np.concatenate([clean, hop])))
    errors = [f for f in res.findings if f.severity.value == "error"]
    assert [f.kind for f in errors] == ["path"], [f.summary for f in errors]
    got = {m.index for m in errors[0].members}
    assert len(got & set(range(n0, n0 + 2 * N))) >= 0.9 * 2 * N
    pieces = errors[0].evidence["includes"]  # the straight segment, folded in with its size
    assert [p["kind"] for p in pieces] == ["bridge"] and pieces[0]["size"] >= N // 2


def test_two_bridges_from_one_source_stay_two_lines(clean_images, fashion):
    xs, xt, z = _pair(fashion)
    a = np.linspace(0, 1, N)[:, None, None, None]
    v = [np.clip(np.rint((1 - a) * xs + a * end), 0, 255).astype(np.uint8) for end in (xt, z)]
    clean = _pool(clean_images, fashion)
    res = scan(make_set(np.concatenate([clean, *v])))
    errors = [f for f in res.findings if f.severity.value == "error"]
    assert sorted(f.kind for f in errors) == ["bridge", "bridge"]  # two targets, not one V path


def test_a_bridge_is_found_in_the_feature_space_of_a_small_model_trained_here(clean_images, fashion):
    """--features: the penultimate layer of an MLP trained here for a few steps on the fixture's
    labels; the path detector, told to look there only, finds a curved bridge in that space.
    A classifier's space collapses each class, so only the part of the bridge between classes
    stands out (10-12 of 24 measured; an autoencoder's bottleneck keeps 18-19, docs/detectors.md)."""
    import torch

    images, labels = fashion
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    head = torch.nn.Linear(16, 10)
    opt = torch.optim.Adam([*body.parameters(), *head.parameters()], 3e-3)
    x, y = torch.tensor(images, dtype=torch.float32) / 255, torch.tensor(labels)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(head(torch.relu(body(x))), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    bridge, _ = _curve(fashion, "bezier", np.random.default_rng(0))
    clean = _pool(clean_images, fashion)
    pool = np.concatenate([clean, bridge])
    with torch.no_grad():
        emb = body(torch.tensor(pool, dtype=torch.float32) / 255).numpy()
    n0 = len(clean)
    res = scan(make_set(pool), ScanConfig(detectors=("path",), options={"path": {"views": ("features",)}}),
               embeddings=emb)
    found = _found(res, "path", n0, n0 + N)
    assert found and found[0].evidence["views"] == ["features"] and "the given feature space" in found[0].summary
    got = {m.index for f in found for m in f.members}
    assert len(got & set(range(n0, n0 + N))) >= 0.4 * N and got <= set(range(n0, n0 + N))
    without = scan(make_set(pool), ScanConfig(detectors=("path",), options={"path": {"views": ("features",)}}))
    assert without.params["stats"]["path"]["features"] == "unavailable" and not without.findings


def test_copies_neither_switch_the_detector_off_nor_make_a_path(clean_images, fashion):
    """A third of the images with a copy (a fifth of openclipart's do): the pool's reference
    link must come from natural neighbours, and a group of copies is one image, not a path."""
    clean = _pool(clean_images, fashion)
    rng = np.random.default_rng(0)
    copies = clean[rng.choice(len(clean), len(clean) // 3, replace=False)]
    group = np.repeat(clean[:1], 9, axis=0)  # nine copies of one image: links of length 0
    bridge, _ = _curve(fashion, "bezier", rng)
    pool = np.concatenate([clean, copies, group, bridge])
    n0 = len(pool) - N
    res = scan(make_set(pool), ScanConfig(detectors=("path",)))
    assert res.params["stats"]["path"]["pixels"]["reference_r"] > 0.05
    found = [f for f in res.findings if {m.index for m in f.members} & set(range(n0, n0 + N))]
    assert found and len({m.index for m in found[0].members} & set(range(n0, n0 + N))) >= 0.9 * N
    assert not [f for f in res.findings if {m.index for m in f.members} <= set(range(n0 - 9, n0))]


def test_a_chain_shorter_than_natural_neighbours_is_not_a_bridge(clean_images):
    """Faint images (clip-art outlines lost in a thumbnail) exactly on a line whose whole span is
    below the pool's typical neighbour distance: a line, but not between two different images."""
    rng = np.random.default_rng(0)
    base = 128.0 + 3.0 * rng.choice([-1.0, 1.0], (28, 28, 1))  # pixel std 3: not blank
    step = rng.choice([0.0, 1.0], (28, 28, 1))
    faint = np.stack([base + 12.0 * (k / 11) * step for k in range(12)])  # span 12·√392 ≈ 240 px
    faint = np.clip(np.rint(faint), 0, 255).astype(np.uint8)
    res = scan(make_set(np.concatenate([clean_images, faint])), ScanConfig(detectors=("bridge",)))
    stats = res.params["stats"]["bridge"]
    assert not [f for f in res.findings if f.kind == "bridge"] and stats["short_chains"] >= 1
    lenient = scan(make_set(np.concatenate([clean_images, faint])),
                   ScanConfig(detectors=("bridge",), options={"bridge": {"min_span": 0.0}}))
    assert [f for f in lenient.findings if f.kind == "bridge"]  # the chain is there: span decides


@pytest.mark.parametrize("links, whole", [({"k_link": 2, "k_mutual": 2}, False), ({"k_link": 3, "k_mutual": 3}, True)])
def test_a_found_path_grows_by_aligned_distance_to_what_its_links_missed(clean_images, fashion, links, whole):
    """With few links per image the mutual graph proposes only part of a shifted bridge (as the
    |FFT| neighbours do in a dense pool: 11 and 21 of 24 images here); growth adds the members
    tight, in aligned distance, to two of the path's own, and no natural image."""
    bridge, _ = _curve(fashion, "shift", np.random.default_rng(1))
    clean = _pool(clean_images, fashion)
    n0 = len(clean)
    pool = make_set(np.concatenate([clean, bridge]))
    inside = set(range(n0, n0 + N))

    def members(options):
        res = scan(pool, ScanConfig(options={"path": options}))
        return {m.index for f in _found(res, "path", n0, n0 + N) for m in f.members}, res

    without, _ = members(links | {"grow_k": 0})
    grown, res = members(links)
    assert 0 < len(without & inside) < len(grown & inside)
    assert grown <= inside  # no clean image joins
    if whole:
        assert grown == inside
    joined = sorted(grown - without)
    assert np.all(res.scores["path"][joined] > 1.0)  # joined members score as tight images
