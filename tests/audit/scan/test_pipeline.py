"""The scan entry point: its result contract and its input validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scan_helpers import make_set

from audit.data.imageset import ImageSet, Unreadable
from audit.errors import UnknownNameError, EmptyDatasetError, InvalidParameterError, ShapeMismatchError
from audit.scan import ScanConfig, scan


def test_result_contract(clean_images):
    images = ImageSet(clean_images[:300], tuple(f"x/{i}" for i in range(300)),
                      unreadable=(Unreadable("bad.png", "truncated"),))
    seen = []
    res = scan(images, progress=lambda stage, done, total: seen.append(stage))
    assert res.tool == "scan" and res.ids == images.ids
    assert set(res.scores) == {"bridge", "path", "cluster", "near_duplicate"}
    assert all(v.shape == (300,) and v.dtype.kind == "f" for v in res.scores.values())
    assert {"features", "neighbors", "bridge", "cluster", "near_duplicate"} <= set(res.timings)
    assert res.unreadable == images.unreadable
    assert res.params["k"] == ScanConfig().k and res.params["index"] == "flat"
    json.dumps(res.to_json())
    assert {"features", "neighbors", "bridge", "done"} <= set(seen)


def test_fewer_than_three_images_is_a_clear_error():
    with pytest.raises(EmptyDatasetError, match="need at least 3 images to look for interpolation chains"):
        scan(make_set(np.zeros((2, 4, 4, 1), np.uint8)))


def test_labeled_of_another_shape_is_rejected(clean_images):
    labeled = ImageSet(np.zeros((2, 8, 8, 1), np.uint8), ("a", "b"), labels=np.array([0, 1]))
    with pytest.raises(ShapeMismatchError, match="8×8×1.*28×28×1"):
        scan(make_set(clean_images[:10]), labeled=labeled)


def test_bad_config_is_rejected_in_sklearn_form(clean_images):
    with pytest.raises(InvalidParameterError, match="'k' parameter of ScanConfig"):
        scan(make_set(clean_images[:10]), ScanConfig(k=0))
    with pytest.raises(UnknownNameError, match=r"Unknown detector 'brige'\. Available: bridge, path, cluster, near_duplicate"):
        scan(make_set(clean_images[:10]), ScanConfig(detectors=("brige",)))
    with pytest.raises(InvalidParameterError, match="'detectors' parameter of ScanConfig"):
        scan(make_set(clean_images[:10]), ScanConfig(detectors=()))


@pytest.mark.parametrize("options, message", [
    ({"bridge": {"abs_slack": -1}}, "'abs_slack' parameter of ColinearityConfig must be a float > 0"),
    ({"bridge": {"min_chain": 2}}, "'min_chain' parameter of ColinearityConfig must be an int >= 3"),
    ({"cluster": {"tau_quantile": 1.5}}, "'tau_quantile' parameter of ClusterConfig"),
    ({"near_duplicate": {"max_diff": 300}}, "'max_diff' parameter of DuplicateConfig"),
    ({"bridge": {"no_such_option": 1}}, "'no_such_option' parameter of the bridge detector must be one of its options"),
    ({"bridge": 3}, "'bridge' parameter of ScanConfig.options"),
])
def test_every_nested_detector_config_is_validated(clean_images, options, message):
    with pytest.raises(InvalidParameterError, match=message):
        scan(make_set(clean_images[:10]), ScanConfig(options=options))


def test_detector_options_reach_the_detector(clean_images):
    res = scan(make_set(clean_images[:40]), ScanConfig(options={"cluster": {"min_size": 37}}))
    assert res.params["options"]["cluster"]["min_size"] == 37
    assert res.params["stats"]["cluster"]["size_threshold"] >= 37


def test_blank_images_never_form_a_chain():
    imgs = np.zeros((20, 6, 6, 1), np.uint8)
    imgs[:, 0, 0, 0] = np.arange(20)  # a nearly blank ramp: colinear but flat (std < 2)
    res = scan(make_set(imgs))
    assert not any(f.kind == "bridge" for f in res.findings)
