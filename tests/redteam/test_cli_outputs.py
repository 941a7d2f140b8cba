"""`redteam bench` and `redteam train-gan` follow the one output policy (audit/outputs.py):
refused before any work, in one line, the dataset untouched."""

from __future__ import annotations

import stat

import numpy as np
from typer.testing import CliRunner

from audit.data.imageset import ImageSet
from audit.data.write import write_npz
from redteam.cli import app

runner = CliRunner()


def _dataset(tmp_path):
    rng = np.random.default_rng(0)
    ds = ImageSet(images=rng.integers(0, 255, (20, 8, 8, 1), dtype=np.uint8), ids=tuple(map(str, range(20))))
    folder = tmp_path / "data"
    folder.mkdir()
    return write_npz(ds, folder / "d.npz"), folder


def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    return result.output


def test_bench_out_inside_the_dataset_is_refused(tmp_path):
    data, folder = _dataset(tmp_path)
    before = data.stat().st_mtime_ns
    line = _one_line(runner.invoke(app, ["bench", "--dataset", str(folder), "--out", str(folder / "bench")]))
    assert f"--out {folder / 'bench'} is inside --dataset {folder}" in line
    assert not (folder / "bench").exists() and data.stat().st_mtime_ns == before


def test_train_gan_never_writes_onto_its_dataset_or_a_device(tmp_path):
    data, folder = _dataset(tmp_path)
    before = data.read_bytes()
    line = _one_line(runner.invoke(app, ["train-gan", "--dataset", str(data), "--out", str(data), "--force"]))
    assert f"--out {data} is --dataset {data}" in line
    line = _one_line(runner.invoke(app, ["train-gan", "--dataset", "digits", "--out", "/dev/null", "--force"]))
    assert "--out /dev/null is a character device, not a regular file" in line
    assert data.read_bytes() == before and stat.S_ISCHR(__import__("os").lstat("/dev/null").st_mode)
