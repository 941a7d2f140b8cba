"""``audit scan --engine ray`` on a local Ray cluster started here (2 CPUs): the local engine's
findings and scores, a worker killed mid-shard retried, a file that kills every worker reported.
Skipped without Ray (``pip install -e ".[ray]"``)."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from typer.testing import CliRunner  # noqa: E402

from audit.cli import app  # noqa: E402
from audit.data.load import load_images  # noqa: E402
from audit.engines import sources  # noqa: E402
from audit.engines.blocks import ShardedRows  # noqa: E402
from audit.engines.ray import RayExecutor  # noqa: E402
from audit.engines.sharded import scan_sharded  # noqa: E402
from audit.engines.sources import FAILED, from_imageset, open_pool  # noqa: E402
from audit.scan.pipeline import ScanConfig, scan_with_context  # noqa: E402
from engine_helpers import as_set, assert_same, poisoned_pool, write_pngs  # noqa: E402

# the test decoders below run in Ray workers, which cannot import this file: ship them by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster():
    ex = RayExecutor(num_cpus=2)
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raypool") / "pool"
    write_pngs(poisoned_pool(0), root)
    (root / "junk.png").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raysmall") / "pool"
    write_pngs(poisoned_pool(0)[:300], root, colour_every=5)
    (root / "junk.png").write_text("not an image")
    return root


def _report(args: list[str]) -> dict:
    res = CliRunner().invoke(app, ["scan", *args, "--fail-on", "never", "-q", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    doc.pop("timings_s")
    doc["input"].pop("decode")
    return doc


def test_cli_ray_engine_on_a_small_pool(cluster, small):
    assert _report([str(small), "--engine", "ray"]) == _report([str(small)])


@pytest.mark.slow
def test_cli_ray_engine_gives_the_local_findings(cluster, folder):
    local = _report([str(folder)])
    sharded = _report([str(folder), "--engine", "ray"])
    assert {f["kind"] for f in local["findings"]} >= {"bridge", "path"}
    assert local["unreadable"] == [{"path": "junk.png", "reason": "not an image"}]
    assert sharded == local


def _die_once(marker, paths, follow, size, max_pixels):
    """Kills its worker process the first time it decodes 00007.png (a lost worker), then decodes."""
    from audit.data.readers.decode import decode_chunk

    if any(p.endswith("00007.png") for p in paths) and not marker.exists():
        marker.write_text("died")
        os._exit(1)
    return decode_chunk(paths, follow, size, max_pixels)


def _die_always(paths, follow, size, max_pixels):
    from audit.data.readers.decode import decode_chunk

    if any(p.endswith("00007.png") for p in paths):
        os._exit(1)
    return decode_chunk(paths, follow, size, max_pixels)


def test_a_lost_worker_shard_is_retried(cluster, small, tmp_path):
    marker = tmp_path / "marker"
    pool = open_pool(small, cluster, decoder=functools.partial(_die_once, marker))
    assert marker.read_text() == "died"
    local = load_images(small)
    assert pool.ids == local.ids and [u.path for u in pool.unreadable] == ["junk.png"]
    rows = ShardedRows(pool.blocks, len(pool), 784 * 3, 3, cluster)
    assert np.array_equal(rows[np.arange(len(pool))], local.images.reshape(len(local), -1))


@pytest.mark.slow
def test_a_file_that_kills_every_worker_is_unreadable(cluster, tmp_path, monkeypatch):
    root = tmp_path / "pool"
    write_pngs(poisoned_pool(0)[:300], root)
    monkeypatch.setattr(sources, "MIN_FILES_PER_TASK", 32)
    ex = RayExecutor(retries=1)
    pool = open_pool(root, ex, decoder=_die_always)
    (bad,) = pool.unreadable
    assert bad.path == "00007.png" and bad.reason.startswith(FAILED)
    assert len(pool) == 299


@pytest.mark.slow
def test_ray_ivf_scan_and_store_equal_local(cluster, tmp_path):
    from audit.scan.store import save_index, scan_against

    pool = poisoned_pool(1)
    cfg = ScanConfig(exact_max=1000)
    local, lctx = scan_with_context(as_set(pool[:1900]), cfg)
    result, ctx = scan_sharded(from_imageset(as_set(pool[:1900]), cluster, block_rows=400), cfg, cluster,
                               keep_index=True)
    assert_same(local, result)
    save_index(ctx, tmp_path / "store")
    save_index(lctx, tmp_path / "local")
    batch = as_set(pool[1900:])
    batch = type(batch)(batch.images, tuple(f"new/{i}" for i in batch.ids))
    a, b = scan_against(batch, tmp_path / "local", cfg), scan_against(batch, tmp_path / "store", cfg)
    assert [f.to_json() for f in a.findings] == [f.to_json() for f in b.findings]
