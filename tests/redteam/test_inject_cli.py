"""`redteam inject`: exit codes and the words a user sees."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from redteam.cli import app
from redteam.density import DENSITIES

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, ["inject", *args])


def test_digits_end_to_end(tmp_path):
    out = tmp_path / "D"
    result = _run("--dataset", "digits", "--ratio", "0.02", "--seed", "0", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "28 poisoned" in result.output and str(out) in result.output
    assert "target x*" in result.output and "source x'" in result.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["n"] == 28 and len(m["poisoned"]) == 28
    assert len(list((out / "unlabeled").iterdir())) == m["unlabeled_size"]
    assert len(list((out / "labeled").rglob("*.png"))) == 40
    assert (out / m["target"]["path"]).is_file() and (out / m["source"]["path"]).is_file()


def test_help_lists_every_density_and_attack():
    result = runner.invoke(app, ["inject", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in DENSITIES:
        assert f"'{name}'" in result.output
    assert "linear" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ratio", "2"], "The 'ratio' parameter of inject must be a float in (0, 0.5]. Got 2.0 instead."),
        (["--ratio", "0"], "The 'ratio' parameter of inject must be a float in (0, 0.5]. Got 0.0 instead."),
        (["--count", "1"], "The 'count' parameter of inject must be an int >= 2"),
        (["--density", "foo"], "Unknown density 'foo'. Available: (1-x)^2, phi(x+.5), phi(x+.3), x,"),
        (["--attack", "gna"], "Unknown attack 'gna'. Available: linear, zero_knowledge, gan, transfer,"),
        (["--target", "0", "--target-label", "{true}"], "other than the target's true label {true}"),
        (["--target", "99999"], "The 'target' parameter of inject must be an index into the test split"),
    ],
)
def test_bad_inputs_exit_2_with_one_line_and_no_traceback(args, message, tmp_path):
    from audit.data.builtin import digits

    true = str(int(digits().test.labels[0]))
    args = [a.replace("{true}", true) for a in args]
    result = _run("--dataset", "digits", "--out", str(tmp_path / "o"), *args)
    assert result.exit_code == 2
    assert message.replace("{true}", true) in result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert not (tmp_path / "o").exists()  # nothing written on a bad input


def test_non_empty_out_requires_force_and_force_only_replaces_an_inject_output(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "x").write_text("keep")
    for extra in ((), ("--force",)):
        result = _run("--dataset", "digits", "--count", "2", "--unlabeled", "50", "--out", str(mine), *extra)
        assert result.exit_code == 2 and "not an inject output (it holds x" in result.output
        assert "--force never replaces it" in result.output and result.output.count("\n") == 1
    assert [p.name for p in mine.iterdir()] == ["x"] and (mine / "x").read_text() == "keep"

    out = tmp_path / "o"
    assert _run("--dataset", "digits", "--count", "2", "--unlabeled", "50", "--out", str(out)).exit_code == 0
    result = _run("--dataset", "digits", "--count", "2", "--unlabeled", "50", "--out", str(out))
    assert result.exit_code == 2 and "holds an earlier inject output (not empty); pass --force" in result.output
    result = _run("--dataset", "digits", "--count", "3", "--unlabeled", "50", "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["n"] == 3


def test_paths_with_markup_and_control_characters_print_as_themselves(tmp_path):
    out = tmp_path / "x[/]"
    result = _run("--dataset", "digits", "--count", "2", "--unlabeled", "50", "--out", str(out))
    assert result.exit_code == 0, result.output  # was: a rich MarkupError after writing the dataset
    assert f"written to {out} in" in result.output and f"ground truth: {out / 'manifest.json'}" in result.output
    odd = tmp_path / "a\x1b[2Jb"
    result = _run("--dataset", "digits", "--count", "2", "--unlabeled", "50", "--out", str(odd))
    assert result.exit_code == 0 and "\x1b" not in result.output
    assert f"written to {tmp_path}/a\\x1b[2Jb in" in result.output and (odd / "manifest.json").is_file()


def test_out_inside_the_dataset_read_is_refused(tmp_path):
    from audit.data.builtin import digits
    from audit.data.write import write_png_folder

    data = tmp_path / "data"
    for split in ("train", "test"):
        write_png_folder(getattr(digits(), split).subset(list(range(0, 200, 2))), data / split, by_class=True)
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*")}
    result = _run("--dataset", str(data), "--count", "2", "--out", str(data / "train" / "poisoned"))
    assert result.exit_code == 2 and f"is inside --dataset {data}" in result.output
    result = _run("--dataset", str(data / "train"), "--count", "2", "--out", str(data), "--force")
    assert result.exit_code == 2 and f"contains --dataset {data / 'train'}" in result.output
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*")} == before


def test_missing_out_is_a_usage_error():
    result = _run("--dataset", "digits")
    assert result.exit_code == 2 and "--out" in result.output
    assert "internal error" not in result.output


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(), reason="Fashion-MNIST not installed")
def test_fashion_mnist_at_the_papers_ratio(tmp_path):
    out = tmp_path / "fm"
    start = time.perf_counter()
    result = _run("--dataset", "fashion-mnist", "--ratio", "0.001", "--out", str(out))
    assert result.exit_code == 0, result.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["unlabeled_pool_size"] == 60_000 - 40 and m["n"] == 60
    assert len(list((out / "unlabeled").iterdir())) == 60_000 - 40 + 60
    assert time.perf_counter() - start < 300
