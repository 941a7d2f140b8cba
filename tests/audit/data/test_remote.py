"""Pools in object storage (issue #17): fsspec's in-memory filesystem in the default run, and a
real S3 API (moto's server, started here on a free port) when moto and s3fs are installed
(``pip install -e ".[scale-test]"``). The local reader's hostile-input rules hold for objects, and
``audit scan s3://bucket/pool`` gives the findings of the same files on disk."""

from __future__ import annotations

import functools
import io
import json
import socket
from pathlib import Path

import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from PIL import Image
from typer.testing import CliRunner

from audit.cli import app
from audit.data import remote
from audit.data.load import load_images
from audit.data.readers._common import ReadOptions
from audit.engines.blocks import ShardedRows
from audit.engines.executor import SerialExecutor
from audit.engines.sources import open_pool
from audit.errors import DataError

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "fashion-mnist-200.npz"


def _png(im: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    pil = Image.fromarray(im)
    (pil.convert(mode) if mode else pil).save(buf, format="PNG")
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def pool_files() -> dict[str, bytes]:
    """A small hostile pool: images (gray, RGBA over gray, a 2-frame GIF), a 3-image straight
    bridge and its neighbours, bad objects of every kind, hidden entries."""
    with np.load(FIXTURE) as z:
        imgs = z["images"][:, :, :, 0]
    files = {f"img/{i:03d}.png": _png(im) for i, im in enumerate(imgs[:120])}
    a = np.linspace(0, 1, 12)[:, None, None]
    for j, im in enumerate(np.rint((1 - a) * imgs[0] + a * imgs[90]).astype(np.uint8)):
        files[f"bridge/{j:02d}.png"] = _png(im)
    files["img/rgba.png"] = _png(np.dstack([imgs[5]] * 3 + [imgs[6]]))
    files["bad/empty.png"] = b""
    files["bad/text.png"] = b"this is not an image"
    files["bad/truncated.png"] = _png(imgs[7])[:60]
    files["bad/bomb.png"] = _png(np.zeros((3000, 3000), np.uint8))  # 9 Mpx > max_pixels below
    files[".DS_Store"] = b"\0\0\0\1Bud1"
    files["img/.thumbs/x.png"] = _png(imgs[8])
    return files


MAX_PIXELS = 4_000_000


@pytest.fixture()
def memfs():
    fs = MemoryFileSystem()
    root = "/pool-remote-test"
    for name, data in pool_files().items():
        fs.pipe_file(f"{root}/{name}", data)
    yield fs, root
    fs.rm(root, recursive=True)


@pytest.fixture(scope="module")
def disk(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("remote") / "pool"
    for name, data in pool_files().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def test_objects_read_as_the_same_files_on_disk(memfs, disk):
    fs, root = memfs
    opts = ReadOptions(max_pixels=MAX_PIXELS)
    ex = SerialExecutor(workers=2)
    pool = open_pool(f"memory://{root}", ex, opts)
    local = load_images(disk, max_pixels=MAX_PIXELS)
    assert pool.ids == local.ids
    assert [(u.path, u.reason) for u in pool.unreadable] == [(u.path, u.reason) for u in local.unreadable]
    assert {u.path for u in pool.unreadable} == {"bad/empty.png", "bad/text.png", "bad/truncated.png", "bad/bomb.png"}
    assert [(u.path, u.reason) for u in pool.skipped] == [(u.path, u.reason) for u in local.skipped]
    assert pool.notes == local.notes
    rows = ShardedRows(pool.blocks, len(pool), int(np.prod(pool.shape)), pool.shape[2], ex)
    assert np.array_equal(rows[np.arange(len(pool))], local.images.reshape(len(local), -1))


class CountingFS(MemoryFileSystem):
    """Records every object whose bytes are read."""

    read: list[str] = []

    def cat_file(self, path, start=None, end=None, **kw):
        CountingFS.read.append(path)
        return super().cat_file(path, start=start, end=end, **kw)

    def _open(self, path, mode="rb", **kw):
        CountingFS.read.append(path)
        return super()._open(path, mode, **kw)


def test_sizes_are_checked_before_a_byte_is_read():
    fs = CountingFS(skip_instance_cache=True)
    fs.pipe_file("/counted/huge.png", b"\x89PNG" + b"\0" * (17 << 20))  # > file_limit(100 px)
    fs.pipe_file("/counted/empty.png", b"")
    CountingFS.read.clear()
    listing = remote.list_pool(fs, "/counted", "memory://counted")
    _, channels, metas = remote.decode_objects(fs, [f"/counted/{f}" for f in listing.files], listing.sizes,
                                               (8, 8), max_pixels=100)
    assert channels == [0, 0]
    assert metas[0][0] == "empty file" and metas[1][0].startswith("too large (an object of 17.0 MiB")
    assert CountingFS.read == []
    fs.rm("/counted", recursive=True)


class BatchFS(MemoryFileSystem):
    """Records each ``cat_ranges`` call (the batch an async store sends concurrently)."""

    protocol = "batchmem"
    batches: list[int] = []

    def cat_ranges(self, paths, starts, ends, **kw):
        BatchFS.batches.append(len(paths))
        return super().cat_ranges(paths, starts, ends, **kw)


def test_small_objects_are_fetched_in_bounded_batches(monkeypatch):
    fs = BatchFS(skip_instance_cache=True)
    files = {k: v for k, v in pool_files().items() if k.startswith(("img/0", "bridge/"))}
    for name, data in files.items():
        fs.pipe_file(f"/batched/{name}", data)
    listing = remote.list_pool(fs, "/batched", "batchmem://batched")
    paths = [f"/batched/{f}" for f in listing.files]
    monkeypatch.setattr(remote, "FETCH_OBJECTS", 50)
    BatchFS.batches.clear()
    _, channels, _ = remote.decode_objects(fs, paths, listing.sizes, (28, 28), MAX_PIXELS)
    assert all(channels) and len(channels) == len(files)
    assert BatchFS.batches == [50] * (len(files) // 50) + ([len(files) % 50] if len(files) % 50 else [])
    # a byte budget splits a chunk too, and one oversized object is a batch of its own
    monkeypatch.setattr(remote, "FETCH_BYTES", 300)
    groups = remote._fetch_groups([200, 200, 50, 1000, 10])
    assert groups == [(0, 1), (1, 3), (3, 4), (4, 5)]
    fs.rm("/batched", recursive=True)


def test_vanished_objects_and_budget(memfs):
    fs, root = memfs
    listing = remote.list_pool(fs, root, "memory://x")
    fs.rm(f"{root}/img/000.png")
    _, channels, metas = remote.decode_objects(fs, [f"{root}/img/000.png"], [1], (28, 28), MAX_PIXELS)
    assert channels == [0] and metas[0][0] == "vanished during read"
    assert "img/000.png" in listing.files
    # the decoded-memory budget is checked from headers, before decoding: per decode shard here
    with pytest.raises(DataError, match="budget|memory"):
        open_pool(f"memory://{root}", SerialExecutor(), ReadOptions(max_pixels=MAX_PIXELS, max_bytes=50_000))


def test_listing_errors_are_one_line(memfs):
    fs, root = memfs
    with pytest.raises(DataError, match="single object"):
        open_pool(f"memory://{root}/img/001.png", SerialExecutor())
    with pytest.raises(DataError, match="no readable image|no files"):
        open_pool("memory://nothing-here-at-all", SerialExecutor())


def _report(args: list[str], env: dict | None = None) -> dict:
    res = CliRunner().invoke(app, ["scan", *args, "--fail-on", "never", "-q", "--format", "json"], env=env)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    doc.pop("timings_s")
    doc.pop("root")
    doc["input"].pop("decode")
    return doc


@pytest.fixture(scope="module")
def disk_report(disk) -> dict:
    return _report([str(disk)])


def test_cli_scans_a_url_like_the_folder(memfs, disk, disk_report):
    fs, root = memfs
    assert "bridge" in disk_report["counts"]  # the bridge is there to be found
    assert _report([f"memory://{root}"]) == disk_report
    assert _report([f"file://{disk}"]) == disk_report


# --- a real S3 API ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(disk):
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket="pools")
    for f in disk.rglob("*"):
        if f.is_file():
            client.put_object(Bucket="pools", Key=f"scan/pool/{f.relative_to(disk).as_posix()}", Body=f.read_bytes())
    yield env
    server.stop()


def test_s3_pool_gives_the_findings_of_the_files_on_disk(s3, disk_report, monkeypatch):
    import fsspec

    for k, v in s3.items():
        monkeypatch.setenv(k, v)
    fsspec.filesystem("s3").clear_instance_cache()
    doc = _report(["s3://pools/scan/pool"])
    assert doc == disk_report
    assert {u["path"] for u in doc["unreadable"]} >= {"bad/text.png", "bad/empty.png"}
    assert any(f["kind"] == "bridge" for f in doc["findings"])
    res = CliRunner().invoke(app, ["scan", "s3://pools/no/such/prefix", "-q"])
    assert res.exit_code == 2 and "Traceback" not in res.output


@pytest.mark.parametrize("flag", ["--save-index", "--against"])
@pytest.mark.parametrize("url", ["s3://pools/store", "gs://pools/store", "file:///tmp/store"])
def test_stores_given_as_urls_are_refused(disk, tmp_path, monkeypatch, flag, url):
    # a store is a local folder (flock, fsync, atomic rename): a URL must not quietly become ./s3:/pools/store
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["scan", str(disk), flag, url, "-q"])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and ("not supported" in lines[0] or "plain path" in lines[0]), res.output
    assert list(tmp_path.iterdir()) == []


def test_a_url_pool_warns_about_a_labeled_set_of_another_size(memfs, tmp_path):
    from PIL import Image

    fs, root = memfs
    labeled = tmp_path / "labeled"
    for c in ("a", "b"):  # 6x6 colour: another native size and colour than the pool's
        (labeled / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((6, 6, 3), 40 * i + 60 * (c == "b"), np.uint8)).save(labeled / c / f"{i}.png")
    doc = _report([f"memory://{root}", "--labeled", str(labeled)])
    assert any("natively 6×6" in n for n in doc["notes"])
