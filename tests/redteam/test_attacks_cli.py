"""`redteam inject --attack NAME --set KEY=VALUE`: every attack is reachable, parameters are typed and
validated, and bad inputs are one line on stderr with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from redteam.attacks import ATTACKS
from redteam.cli import app, attack_config
from redteam.generative import GanShape, Generator, save_generator

runner = CliRunner()
BASE = ["inject", "--dataset", "digits", "--unlabeled", "200", "--seed", "3"]


def _fails(result, message):
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1


def test_help_lists_every_attack_and_its_keys():
    out = runner.invoke(app, ["inject", "--help"], terminal_width=200).output
    for name in ATTACKS:
        assert name in out
    assert "--set" in out and "sigma" in out and "support_paths" in out


def test_params_are_converted_to_the_field_types_and_recorded(tmp_path):
    out = tmp_path / "o"
    result = runner.invoke(app, [*BASE, "--count", "10", "--attack", "noise", "--set", "sigma=4", "--set",
                                 "kind=uniform", "--set", "perturb_ends=true", "--out", str(out)])
    assert result.exit_code == 0, result.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["attack"] == "noise"
    assert m["attack_meta"]["config"] == {"kind": "uniform", "sigma": 4.0, "perturb_ends": True}
    assert m["config"]["attack_config"] == m["attack_meta"]["config"]
    cfg = attack_config("duplicate", ["copies=3"])
    assert cfg.copies == 3 and isinstance(cfg.copies, int) and attack_config("linear", []) is None


def test_zero_knowledge_source_is_a_pool_file(tmp_path):
    out = tmp_path / "zk"
    result = runner.invoke(app, [*BASE, "--count", "12", "--attack", "zero_knowledge", "--set", "support_paths=2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "source x': unlabeled/" in result.output
    m = json.loads((out / "manifest.json").read_text())
    src = m["source"]
    assert src["split"] == "unlabeled" and src["path"].startswith("unlabeled/") and (out / src["path"]).is_file()
    assert src["path"].removeprefix("unlabeled/") not in m["poisoned"]  # a clean pool image, not an insertion
    assert src["label"] == m["target_label"] and src["original_id"].startswith("train/")
    assert sorted({p["path_id"] for p in m["points"]}) == [0, 1, 2]
    assert {p["role"] for p in m["points"] if p["path_id"] > 0} == {"support"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attack", "noise", "--set", "foo=1"], "Unknown parameter 'foo' of the noise attack. Valid: kind, sigma, perturb_ends."),
        (["--attack", "linear", "--set", "foo=1"], "Valid: none (the linear attack has no parameters)."),
        (["--attack", "noise", "--set", "sigma"], "The '--set' option of inject must be KEY=VALUE. Got 'sigma' instead."),
        (["--attack", "noise", "--set", "sigma=abc"], "The 'sigma' parameter of the noise attack must be a float. Got 'abc' instead."),
        (["--attack", "noise", "--set", "sigma=-1"], "The 'sigma' parameter of noise must be a float in [0, 255]. Got -1.0 instead."),
        (["--attack", "noise", "--set", "perturb_ends=maybe"], "must be true or false. Got 'maybe' instead."),
        (["--attack", "duplicate", "--set", "copies=2.5"], "The 'copies' parameter of the duplicate attack must be an int."),
        (["--attack", "zero_knowledge", "--count", "9"],
         "The zero_knowledge attack needs at least 10 poisoned images for 1 main path and 4 support paths"),
        (["--attack", "gan"], "The 'generator' parameter of gan must be the path of a checkpoint"),
        (["--attack", "transfer", "--set", "model_path={missing}"], "no θ_init checkpoint at"),
        (["--attack", "gan", "--set", "generator={g28}"], "makes 28×28×1 images but the data is 8×8×1"),
    ],
)
def test_bad_attack_inputs_exit_2_with_one_line(args, message, tmp_path):
    torch.manual_seed(0)
    g28 = save_generator(tmp_path / "g28.pt", Generator(GanShape(28, 1, latent_dim=4, width=2)))
    args = [a.replace("{g28}", str(g28)).replace("{missing}", str(tmp_path / "nope.pt")) for a in args]
    result = runner.invoke(app, [*BASE, "--out", str(tmp_path / "o"), *args])
    _fails(result, message)
    assert not (tmp_path / "o").exists()
