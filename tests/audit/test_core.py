"""The core contracts: ImageSet validation, the registry, findings JSON, the error boundary."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from audit.cli import new_app
from audit.data.imageset import ImageSet, Unreadable
from audit.errors import (
    AuditError,
    InvalidParameterError,
    ShapeMismatchError,
    UnknownNameError,
    invalid_parameter,
)
from audit.findings import AuditResult, Finding, Member, Severity
from audit.registry import Registry


def _images(n=4, h=5, w=6, c=1):
    return np.arange(n * h * w * c, dtype=np.uint8).reshape(n, h, w, c)


def test_imageset_rejects_wrong_dtype_shape_and_ids():
    with pytest.raises(ShapeMismatchError, match="uint8"):
        ImageSet(images=np.zeros((2, 3, 3, 1), np.float32), ids=("a", "b"))
    with pytest.raises(ShapeMismatchError, match="channels"):
        ImageSet(images=np.zeros((2, 3, 3, 2), np.uint8), ids=("a", "b"))
    with pytest.raises(ShapeMismatchError, match="ids"):
        ImageSet(images=_images(2), ids=("a",))
    with pytest.raises(ShapeMismatchError, match="unique"):
        ImageSet(images=_images(2), ids=("a", "a"))
    with pytest.raises(ShapeMismatchError, match="labels"):
        ImageSet(images=_images(2), ids=("a", "b"), labels=np.array([1]))


def test_imageset_subset_concat_and_pixels():
    s = ImageSet(images=_images(4), ids=("a", "b", "c", "d"), labels=np.array([0, 1, 2, 1]))
    sub = s.subset([2, 0])
    assert sub.ids == ("c", "a") and sub.labels.tolist() == [2, 0]
    assert np.array_equal(sub.images[0], s.images[2])
    both = ImageSet.concat([sub, s.subset([1]).with_ids(["z"])])
    assert len(both) == 3 and both.ids[-1] == "z"
    px = s.pixels()
    assert px.dtype == np.float32 and px.shape == (4, 30) and px.max() == s.images.max()
    with pytest.raises(ShapeMismatchError):
        ImageSet.concat([s, ImageSet(images=_images(1, 2, 2), ids=("q",))])


def test_registry_duplicate_and_unknown_names():
    reg: Registry[int] = Registry("algorithm")
    reg.register("fixmatch", 1)
    reg("mixmatch")(2)
    with pytest.raises(ValueError, match="twice"):
        reg.register("fixmatch", 3)
    with pytest.raises(UnknownNameError) as exc:
        reg.get("fixmach")
    assert str(exc.value) == "Unknown algorithm 'fixmach'. Available: fixmatch, mixmatch."
    assert reg.names() == ["fixmatch", "mixmatch"] and "mixmatch" in reg


def test_invalid_parameter_message_form():
    err = invalid_parameter("ratio", "inject", "a float in (0, 0.5]", 2.0)
    assert isinstance(err, InvalidParameterError) and isinstance(err, AuditError)
    assert str(err) == "The 'ratio' parameter of inject must be a float in (0, 0.5]. Got 2.0 instead."


def test_audit_result_json_is_stable_and_flags_by_severity():
    bridge = Finding(
        kind="bridge", severity=Severity.ERROR, score=3.0, summary="chain of 2",
        members=(Member("b.png", 1, alpha=0.0, role="source"), Member("a.png", 0, alpha=1.0, role="target")),
        evidence={"alphas": np.array([0.0, 1.0]), "max_residual": np.float32(0.25)},
    )
    dup = Finding(kind="near_duplicate", severity=Severity.INFO, score=1.0, summary="dup",
                  members=(Member("c.png", 2), Member("d.png", 3)))
    res = AuditResult(tool="scan", root="pool", ids=("a.png", "b.png", "c.png", "d.png"),
                      findings=(bridge, dup), unreadable=(Unreadable("x.png", "truncated"),))
    doc = json.loads(json.dumps(res.to_json()))
    assert doc["schema_version"] == "1.1" and doc["n_images"] == 4
    assert doc["flagged"] == ["a.png", "b.png"]  # info findings do not flag
    assert doc["unreadable"] == [{"path": "x.png", "reason": "truncated"}]
    assert doc["counts"] == {"bridge": {"error": 1}, "near_duplicate": {"info": 1}}
    assert doc["findings"][0]["members"][0] == {"id": "b.png", "index": 1, "alpha": 0.0, "role": "source"}
    assert doc["findings"][0]["evidence"]["max_residual"] == 0.25
    assert res.worst() is Severity.ERROR
    assert res.flagged(Severity.INFO) == ["a.png", "b.png", "c.png", "d.png"]


def test_error_boundary_one_line_and_exit_codes():
    app = new_app("test app")

    @app.command("boom")
    def boom(kind: str) -> None:
        if kind == "audit":
            raise invalid_parameter("ratio", "inject", "a float in (0, 0.5]", 2.0)
        raise RuntimeError("unexpected")

    runner = CliRunner()
    res = runner.invoke(app, ["boom", "audit"])
    assert res.exit_code == 2
    assert res.output.strip() == "error: The 'ratio' parameter of inject must be a float in (0, 0.5]. Got 2.0 instead."
    res = runner.invoke(app, ["boom", "other"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "internal error (RuntimeError: unexpected)" in res.output
    res = runner.invoke(app, ["boom"])  # a usage error stays typer's, exit 2
    assert res.exit_code == 2
