"""Data safety of the scan STORE (issue 12): what is not a store is refused and left untouched,
two concurrent ``--update`` runs never lose a batch, a kill -9 at any file operation leaves a
usable store, and every kind of damaged store is one line and exit 2, never a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from audit.cli import app
from audit.errors import CheckpointError
from audit.scan.store import load_store
from audit.scan.store_io import HashingWriter
from audit.scan.store_layout import StoreWriter, read_current
from audit.scan.store_rows import VerifiedRows

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "fashion-mnist-200.npz"
HERE = Path(__file__).resolve().parent
runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, ["scan", *map(str, args)])


def _one_error_line(res, *words):
    assert res.exit_code == 2, res.output
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output and "internal error" not in res.output
    for w in words:
        assert w in err[0], err[0]
    return err[0]


def _snapshot(root: Path) -> dict:
    """Every entry under ``root`` (and ``root`` itself): content hash, size, mtime; folders by
    mtime, so an added or removed entry shows too."""
    out = {}
    for p in [root, *sorted(root.rglob("*"))]:
        st = os.lstat(p)
        if p.is_file() and not p.is_symlink():
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns)
        else:
            out[str(p)] = (st.st_mode, st.st_mtime_ns)
    return out


def _write_pngs(folder: Path, images: np.ndarray, prefix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im[..., 0]).save(folder / f"{prefix}_{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    with np.load(FIXTURE) as z:
        images = z["images"]
    root = tmp_path_factory.mktemp("safety")
    d = {"root": root, "parent": root / "parent"}
    d["pool"] = _write_pngs(root / "parent" / "pool", images[:60], "pool")
    d["a"] = _write_pngs(root / "batch_a", images[60:70], "a")
    d["b"] = _write_pngs(root / "batch_b", images[70:80], "b")
    for c in range(2):
        _write_pngs(root / "labeled" / str(c), images[100 + 3 * c : 103 + 3 * c], "l")
    d["labeled"] = root / "labeled"
    d["store"] = root / "pristine"
    res = _invoke(d["pool"], "--save-index", d["store"], "--quiet", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    return d


@pytest.fixture()
def store(data, tmp_path) -> Path:
    dest = tmp_path / "STORE"
    shutil.copytree(data["store"], dest)
    return dest


# --- 1. what is not a store is refused, and left exactly as it was -------------------------


def _unrelated(data, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8 not ours")
    return folder


def _a_file(data, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    return f


def _link_to_pool(data, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(data["pool"], target_is_directory=True)
    return link


@pytest.mark.parametrize("flags", [["--save-index"], ["--against", "--update"]], ids=["save-index", "update"])
@pytest.mark.parametrize("target, words", [
    (lambda d, t: d["parent"], "not a scan store"),  # the scanned folder's parent: the repro
    (lambda d, t: d["labeled"], "not a scan store"),
    (_unrelated, "not a scan store"),
    (_a_file, "is a file, not a scan store folder"),
    (lambda d, t: Path("/dev/null"), "character device"),
    (_link_to_pool, ""),
], ids=["parent-of-pool", "labeled", "unrelated-folder", "file", "dev-null", "link-to-pool"])
def test_a_path_that_is_not_a_store_is_refused_and_untouched(data, tmp_path, flags, target, words):
    path = target(data, tmp_path)
    watched = [data["root"], tmp_path] if path != Path("/dev/null") else [data["root"]]
    before = [_snapshot(w) for w in watched]
    dev = os.stat("/dev/null")
    scanned = data["a"] if "--update" in flags else data["b"]
    args = [scanned, flags[0], path, *flags[1:], "--fail-on", "never"]
    if flags[0] == "--save-index":
        args[0] = data["pool"]
    _one_error_line(_invoke(*args), words)
    assert [_snapshot(w) for w in watched] == before  # not one byte, name or mtime changed
    after = os.stat("/dev/null")
    assert (after.st_mode, after.st_rdev) == (dev.st_mode, dev.st_rdev)


def test_an_empty_folder_becomes_a_store(data, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _invoke(data["pool"], "--save-index", empty, "--quiet", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in empty.iterdir()) == ["CURRENT", "store.json", "store.lock", "v000001"]
    assert len(load_store(empty)["ids"]) == 60


def test_save_index_replaces_a_store_it_wrote(data, store):
    user_file = store / "README.txt"  # a user's note inside a store is never ours to delete
    user_file.write_text("our ingestion store")
    res = _invoke(data["a"], "--save-index", store, "--quiet", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert [i.split("/")[-1][:2] for i in load_store(store)["ids"]] == ["a_"] * 10
    assert sorted(p.name for p in store.iterdir()) == ["CURRENT", "README.txt", "store.json", "store.lock", "v000002"]


# --- 4. the writers' lock: concurrent --update runs never lose a batch ---------------------


def _audit_exe() -> str:
    exe = Path(sys.executable).with_name("audit")
    return str(exe) if exe.exists() else "audit"


def race(store: Path, batches: list[Path]) -> list[int]:
    """Start one ``audit scan BATCH --against STORE --update`` per batch while holding STORE's
    lock, let go once every run waits on it (has the lock file open), return the exit codes."""
    lock = str((store / "store.lock").resolve())

    def waiting(p) -> bool:
        try:
            return any(os.readlink(f"/proc/{p.pid}/fd/{fd}") == lock for fd in os.listdir(f"/proc/{p.pid}/fd"))
        except OSError:
            return False

    with StoreWriter(store):
        procs = [subprocess.Popen([_audit_exe(), "scan", str(b), "--against", str(store), "--update", "--fail-on",
                                   "never", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for b in batches]
        deadline = time.monotonic() + 300
        while not all(waiting(p) for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(waiting(p) for p in procs)
    return [p.wait(timeout=600) for p in procs]


# One writer in a fresh process (the audit CLI imports torch: seconds per start; this does not).
WRITER = """
import sys
from audit.data.load import load_images
from audit.scan.store import update_store
def progress(stage, done, total):
    if stage == "wait for lock" and done == 0:
        print("waiting", flush=True)
result, added = update_store(load_images(sys.argv[2]), sys.argv[1], progress=progress, accept=lambda r: True)
print("added", added, flush=True)
"""


def test_two_writers_released_together_both_land(data, tmp_path):
    """Both writers start while this test holds the lock, so both are waiting when it is let go:
    the second to get it must scan against, and keep, the first one's batch."""
    for trial in range(2):
        store = tmp_path / f"S{trial}"
        shutil.copytree(data["store"], store)
        with StoreWriter(store):
            procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(b)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for b in (data["a"], data["b"])]
            assert [p.stdout.readline().strip() for p in procs] == ["waiting", "waiting"]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert [o[0].strip() for o in outs] == ["added 10", "added 10"]
        ids = load_store(store)["ids"]
        assert len(ids) == 80 and len(set(ids)) == 80  # the 60 stored, then both batches, once each
        assert {i[:2] for i in ids[60:]} == {"a_", "b_"}


@pytest.mark.slow
def test_twenty_trials_of_two_concurrent_cli_updates(data, tmp_path):
    """The issue's check, through the CLI: every run that exits 0 has its batch in the store."""
    for trial in range(20):
        store = tmp_path / f"S{trial}"
        shutil.copytree(data["store"], store)
        codes = race(store, [data["a"], data["b"]])
        ids = load_store(store)["ids"]
        assert codes == [0, 0] and len(ids) == 80 and {i[:2] for i in ids[60:]} == {"a_", "b_"}


def test_a_reader_follows_a_version_replaced_while_it_opens_it(data, store, monkeypatch):
    """Readers take no lock: a writer may publish and collect the version a reader is opening."""
    import audit.scan.store as store_mod
    from audit.data.load import load_images

    real, calls = store_mod._load, []

    def load(path, folder, files, check):
        calls.append(folder.name)
        if len(calls) == 1:  # between reading CURRENT and opening the files, another run adds a batch
            monkeypatch.setattr(store_mod, "_load", real)
            store_mod.update_store(load_images(data["a"]), store, lock_timeout=5)
            monkeypatch.setattr(store_mod, "_load", load)
        return real(path, folder, files, check)

    monkeypatch.setattr(store_mod, "_load", load)
    assert len(load_store(store)["ids"]) == 70
    assert calls == ["v000001", "v000002"]  # the first attempt found its version gone, then retried


def test_a_writer_that_waits_too_long_gives_up_with_the_holder(data, store):
    before = _snapshot(store)
    with StoreWriter(store):  # this process holds the lock (flock is per open file)
        res = _invoke(data["a"], "--against", store, "--update", "--lock-timeout", "0.3", "--fail-on", "never")
    line = _one_error_line(res, "is locked by another audit scan", f"(pid {os.getpid()}) since", "--lock-timeout")
    assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)
    assert _snapshot(store) == before


def test_update_is_one_pass_under_the_lock(data, store, monkeypatch):
    """The gate sees the scan that is appended: a batch scanned once, appended by the same pass."""
    import audit.scan.store as store_mod

    calls = []
    real = store_mod._scan
    monkeypatch.setattr(store_mod, "_scan", lambda *a, **k: calls.append(k["keep"]) or real(*a, **k))
    res = _invoke(data["a"], "--against", store, "--update", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert calls == [True] and "added 10 images to" in res.stderr


# --- 5. batch ids already in the store ----------------------------------------------------


def test_a_batch_already_stored_is_not_added_twice(data, store, tmp_path):
    assert _invoke(data["a"], "--against", store, "--update", "--fail-on", "never").exit_code == 0
    before = _snapshot(store)
    res = _invoke(data["a"], "--against", store, "--update", "--fail-on", "never")  # a CI rerun
    assert res.exit_code == 0, res.output
    assert "nothing added to" in res.stderr and "already in it" in res.stderr
    assert _snapshot(store) == before
    res = _invoke(data["a"], "--against", store, "--format", "json", "--quiet", "--fail-on", "never")
    doc = json.loads(res.stdout)
    assert res.exit_code == 0 and doc["n_images"] == 70
    assert any("10 of the batch's images are already in the store" in n for n in doc["notes"])
    changed = tmp_path / "changed"
    shutil.copytree(data["a"], changed)
    shutil.copyfile(data["b"] / "b_000.png", changed / "a_003.png")  # same name, other image
    _one_error_line(_invoke(changed, "--against", store, "--fail-on", "never"), "with other pixels", "a_003.png")


# --- 2. kill -9 at every file operation ----------------------------------------------------


def _kill_matrix(tmp_path, *args) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(HERE / "store_kill.py"), str(tmp_path / "kill"), *args],
                          capture_output=True, text=True, env=env, timeout=1800)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and results, proc.stdout + proc.stderr
    return results


def test_kill_at_file_operations_of_save_and_update_leaves_a_usable_store(tmp_path):
    # each operation that creates, renames or deletes a name, and every 10th write, fsync or
    # deletion inside a folder being removed; all of them and torn writes in the slow test and
    # benchmarks/bench_store_safety.py
    results = _kill_matrix(tmp_path, "--scenarios", "save-v2,update-v2", "--every", "10")
    for r in results:
        assert r["failures"] == [] and r["kill_points"] >= 15, r


@pytest.mark.slow
def test_kill_at_every_file_operation_torn_writes_too(tmp_path):
    for r in _kill_matrix(tmp_path, "--torn"):
        assert r["failures"] == [] and r["kill_points"] > r["file_ops"], r  # every op, and torn writes


def test_leftovers_of_killed_writers_are_collected_and_nothing_else(data, store):
    cur = read_current(store)[0]
    shutil.copytree(store / cur, store / ".v000007.tmp-4242")  # a version being written when killed
    shutil.copytree(store / cur, store / "v000005")  # renamed, but CURRENT never switched to it
    (store / ".CURRENT.4242.tmp").write_text("v000005 " + "0" * 64)
    (store / "README.txt").write_text("mine")
    (store / "v1").mkdir()  # not our pattern: a user's folder
    res = _invoke(data["a"], "--against", store, "--update", "--fail-on", "never", "--quiet")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in store.iterdir()) == ["CURRENT", "README.txt", "store.json", "store.lock",
                                                       "v000002", "v1"]


# --- stores of the old flat layout (version 1) ---------------------------------------------


def _flat(store: Path, dest: Path) -> Path:
    """The version-1 layout the old code wrote: the data files directly in the folder."""
    dest.mkdir(parents=True)
    for f in (store / read_current(store)[0]).iterdir():
        if f.name != "manifest.json":
            shutil.copyfile(f, dest / f.name)
    return dest


def test_a_flat_v1_store_is_read_then_migrated_without_losing_user_files(data, tmp_path):
    old = _flat(data["store"], tmp_path / "OLD")
    (old / "notes.md").write_text("ours")
    before = _snapshot(old)
    res = _invoke(data["a"], "--against", old, "--quiet", "--format", "json", "--fail-on", "never")
    assert res.exit_code == 0 and json.loads(res.stdout)["n_images"] == 70
    assert _snapshot(old) == before  # a reader changes nothing
    res = _invoke(data["a"], "--against", old, "--update", "--quiet", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in old.iterdir()) == ["CURRENT", "notes.md", "store.json", "store.lock", "v000001"]
    assert len(load_store(old)["ids"]) == 70


def test_a_store_hidden_by_a_killed_old_swap_is_recovered_and_strays_cleaned(data, tmp_path):
    parent = tmp_path / "p"
    parent.mkdir()
    _flat(data["store"], parent / ".S.old-4242")  # the old code renamed S away ...
    newer = _flat(data["store"], parent / ".S.abcd_123")  # ... and was killed before renaming this in
    os.utime(newer / "meta.json", (2e9, 2e9))
    half = parent / ".S.zz9zz9zz"  # killed while writing its copy: no meta.json yet
    half.mkdir()
    (half / "rows.npy").write_bytes(b"\x93NUMPY partial")
    mine = parent / ".S.photos_1"  # the old pattern, but a user's files
    mine.mkdir()
    (mine / "cat.png").write_bytes(b"png")
    (parent / ".S.old-77").write_text("a user's file the old code renamed")  # a file: never ours
    res = _invoke(data["a"], "--against", parent / "S", "--quiet", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert (parent / "S" / "meta.json").is_file() and not newer.exists()  # the newest complete copy
    res = _invoke(data["b"], "--against", parent / "S", "--update", "--quiet", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in parent.iterdir()) == [".S.old-77", ".S.photos_1", "S"]
    assert (mine / "cat.png").read_bytes() == b"png"
    assert len(load_store(parent / "S")["ids"]) == 70


# --- 3. checksums, and every kind of damaged store: exit 2, one line -----------------------


VERSION_FILES = ("meta.json", "ids.json", "rows.npy", "eligible.npy", "mean.npy", "components.npy",
                 "projected.npy", "index.faiss", "knn_indices.npy", "knn_sqdist.npy", "manifest.json")


def _ver(s: Path) -> Path:
    return s / read_current(s)[0]


def _truncate(name):
    def f(s):
        p = _ver(s) / name
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return f


def _flip(name):
    def f(s):
        p = _ver(s) / name
        b = bytearray(p.read_bytes())
        b[len(b) // 2] ^= 0x10
        p.write_bytes(bytes(b))
    return f


def _delete(name):
    return lambda s: (_ver(s) / name).unlink()


def _consistent(name, data: bytes):
    """Replace a version file and re-sign it (manifest and CURRENT): only the content checks are
    left to catch it, as in a store someone rewrote by hand."""
    def f(s):
        v = _ver(s)
        (v / name).write_bytes(data(v) if callable(data) else data)
        man = json.loads((v / "manifest.json").read_text())
        w = HashingWriter(open(os.devnull, "wb"))
        w.write((v / name).read_bytes())
        man["files"][name] = w.entry()
        raw = json.dumps(man).encode()
        (v / "manifest.json").write_bytes(raw)
        (s / "CURRENT").write_text(f"{v.name} {hashlib.sha256(raw).hexdigest()}\n")
    return f


def _resigned_manifest(raw: bytes):
    def f(s):
        (_ver(s) / "manifest.json").write_bytes(raw)
        (s / "CURRENT").write_text(f"{_ver(s).name} {hashlib.sha256(raw).hexdigest()}\n")
    return f


def _npy(arr) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _meta(**kw):
    return lambda v: json.dumps({**json.loads((v / "meta.json").read_text()), **kw}).encode()


def _on_flat(fn):
    def f(s):
        flat = _flat(s, s.parent / "flat")
        shutil.rmtree(s)
        flat.rename(s)
        fn(s)
    return f


def _fifo(name):
    def f(s):
        (_ver(s) / name).unlink()
        os.mkfifo(_ver(s) / name)
    return f


CORRUPTIONS = {
    **{f"truncated-{n}": (_truncate(n), n) for n in VERSION_FILES},
    **{f"flipped-{n}": (_flip(n), n) for n in VERSION_FILES},
    **{f"missing-{n}": (_delete(n), n) for n in VERSION_FILES},
    "current-garbage": (lambda s: (s / "CURRENT").write_text("hello\n"), "CURRENT"),
    "current-names-missing-version": (lambda s: (s / "CURRENT").write_text("v000099 " + "0" * 64 + "\n"), "manifest"),
    "current-wrong-digest": (lambda s: (s / "CURRENT").write_text(f"{_ver(s).name} {'1' * 64}\n"), "manifest"),
    "current-missing": (lambda s: (s / "CURRENT").unlink(), "no scan index"),
    "current-fifo": (lambda s: ((s / "CURRENT").unlink(), os.mkfifo(s / "CURRENT")), "CURRENT"),
    "marker-garbage": (lambda s: (s / "store.json").write_text("{oops"), "store.json"),
    "marker-future-version": (lambda s: (s / "store.json").write_text(
        '{"format": "ssl-poison-audit/scan-store", "version": 3}'), "format version 3"),
    "manifest-not-a-manifest": (_resigned_manifest(b"[1, 2]"), "is not a manifest"),
    "rows-wrong-shape": (_consistent("rows.npy", _npy(np.zeros((60, 100), np.uint8))), "disagree"),
    "projected-float64": (_consistent("projected.npy", lambda v: _npy(np.load(v / "projected.npy").astype(float))),
                          "disagree"),
    "ids-duplicated": (_consistent("ids.json", lambda v: json.dumps(["x"] * 60).encode()), "disagree"),
    "ids-not-strings": (_consistent("ids.json", lambda v: json.dumps([{"a": 1}] * 60).encode()), "disagree"),
    "ids-bad-json": (_consistent("ids.json", b"[1, 2"), "corrupt"),
    "meta-shape-strings": (_consistent("meta.json", _meta(shape=["a", "b", "c"])), "meta.json"),
    "meta-n-wrong": (_consistent("meta.json", _meta(n=61)), "disagree"),
    "npy-object-array": (_consistent("eligible.npy", _npy(np.array([{}] * 60, dtype=object))), "corrupt"),
    "ids-fifo": (_fifo("ids.json"), "ids.json"),
    "flat-rows-wrong-shape": (_on_flat(lambda s: np.save(s / "rows.npy", np.zeros((3, 3), np.uint8))), "disagree"),
    "flat-ids-bad-json": (_on_flat(lambda s: (s / "ids.json").write_text("[")), "corrupt"),
    "flat-index-garbage": (_on_flat(lambda s: (s / "index.faiss").write_bytes(b"IxF2" + b"\0" * 40)), "corrupt"),
    "flat-missing-projected": (_on_flat(lambda s: (s / "projected.npy").unlink()), "missing projected.npy"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_damaged_store_is_one_line_and_exit_2_never_a_traceback(data, store, name):
    damage, words = CORRUPTIONS[name]
    damage(store)
    _one_error_line(_invoke(data["a"], "--against", store, "--fail-on", "never"), words)
    before = _snapshot(store)
    _one_error_line(_invoke(data["a"], "--against", store, "--update", "--fail-on", "never"), words)
    after = _snapshot(store)  # a writer that cannot read the store deletes and changes nothing ...
    lock = str(store / "store.lock")
    if lock not in before:  # ... but takes the lock first (a flat v1 store gets its lock file)
        del after[lock], after[str(store)], before[str(store)]
    assert after == before


def test_there_are_at_least_39_kinds_of_damage():
    assert len(CORRUPTIONS) >= 39


def test_a_flipped_byte_names_the_file(data, store):
    for name in ("index.faiss", "rows.npy"):
        fresh = store.parent / f"copy-{name}"
        shutil.copytree(store, fresh)
        _flip(name)(fresh)
        with pytest.raises(CheckpointError, match=rf"corrupt: {re.escape(name)} does not match its checksum"):
            load_store(fresh)


def test_rows_of_a_big_store_are_verified_block_by_block_as_they_are_read(clean_images, tmp_path, monkeypatch):
    """Above EAGER_ROWS, rows.npy is checked per 256 KiB block before a row of it is used: an
    --against scan reads a few hundred of a million rows; an update reads (so checks) them all."""
    import audit.scan.store as store_mod
    from audit.data.imageset import ImageSet
    from audit.scan import save_index
    from audit.scan.store import scan_against, update_store

    pool = ImageSet(clean_images, tuple(f"p/{i:04d}" for i in range(len(clean_images))))  # 1997 rows: 6 blocks
    store = save_index(pool, tmp_path / "BIG")
    rows = np.load(_ver(store) / "rows.npy", mmap_mode="r")
    at = int(rows.offset) + 1500 * rows.shape[1] + 7  # a byte of row 1500, in block 4
    del rows
    raw = bytearray((_ver(store) / "rows.npy").read_bytes())
    raw[at] ^= 0xFF
    (_ver(store) / "rows.npy").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="rows.npy does not match its checksum"):
        load_store(store)  # a small rows.npy is verified whole on load
    monkeypatch.setattr(store_mod, "EAGER_ROWS", 0)
    st = load_store(store)
    assert isinstance(st["rows"], VerifiedRows)
    np.testing.assert_array_equal(st["rows"][:300], clean_images[:300].reshape(300, -1))  # block 0 only
    np.testing.assert_array_equal(st["rows"][[1996, 5]], clean_images[[1996, 5]].reshape(2, -1))  # blocks 5, 0
    with pytest.raises(CheckpointError, match=r"rows.npy does not match its checksum \(bytes 1048576\.\."):
        st["rows"][[1500]]
    with pytest.raises(CheckpointError, match=r"rows.npy does not match its checksum"):
        st["rows"][1400:1600]
    before = _snapshot(store)
    batch = ImageSet(clean_images[:4] // 3, ("n/0", "n/1", "n/2", "n/3"))
    with pytest.raises(CheckpointError, match="rows.npy does not match its checksum"):
        update_store(batch, store)  # streams every stored row into the new version: all are checked
    after = _snapshot(store)
    del before[str(store)], after[str(store)]  # its temporary version came and went; nothing else moved
    assert after == before
    scan_against(batch, store)  # reads only the rows it needs, none in the damaged block
