"""redteam.inject: the poisoned dataset, its manifest, determinism and validation (paper 3.1)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from audit.errors import DataError, InvalidParameterError, UnknownNameError
from audit.data.load import load_dataset
from audit.groundtruth import read_manifest
from redteam.inject import InjectConfig, inject, write_poisoned


@pytest.fixture(scope="module")
def splits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def written(splits, tmp_path_factory):
    out = tmp_path_factory.mktemp("inj") / "out"
    ds = inject(splits, InjectConfig(dataset="digits", ratio=0.02, seed=0))
    write_poisoned(ds, out)
    return ds, out


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        arr = np.asarray(im)
    return arr[..., None] if arr.ndim == 2 else arr


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_sizes_follow_the_ratio_of_the_clean_pool(splits, written):
    ds, _ = written
    m = ds.manifest
    assert m.labeled_size == 40 and len(ds.labeled) == 40
    assert np.bincount(ds.labeled.labels).tolist() == [4] * 10
    assert m.unlabeled_pool_size == len(splits.train) - 40
    assert m.n == round(0.02 * m.unlabeled_pool_size) == int(ds.is_poison.sum())
    assert len(ds.unlabeled) == m.unlabeled_size == m.unlabeled_pool_size + m.n
    assert len(ds.test) == len(splits.test)


def test_n_is_at_least_two_and_count_is_exact(splits):
    tiny = inject(splits, InjectConfig(dataset="digits", ratio=1e-6))
    assert tiny.manifest.n == 2 and tiny.manifest.ratio == 1e-6
    exact = inject(splits, InjectConfig(dataset="digits", count=7))
    assert exact.manifest.n == 7 and exact.manifest.count == 7 and exact.manifest.ratio is None


def test_target_source_and_label_are_consistent(splits, written):
    ds, out = written
    m = ds.manifest
    assert m.target.original_id == splits.test.ids[m.target.index]
    assert m.target.label == splits.test.labels[m.target.index] != m.target_label
    assert m.source.label == m.target_label == ds.labeled.labels[m.source.index]
    assert m.source.path == f"labeled/{ds.labeled.ids[m.source.index]}"
    np.testing.assert_array_equal(_png(out / m.target.path), splits.test.images[m.target.index])
    src = splits.train.images[splits.train.ids.index(m.source.original_id)]
    np.testing.assert_array_equal(_png(out / m.source.path), src)


def test_manifest_lists_exactly_the_inserted_files(splits, written):
    ds, out = written
    m = ds.manifest
    folder = {p.name: _png(p).tobytes() for p in (out / "unlabeled").iterdir()}
    # The pool on disk minus the clean pool (as a multiset of image contents) is the poison.
    clean = Counter(splits.train.images[splits.train.ids.index(o)].tobytes()
                    for o, p in zip(ds.origin, ds.is_poison) if not p)
    assert sum(clean.values()) == m.unlabeled_pool_size
    extra = Counter(folder.values()) - clean
    assert extra == Counter(folder[p] for p in m.poisoned)
    assert sorted(folder) == sorted(ds.unlabeled.ids)
    assert set(m.poisoned) == {i for i, p in zip(ds.unlabeled.ids, ds.is_poison) if p}
    assert [p.path for p in m.points] == list(m.poisoned)


def test_poisoned_files_lie_on_the_bridge_in_alpha_order(written):
    ds, out = written
    m = ds.manifest
    xs = _png(out / m.source.path).astype(np.float64)
    xt = _png(out / m.target.path).astype(np.float64)
    alphas = [p.alpha for p in m.points]
    assert alphas[0] == 0.0 and alphas[-1] == 1.0 and alphas == sorted(alphas)
    for p in m.points:
        x = _png(out / "unlabeled" / p.path).astype(np.float64)
        assert np.max(np.abs(x - ((1 - p.alpha) * xs + p.alpha * xt))) <= 0.5


def test_unlabeled_names_leak_nothing(written):
    ds, out = written
    names = sorted(p.name for p in (out / "unlabeled").iterdir())
    assert all(re.fullmatch(r"[0-9a-f]{16}\.png", n) for n in names)
    rank = {n: i for i, n in enumerate(names)}
    positions = sorted(rank[p] for p in ds.manifest.poisoned)
    assert positions != list(range(len(names) - len(positions), len(names)))  # not appended at the end
    assert positions != list(range(len(positions)))


def test_manifest_json_schema_and_round_trip(written):
    ds, out = written
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["schema_version"] == 1
    for key in ("poisoned", "points", "source", "target", "target_label", "density", "seed", "attack",
                "ratio", "count", "n", "unlabeled_pool_size", "config"):
        assert key in raw
    assert raw["density"] == "1.5-x" and raw["attack"] == "linear" and raw["config"]["ratio"] == 0.02
    assert set(raw["points"][0]) == {"path", "alpha", "path_id", "role"}
    back = read_manifest(out)
    assert back == ds.manifest
    # what audit reads from it: the poisoned ids of the written pool, x*'s row in the written test set
    assert back.poison_ids == set(ds.unlabeled.ids[i] for i in np.flatnonzero(ds.is_poison))
    assert back.target_index(ds.test) == ds.manifest.target.index
    assert back.target_index(ds.test.subset(np.arange(ds.manifest.target.index))) is None


@pytest.mark.parametrize("text, why", [(None, "FileNotFoundError"), ("{", "JSONDecodeError"),
                                       ('{"schema_version": 1}', "KeyError"),
                                       ('{"schema_version": 2}', "schema version 2 is not 1")])
def test_an_unreadable_manifest_is_one_data_error(tmp_path, text, why):
    if text is not None:
        (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(DataError, match=re.escape(why)):
        read_manifest(tmp_path / "manifest.json")


def test_same_seed_same_bytes_other_seed_other_files(splits, written, tmp_path):
    _, out = written
    again = tmp_path / "again"
    write_poisoned(inject(splits, InjectConfig(dataset="digits", ratio=0.02, seed=0)), again)
    assert _tree(again) == _tree(out)
    other = inject(splits, InjectConfig(dataset="digits", ratio=0.02, seed=1))
    assert other.manifest.target != read_manifest(out).target
    assert not set(other.unlabeled.ids) & {p.name for p in (out / "unlabeled").iterdir()}  # the key changes names


def test_fixing_the_target_keeps_the_labeled_choice(splits, written):
    ds, _ = written
    fixed = inject(splits, InjectConfig(dataset="digits", ratio=0.02, target=3, target_label=1))
    assert fixed.labeled.ids == ds.labeled.ids
    assert fixed.manifest.target.index == 3 and fixed.manifest.target_label == 1


def test_unlabeled_subsample(splits):
    ds = inject(splits, InjectConfig(dataset="digits", unlabeled=500, ratio=0.01))
    assert ds.manifest.unlabeled_pool_size == 500 and ds.manifest.n == 5 and len(ds.unlabeled) == 505


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": 2.0}, r"The 'ratio' parameter of inject must be a float in \(0, 0.5\]. Got 2.0 instead."),
        ({"ratio": 0.0}, r"'ratio' parameter of inject must be a float in \(0, 0.5\]"),
        ({"ratio": True}, r"'ratio' parameter"),
        ({"count": 1}, r"'count' parameter of inject must be an int >= 2"),
        ({"ratio": 0.1, "count": 5}, r"alternatives"),
        ({"labels_per_class": 0}, r"'labels_per_class' parameter"),
        ({"seed": -1}, r"'seed' parameter"),
    ],
)
def test_config_rejects_bad_scalars(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        InjectConfig(dataset="digits", **kwargs)


def test_config_rejects_unknown_density_and_attack():
    with pytest.raises(UnknownNameError, match=r"Unknown density 'foo'. Available: .*1\.5-x"):
        InjectConfig(dataset="digits", density="foo")
    with pytest.raises(UnknownNameError, match="Unknown attack 'gna'. Available: linear, zero_knowledge, gan"):
        InjectConfig(dataset="digits", attack="gna")


def test_data_dependent_checks_name_what_was_wrong(splits):
    true = int(splits.test.labels[0])
    other = (true + 1) % 10
    cases = [
        ({"target": 10_000},
         rf"'target' parameter of inject must be an index into the test split, in \[0, {len(splits.test) - 1}\]"),
        ({"target": 0, "target_label": true}, rf"other than the target's true label {true} .*Got {true} instead"),
        ({"target": 0, "target_label": other, "source": 0 if other != 0 else 4},
         rf"labeled example of class {other} \(labeled indices {4 * other}..{4 * other + 3}\)"),
        ({"labels_per_class": 1000}, r"at most \d+ \(the size of the smallest class"),
        ({"unlabeled": 10**6}, r"'unlabeled' parameter of inject must be an int in \[1, \d+\]"),
        ({"target_label": 10}, r"one of the classes"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidParameterError, match=message):
            inject(splits, InjectConfig(dataset="digits", **kwargs))


def test_dataset_without_test_split_is_a_data_error(splits):
    from audit.data.imageset import Splits

    with pytest.raises(DataError, match="test split"):
        inject(Splits(train=splits.train), InjectConfig(dataset="digits"))


def test_force_replaces_an_earlier_output_as_a_whole(splits, tmp_path):
    ds = inject(splits, InjectConfig(dataset="digits", count=3, unlabeled=50))
    out = tmp_path / "o"
    write_poisoned(ds, out)
    fresh = _tree(out)
    (out / "unlabeled" / "stale.png").write_bytes(b"x")  # an image an earlier run left in the pool
    with pytest.raises(InvalidParameterError, match="holds an earlier inject output \\(not empty\\); pass --force"):
        write_poisoned(ds, out)
    assert (out / "unlabeled" / "stale.png").exists()
    write_poisoned(ds, out, force=True)
    assert _tree(out) == fresh  # exactly the new dataset: the stale image is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]  # no hidden folder left beside it


@pytest.mark.parametrize("make", ["user-folder", "extra-file", "foreign-manifest", "symlink"])
def test_force_never_replaces_a_folder_inject_did_not_write(splits, tmp_path, make):
    ds = inject(splits, InjectConfig(dataset="digits", count=3, unlabeled=50))
    out = tmp_path / "o"
    if make == "user-folder":  # a user's own dataset: the old --force deleted its labeled/ and unlabeled/
        (out / "labeled" / "0").mkdir(parents=True)
        (out / "labeled" / "0" / "mine.png").write_bytes(b"mine")
        (out / "unlabeled").mkdir()
        (out / "notes.txt").write_text("mine")
    elif make == "extra-file":
        write_poisoned(ds, out)
        (out / "notes.txt").write_text("mine")
    elif make == "foreign-manifest":
        out.mkdir()
        (out / "manifest.json").write_text('{"schema_version": 1}')
    else:
        (tmp_path / "real").mkdir()
        (tmp_path / "real" / "x").write_text("mine")
        out.symlink_to(tmp_path / "real", target_is_directory=True)
    before = _tree(tmp_path)
    for force in (False, True):
        with pytest.raises(InvalidParameterError, match="(not an inject output|not a link or a file)"):
            write_poisoned(ds, out, force=force)
    assert _tree(tmp_path) == before


def test_an_interrupted_write_leaves_nothing_at_out_and_its_leftovers_go_next_time(splits, tmp_path, monkeypatch):
    import subprocess
    import sys

    import redteam.inject as inject_module

    ds = inject(splits, InjectConfig(dataset="digits", count=3, unlabeled=50))
    out = tmp_path / "o"
    real = inject_module.write_pngs
    calls = []

    def ctrl_c_after_two_splits(images, rel, folder):
        calls.append(folder)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(images, rel, folder)

    monkeypatch.setattr(inject_module, "write_pngs", ctrl_c_after_two_splits)
    with pytest.raises(KeyboardInterrupt):
        write_poisoned(ds, out)
    assert list(tmp_path.iterdir()) == []  # neither a half-written out nor its hidden folder
    monkeypatch.setattr(inject_module, "write_pngs", real)

    proc = subprocess.Popen([sys.executable, "-c", "pass"])  # a kill -9 leaves the hidden folder behind
    proc.wait()
    (tmp_path / f".o.{proc.pid}.0.tmp" / "labeled").mkdir(parents=True)
    (tmp_path / f".other.{proc.pid}.0.tmp").mkdir()  # another output's: not this run's to remove
    write_poisoned(ds, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".other.{proc.pid}.0.tmp", "o"]
    assert read_manifest(out).n == 3


def test_numpy_scalars_in_the_configs_reach_the_manifest_as_numbers():
    """Configs accept numpy scalars (a sweep's np.arange values); the manifest must still be JSON."""
    from redteam.attacks.noise import NoiseConfig
    from redteam.inject import InjectConfig

    cfg = InjectConfig(dataset="digits", target=np.int64(3), ratio=np.float32(0.02), seed=np.int64(1),
                       attack="noise", attack_config=NoiseConfig(sigma=np.int64(8)))
    raw = json.loads(json.dumps(cfg.to_json()))
    assert raw["target"] == 3 and raw["seed"] == 1 and raw["attack_config"]["sigma"] == 8
    assert abs(raw["ratio"] - 0.02) < 1e-6
