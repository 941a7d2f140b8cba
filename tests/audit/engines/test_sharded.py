"""The sharded scan (issue #17) against the local engine, in this process (no Ray needed): the
shard arithmetic (sample, batch partition, per-shard kNN merged) must give the local engine's
findings and per-image scores bit for bit, with exact and IVF indexes, from memory, an .npy and
a folder; failures are reported, never a silent hole."""

from __future__ import annotations

import numpy as np
import pytest

from audit.data.load import load_images
from audit.engines import sources
from audit.engines.blocks import ShardedRows
from audit.engines.executor import SerialExecutor, Task, TaskFailed
from audit.engines.sharded import build_sharded, merge_lists, ranges, scan_sharded, sharded_knn
from audit.engines.sources import FAILED, from_imageset, open_pool
from audit.errors import AuditError
from audit.neighbors import knn_graph
from audit.scan.detectors.base import GraphSettings, ScanInputs
from audit.scan.pipeline import ScanConfig, scan_with_context
from engine_helpers import as_set, assert_same, poisoned_pool, write_pngs


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    return poisoned_pool(0)


@pytest.fixture(scope="module")
def local_ivf(pool):
    """Local scan with an IVF index (exact_max below the pool size) and its context."""
    return scan_with_context(as_set(pool), ScanConfig(exact_max=1000))


def test_ranges_cover_the_rows_in_whole_units():
    for n, unit, parts in [(10, 3, 2), (2054, 1024, 3), (5, 16, 4), (100_000, 2730, 4)]:
        rs = ranges(n, unit, parts)
        assert rs[0][0] == 0 and rs[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(rs, rs[1:]))
        assert all(lo % unit == 0 for lo, _ in rs)
    assert max(hi - lo for lo, hi in ranges(100_000, 1000, 2, max_rows=5000)) == 5000


def test_merged_shard_lists_equal_one_index_with_ties():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 16)).astype(np.float32)
    x[10:40] = x[10]  # 30 copies: the 17 nearest of each are ties at distance 0
    ex = SerialExecutor(workers=3)
    for exact_max in (20_000, 1000):  # flat, IVF
        cfg = ScanConfig(exact_max=exact_max)
        one = knn_graph(x, 16, exact_max=exact_max, use_gpu=False)
        sharded = sharded_knn(x, 16, cfg, ex, None)
        assert sharded.kind == one.kind
        assert np.array_equal(sharded.indices, one.indices)
        assert np.array_equal(sharded.sqdist, one.sqdist)
    assert list(one.indices[10][:16]) == [i for i in range(10, 40) if i != 10][:16]  # ties by id


def test_merge_lists_orders_by_distance_then_id():
    d = [np.array([[0.0, 1.0]], np.float32), np.array([[0.0, 0.5]], np.float32)]
    i = [np.array([[7, 8]]), np.array([[20, 21]])]
    dist, ids = merge_lists(list(zip(d, i)), 3)
    assert ids.tolist() == [[7, 20, 21]] and dist.tolist() == [[0.0, 0.0, 0.5]]


def test_sharded_scan_equals_local_ivf(pool, local_ivf):
    ex = SerialExecutor(workers=3)
    result, ctx = scan_sharded(from_imageset(as_set(pool), ex, block_rows=700), ScanConfig(exact_max=1000), ex)
    local, lctx = local_ivf
    assert ctx.graph.kind == lctx.graph.kind == "ivf"
    assert np.array_equal(ctx.features.projected, lctx.features.projected)
    assert np.array_equal(ctx.graph.indices, lctx.graph.indices)
    assert {f.kind for f in local.findings} >= {"bridge", "path"}  # both attacks are there to be found
    assert_same(local, result)


def test_sharded_scan_equals_local_exact_from_npy(pool, tmp_path):
    path = tmp_path / "pool.npy"
    np.save(path, pool)
    local = scan_with_context(load_images(path), ScanConfig())[0]
    ex = SerialExecutor(workers=2)
    p = open_pool(path, ex)
    assert all(isinstance(b.ref, sources.NpySlice) for b in p.blocks)  # the file is the shard store
    result = scan_sharded(p, ScanConfig(), ex)[0]
    assert result.params["index"] == "flat"
    assert_same(local, result)


def test_invariant_view_equals_the_detectors_own(pool):
    cfg = ScanConfig(exact_max=1000)
    ex = SerialExecutor(workers=2)
    ctx, views = build_sharded(from_imageset(as_set(pool), ex, block_rows=500), cfg, ex)
    lctx = scan_with_context(as_set(pool), cfg)[1]
    own = ScanInputs(features=lctx.features, graph=lctx.graph, ids=lctx.ids, eligible=np.ones(len(pool), bool),
                     shape=lctx.shape, settings=GraphSettings(exact_max=1000)).view("invariant")
    assert own.graph.kind == "ivf"
    assert np.array_equal(views["invariant"].projected, own.projected)
    assert np.array_equal(views["invariant"].graph.indices, own.graph.indices)
    assert np.array_equal(views["invariant"].graph.sqdist, own.graph.sqdist)


def test_folder_with_colour_and_bad_files_equals_local(pool, tmp_path):
    folder = tmp_path / "pool"
    write_pngs(pool[:400], folder, colour_every=7)  # RGB files: the pool is 3 channels, gray widened
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes((folder / "00001.png").read_bytes())
    local = scan_with_context(load_images(folder), ScanConfig())[0]
    ex = SerialExecutor(workers=3)
    p = open_pool(folder, ex)
    assert p.shape == (28, 28, 3) and len(p.blocks) > 1
    assert [u.path for u in p.unreadable] == ["broken.png", "notes.txt"]
    assert [u.path for u in p.skipped] == [".hidden.png"]
    assert_same(local, scan_sharded(p, ScanConfig(), ex)[0])


def test_sharded_rows_read_only_what_is_asked(pool):
    ex = SerialExecutor()
    p = from_imageset(as_set(pool), ex, block_rows=300)
    rows = ShardedRows(p.blocks, len(pool), 784, 1, ex)
    flat = pool.reshape(len(pool), -1)
    idx = np.array([[5, 299], [300, len(pool) - 1]])
    assert np.array_equal(rows[idx], flat[idx])
    assert np.array_equal(rows[-1:], flat[-1:])
    assert np.array_equal(rows[10:700:7], flat[10:700:7])
    with pytest.raises(IndexError):
        rows[[len(pool)]]


def _decode_refusing(paths, follow, size, max_pixels):
    """A decoder whose worker fails on one file every time (a file that crashes the decoder)."""
    from audit.data.readers.decode import decode_chunk

    if any(p.endswith("00013.png") for p in paths):
        raise RuntimeError("decoder crashed")
    return decode_chunk(paths, follow, size, max_pixels)


def test_a_shard_that_keeps_failing_becomes_unreadable_files(pool, tmp_path, monkeypatch):
    folder = tmp_path / "pool"
    write_pngs(pool[:200], folder)
    monkeypatch.setattr(sources, "MIN_FILES_PER_TASK", 16)
    ex = SerialExecutor(workers=2, retries=1)
    p = open_pool(folder, ex, decoder=_decode_refusing)
    assert len(p) == 199
    (bad,) = p.unreadable
    assert bad.path == "00013.png" and bad.reason.startswith(FAILED) and "decoder crashed" in bad.reason
    local = load_images(folder)
    keep = [i for i, name in enumerate(local.ids) if name != "00013.png"]
    assert p.ids == tuple(local.ids[i] for i in keep)
    rows = ShardedRows(p.blocks, len(p), 784, 1, ex)
    assert np.array_equal(rows[np.arange(len(p))], local.images[keep].reshape(len(keep), -1))


def test_a_compute_shard_that_keeps_failing_ends_the_scan():
    ex = SerialExecutor(retries=2)

    def boom():
        raise MemoryError("worker out of memory")

    (res,) = ex.run("features", [Task(boom, ())])
    assert isinstance(res, TaskFailed) and res.attempts == 3 and "MemoryError" in res.reason
    from audit.engines.sharded import _run

    with pytest.raises(AuditError, match="the features stage failed on the cluster.*3 times.*out of memory"):
        _run(ex, "features", [Task(boom, ())], None)


def test_store_built_sharded_serves_against(pool, tmp_path):
    from audit.scan.store import save_index, scan_against

    cfg = ScanConfig(exact_max=1000)
    base, batch = pool[:1900], pool[1900:]
    ex = SerialExecutor(workers=2)
    ctx = scan_sharded(from_imageset(as_set(base), ex, block_rows=500), cfg, ex, keep_index=True)[1]
    save_index(ctx, tmp_path / "sharded")
    save_index(scan_with_context(as_set(base), cfg)[1], tmp_path / "local")
    new = as_set(batch)
    new = type(new)(new.images, tuple(f"new/{i}" for i in new.ids))
    a = scan_against(new, tmp_path / "local", cfg)
    b = scan_against(new, tmp_path / "sharded", cfg)
    assert a.findings and [f.to_json() for f in a.findings] == [f.to_json() for f in b.findings]
    for k in a.scores:
        assert np.array_equal(a.scores[k], b.scores[k], equal_nan=True)


def test_engine_ray_without_ray_is_one_line(pool, tmp_path, monkeypatch):
    import sys

    from typer.testing import CliRunner

    from audit.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    write_pngs(pool[:20], tmp_path / "pool")
    res = CliRunner().invoke(app, ["scan", str(tmp_path / "pool"), "--engine", "ray", "-q"])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "pip install" in res.output and len(res.output.strip().splitlines()) == 1


class _FakeRay:
    """What RayExecutor asks of Ray at start-up, recording how it was initialised."""

    def __init__(self) -> None:
        self.init_kwargs: dict = {}

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.init_kwargs = kwargs

    def cluster_resources(self) -> dict:
        return {"CPU": 2.0}


@pytest.mark.parametrize("env, address, expected, cpus", [
    (None, None, "local", 2),  # never Ray's default, which follows a stale /tmp/ray/ray_current_cluster
    ("ray://head:10001", None, "ray://head:10001", None),  # RAY_ADDRESS names the cluster
    ("ray://head:10001", "auto", "auto", None),  # --address wins
])
def test_ray_executor_starts_local_unless_a_cluster_is_named(monkeypatch, env, address, expected, cpus):
    import audit.engines.ray as ray_engine

    fake = _FakeRay()
    monkeypatch.setattr(ray_engine, "_ray", lambda: fake)
    if env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", env)
    ex = ray_engine.RayExecutor(address, num_cpus=2)
    assert fake.init_kwargs["address"] == expected and fake.init_kwargs["num_cpus"] == cpus and ex.workers == 2
