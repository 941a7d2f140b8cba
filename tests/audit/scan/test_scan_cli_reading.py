"""How `audit scan` reads a pool: --max-side, --max-memory, --workers, a batch read at its store's
size, and the labeled set compared with the pool (issue #13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from audit.cli import app

runner = CliRunner()
FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "fashion-mnist-200.npz"


def _report(tmp_path: Path, *args) -> tuple[object, dict]:
    out = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
    res = runner.invoke(app, ["scan", *map(str, args), "--json", str(out), "--fail-on", "never", "--quiet"])
    assert res.exit_code == 0, res.output
    return res, json.loads(out.read_text())


@pytest.fixture(scope="module")
def fm() -> np.ndarray:
    with np.load(FIXTURE) as z:
        return z["images"]


def _folder(root: Path, images: np.ndarray, *, scale: int = 1, rgb: bool = False, prefix: str = "") -> Path:
    root.mkdir(parents=True)
    for i, img in enumerate(images):
        im = Image.fromarray(img.squeeze(-1) if img.ndim == 3 else img)
        if scale != 1:
            im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
        (im.convert("RGB") if rgb else im).save(root / f"{prefix}{i:03d}.png")
    return root


def test_reading_defaults_are_the_data_layers():
    from audit.data.readers._common import DEFAULT_MAX_BYTES
    from audit.data.readers.resolution import DEFAULT_MAX_SIDE
    from audit.scan.cli import DEFAULT_MAX_MEMORY, DEFAULT_MAX_SIDE as CLI_SIDE, parse_bytes

    assert CLI_SIDE == DEFAULT_MAX_SIDE and parse_bytes(DEFAULT_MAX_MEMORY, "--max-memory") == DEFAULT_MAX_BYTES


@pytest.mark.parametrize("text, value", [("2G", 2 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29), ("4096", 4096),
                                         ("64 kb", 64 << 10)])
def test_parse_bytes(text, value):
    from audit.scan.cli import parse_bytes

    assert parse_bytes(text, "--max-memory") == value


def test_max_side_caps_or_keeps_the_working_size(fm, tmp_path):
    pool = _folder(tmp_path / "big", fm[:30], scale=3)  # 84x84 images
    _, capped = _report(tmp_path, pool, "--workers", "0")
    assert capped["input"]["working_size"] == "40x40" and capped["input"]["resized"] == 30
    _, kept = _report(tmp_path, pool, "--max-side", "0", "--workers", "0")
    assert kept["input"]["working_size"] == "84x84" and kept["input"]["resized"] == 0
    _, small = _report(tmp_path, pool, "--max-side", "28", "--workers", "1")
    assert small["input"]["working_size"] == "28x28" and small["input"]["decode"]["processes"] == 1


def test_max_memory_refuses_a_pool_over_budget_in_one_line(fm, tmp_path):
    pool = _folder(tmp_path / "pool", fm[:30])
    res = runner.invoke(app, ["scan", str(pool), "--max-memory", "8K"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1 and "budget" in res.stderr
    res = runner.invoke(app, ["scan", str(pool), "--max-memory", "lots"])
    assert res.exit_code == 2 and "--max-memory" in res.stderr and "512M" in res.stderr


def test_a_batch_is_read_at_the_stores_size_and_colour(fm, tmp_path):
    store = tmp_path / "store"
    pool = _folder(tmp_path / "pool", fm[:100])  # 28x28 gray
    res = runner.invoke(app, ["scan", str(pool), "--save-index", str(store), "--fail-on", "never", "--quiet"])
    assert res.exit_code == 0, res.output
    # the batch arrives as 56x56 RGB: alone it would be scanned at 40x40x3, against the store at 28x28x1
    batch = _folder(tmp_path / "batch", fm[100:110], scale=2, rgb=True, prefix="new")
    res, doc = _report(tmp_path, batch, "--against", store)
    assert doc["input"]["working_size"] == "28x28" and doc["input"]["channels"] == 1
    assert doc["batch"]["n_images"] == 10
    res = runner.invoke(app, ["scan", str(batch), "--against", str(store), "--size", "32x32"])
    assert res.exit_code == 2 and "28x28" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_labeled_set_of_another_size_or_colour_is_warned_about(fm, tmp_path):
    pool = _folder(tmp_path / "pool", fm[:60])
    labeled = tmp_path / "labeled"
    for c in range(2):  # 8x8 colour images: another native size and colour than the pool's
        _folder(labeled / str(c), (fm[60 + 5 * c: 65 + 5 * c, ::4, ::4]), rgb=True)
    res, doc = _report(tmp_path, pool, "--labeled", labeled)
    notes = " ".join(doc["notes"])
    assert "natively 7×7" in notes and "28×28" in notes and "colour" in notes
    res = runner.invoke(app, ["scan", str(pool), "--labeled", str(labeled), "--fail-on", "never"])
    assert "natively 7×7" in res.output  # the text summary says it too
    same = tmp_path / "same"
    for c in range(2):
        _folder(same / str(c), fm[60 + 5 * c: 65 + 5 * c])
    _, doc = _report(tmp_path, pool, "--labeled", same)
    assert not any("labeled images" in n for n in doc["notes"])
