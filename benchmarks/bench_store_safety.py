"""Safety benchmark of the incremental scan STORE (issue 12): concurrent ``--update`` runs, kill -9
at every file operation, and the cost of the checksums. Results go to docs/benchmarks.md
("Store safety"); files go to ``--work`` (default /tmp/storesafety), never the repo.

    # 20 trials of two `audit scan BATCH --against STORE --update` started at once (real CLI):
    # every run that exits 0 must have its batch in the store. The benchmark holds the lock until
    # both wait on it (else a 40-image scan is over long before the other process has started);
    # --no-hold lets them run free
    python benchmarks/bench_store_safety.py race --trials 20
    # kill -9 at each file operation, in-process (fork + os._exit at operation N, torn writes too)
    python benchmarks/bench_store_safety.py kill --mode inject
    # the same with the real CLI under strace: one run per store file operation, killed by
    # `strace -e inject=SYSCALL:signal=KILL:when=N` (N-th call of that syscall in the main thread)
    python benchmarks/bench_store_safety.py kill --mode strace
    # sha256 verification on load at 1M 32×32×3 images (a store of the real layout and sizes,
    # or --store the one bench_scan_scale.py writes), --against a 10k batch with checksums on and
    # off, and the cost of hashing and fsync when a version is written
    python benchmarks/bench_store_safety.py checksum --n 1000000 --repeat 3 \
        --store /tmp/scanbench/synth1000000.store --batch /tmp/scanbench/batch10k.npz --write

After each kill the store must open (``load_store``) with the old pool or the new one (for a
first ``--save-index``: the new one, or "no scan index" and a rerun that succeeds), and a next
writer must succeed and leave no temporary or superseded entry behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = Path("/tmp/storesafety")
FIXTURE = ROOT / "fixtures" / "fashion-mnist-200.npz"
KILL_SCRIPT = ROOT / "tests" / "audit" / "scan" / "store_kill.py"
QUIET = ["--quiet", "--fail-on", "never"]


def audit_exe() -> str:
    exe = Path(sys.executable).with_name("audit")
    return str(exe) if exe.exists() else "audit"


_FROZEN: dict[str, str] = {}  # PYTHONPATH of a frozen copy of the package (strace mode)


def _env() -> dict:
    return dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                OPENBLAS_NUM_THREADS="1", **_FROZEN)


def _freeze(work: Path) -> None:
    """Run every CLI of the strace matrix on a copy of ``audit/`` taken now: a kill point is the
    N-th call of a syscall, and an edit of the checkout during the hours the matrix takes (an
    import added or removed) would move every later call."""
    code = work / "code"
    shutil.rmtree(code, ignore_errors=True)
    shutil.copytree(ROOT / "audit", code / "audit", ignore=shutil.ignore_patterns("__pycache__"))
    _FROZEN["PYTHONPATH"] = str(code)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _inputs(work: Path) -> dict[str, Path]:
    """Small real inputs (.npz, ids kept apart so no two sets clash): the stored pool, a pool
    that replaces it, a batch, the next batch."""
    with np.load(FIXTURE) as z:
        images = z["images"]
    out = {}
    for name, a, b in (("old", 0, 80), ("new", 80, 160), ("batch", 160, 180), ("next", 180, 190)):
        out[name] = work / f"{name}.npz"
        if not out[name].exists():
            np.savez(out[name], images=images[a:b], ids=np.array([f"{name}/{i:03d}" for i in range(b - a)]))
    return out


def _pristine(work: Path, inputs: dict[str, Path]) -> Path:
    store = work / "pristine"
    if not (store / "CURRENT").exists():
        subprocess.run([audit_exe(), "scan", str(inputs["old"]), "--save-index", str(store), *QUIET], check=True,
                       env=_env())
    return store


# --- race ----------------------------------------------------------------------------------


def cmd_race(a) -> None:
    from audit.scan.store import load_store
    from audit.scan.store_layout import StoreWriter

    a.work.mkdir(parents=True, exist_ok=True)
    inputs = _inputs(a.work)
    pristine = _pristine(a.work, inputs)
    n_old = len(load_store(pristine)["ids"])
    halves = a.work / "race_a.npz", a.work / "race_b.npz"
    with np.load(inputs["new"]) as z:
        for i, h in enumerate(halves):
            np.savez(h, images=z["images"][i * 40 : (i + 1) * 40], ids=np.array([f"r{i}/{j:02d}" for j in range(40)]))
    print(f"race: {a.trials} trials of 2 concurrent --update runs of 40 images each; load {_load()}", flush=True)
    ok = lost = waited = both_waited = 0
    t0 = time.perf_counter()
    for trial in range(a.trials):
        store = a.work / "race" / f"S{trial}"
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(pristine, store)
        with StoreWriter(store) if a.hold else contextlib.nullcontext():
            procs = [subprocess.Popen([audit_exe(), "scan", str(h), "--against", str(store), "--update",
                                       "--fail-on", "never"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True, env=_env()) for h in halves]
            deadline = time.monotonic() + 300
            while a.hold and _waiters(store / "store.lock", procs) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)  # both runs started, loaded their batch and now wait on the lock
            both_waited += a.hold and _waiters(store / "store.lock", procs) >= 2
        errs = [p.communicate()[1] for p in procs]
        codes = [p.returncode for p in procs]
        ids = set(load_store(store)["ids"])
        present = [any(i.startswith(f"r{k}/") for i in ids) for k in range(2)]
        lost += sum(1 for c, here in zip(codes, present) if c == 0 and not here)
        ok += all(c == 0 for c in codes) and all(present) and len(ids) == n_old + 80
        waited += any("wait for lock" in e for e in errs)  # the CLI's log line for a wait >= 1 s
        print(f"trial {trial}: exit {codes}, batches in store {present}, {len(ids)} ids", flush=True)
    print(f"race: {ok}/{a.trials} trials with both runs exit 0 and both batches stored; {lost} batches lost; "
          f"{both_waited} trials with both runs blocked on the lock at once (--hold); {waited} where a run "
          f"logged a wait of 1 s or more; {time.perf_counter() - t0:.0f} s; load {_load()}")


def _waiters(lock: Path, procs) -> int:
    """How many of ``procs`` hold ``lock`` open: a run opens it to poll for the flock, and cannot
    get it while this benchmark holds it, so each one counted is waiting."""
    target, n = str(lock.resolve()), 0
    for p in procs:
        try:
            fds = os.listdir(f"/proc/{p.pid}/fd")
        except OSError:
            continue
        n += any(_readlink(f"/proc/{p.pid}/fd/{fd}") == target for fd in fds)
    return n


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


# --- kill -9 -------------------------------------------------------------------------------


def cmd_kill(a) -> None:
    if a.mode == "inject":
        args = [sys.executable, str(KILL_SCRIPT), str(a.work / "inject"), "--scenarios", a.scenarios]
        args += ["--torn"] if a.torn else []
        print(f"kill --mode inject: {' '.join(args[1:])}; load {_load()}", flush=True)
        rc = subprocess.run(args, env=_env()).returncode
        print(f"exit {rc}; load {_load()}")
        sys.exit(rc)
    _freeze(a.work / "strace")
    results = [strace_matrix(a.work / "strace", scenario, a.next) for scenario in a.scenarios.split(",")]
    sys.exit(1 if any(r["failures"] for r in results) else 0)


_CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")
_MODIFY = {"openat", "open", "creat", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat",
           "rmdir", "write", "pwrite64", "fsync", "fdatasync", "ftruncate", "link", "linkat"}


def _trace(cmd: list[str], out: Path, extra: list[str] = ()) -> int:
    return subprocess.run(["strace", "-o", str(out), "-y", "-qq", *extra, *cmd], env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def _store_ops(trace: Path, tag: str) -> list[tuple[str, int, str]]:
    """``(syscall, k, args)``: each call that changes the store, with its ordinal among all calls
    of that syscall (what ``inject=...:when=k`` counts)."""
    seen: dict[str, int] = {}
    ops = []
    for line in trace.read_text(errors="replace").splitlines():
        m = _CALL.match(line)
        if m is None:
            continue
        name, args = m.group(1), m.group(2)
        seen[name] = seen.get(name, 0) + 1
        if name not in _MODIFY or tag not in args:
            continue
        if name in ("openat", "open") and not re.search(r"O_WRONLY|O_RDWR|O_CREAT", args):
            continue
        ops.append((name, seen[name], args[:160]))
    return ops


def _same(args: str) -> str:
    """A call's arguments without the numbers that differ from run to run (pids in temporary
    names, descriptors), to check that the run died at the call it was meant to."""
    return re.sub(r"\d+", "N", args)[:100]


def _garbage(store: Path) -> list[str]:
    names = sorted(os.listdir(store))
    bad = [n for n in names if n.startswith(".") or n in ("meta.json", "rows.npy", "ids.json")]
    if len([n for n in names if re.fullmatch(r"v\d{6}", n)]) != 1:
        bad.append("not exactly one version")
    return bad + [n for n in os.listdir(store.parent) if n.startswith(f".{store.name}.")]


def strace_matrix(work: Path, scenario: str, run_next: bool) -> dict:
    from audit.errors import CheckpointError
    from audit.scan.store import load_store
    from audit.scan.store_layout import read_current

    work.mkdir(parents=True, exist_ok=True)
    inputs = _inputs(work)
    pristine = _pristine(work, inputs)
    ids = {k: list(np.load(p)["ids"]) for k, p in inputs.items()}
    op, start = scenario.split("-")
    store = work / "run" / "STORE"

    def reset() -> None:
        shutil.rmtree(work / "run", ignore_errors=True)
        (work / "run").mkdir(parents=True)
        if start == "v2":
            shutil.copytree(pristine, store)
        elif start == "v1":  # the flat layout of the old code: the current version's files, no manifest
            shutil.copytree(pristine / read_current(pristine)[0], store, ignore=shutil.ignore_patterns("manifest.json"))

    if op == "save":
        cmd = [audit_exe(), "scan", str(inputs["new"]), "--save-index", str(store), *QUIET]
        outcomes = ([None] if start == "absent" else [ids["old"]]) + [ids["new"]]
    else:
        cmd = [audit_exe(), "scan", str(inputs["batch"]), "--against", str(store), "--update", *QUIET]
        outcomes = [ids["old"], ids["old"] + ids["batch"]]
    reset()
    subprocess.run(cmd, env=_env(), check=True, stdout=subprocess.DEVNULL)  # warm caches, like every run after
    reset()
    full = work / "full.trace"
    assert _trace(cmd, full) == 0, f"{scenario}: the traced run failed"
    ops = _store_ops(full, str(work / "run"))
    print(f"kill --mode strace {scenario}: {len(ops)} store file operations in `{' '.join(cmd[1:])}`; "
          f"load {_load()}", flush=True)
    failures, missed = [], 0
    t0 = time.perf_counter()
    for i, (name, k, args) in enumerate(ops, 1):
        reset()
        hit = work / "hit.trace"
        code = _trace(cmd, hit, ["-e", f"trace={name}", "-e", f"inject={name}:signal=KILL:when={k}"])
        calls = [m.group(2) for m in map(_CALL.match, hit.read_text(errors="replace").splitlines())
                 if m is not None and m.group(1) == name]
        if code not in (137, -9) or not calls or _same(calls[-1]) != _same(args):
            missed += 1  # the run did not die at this call (a different call order): reported apart
            print(f"  {i}: {name}#{k} missed (exit {code})", flush=True)
            continue
        try:
            got = load_store(store)["ids"]
        except CheckpointError as e:
            got = None if "no scan index" in str(e) else str(e)
        if got not in outcomes:
            failures.append(f"{name}#{k} {args[:80]}: store is neither old nor new ({str(got)[:120]})")
        elif run_next:
            nxt = ([audit_exe(), "scan", str(inputs["next"]), "--against", str(store), "--update", *QUIET]
                   if got is not None else [audit_exe(), "scan", str(inputs["old"]), "--save-index", str(store), *QUIET])
            rc = subprocess.run(nxt, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            want = (got + ids["next"]) if got is not None else ids["old"]
            if rc != 0 or load_store(store)["ids"] != want or _garbage(store):
                failures.append(f"{name}#{k} {args[:80]}: next writer exit {rc}, garbage {_garbage(store)}")
        print(f"  {i}/{len(ops)}: killed at {name}#{k} {args[:70]} -> "
              f"{'OLD' if got == outcomes[0] else 'NEW' if got == outcomes[-1] else 'BAD'}", flush=True)
    result = {"scenario": scenario, "mode": "strace", "store_ops": len(ops), "killed": len(ops) - missed,
              "missed": missed, "failures": failures, "seconds": round(time.perf_counter() - t0), "load": _load()}
    print(json.dumps(result), flush=True)
    return result


# --- checksum cost -------------------------------------------------------------------------


def cmd_checksum(a) -> None:
    """A store of the real layout at ``--n`` 32×32×3 images, written by the real writer from
    synthetic arrays (the scan itself is not what is measured), then: sha256 throughput, the
    verification alone, and load_store with and without it, warm page cache, median of repeats."""
    import faiss

    from audit.features import Features, Projection
    from audit.neighbors import NeighborGraph
    from audit.scan.pipeline import ScanConfig, ScanContext
    from audit.scan.store import _write_version, load_store
    from audit.scan.store_io import verify
    from audit.scan.store_layout import StoreWriter, open_version

    store = a.store or a.work / f"checksum{a.n}"
    d, dim, k = 32 * 32 * 3, 64, 16
    if not (store / "CURRENT").exists():
        rng = np.random.default_rng(0)
        a.work.mkdir(parents=True, exist_ok=True)
        rows_path = a.work / f"rows{a.n}.npy"
        rows = np.lib.format.open_memmap(rows_path, "w+", np.uint8, (a.n, d))
        for s in range(0, a.n, 65536):
            rows[s : s + 65536] = rng.integers(0, 256, (min(65536, a.n - s), d), np.uint8)
        rows.flush()
        rows = np.load(rows_path, mmap_mode="r")
        projected = rng.standard_normal((a.n, dim), np.float32)
        index = faiss.IndexFlatL2(dim)
        index.add(projected)
        graph = NeighborGraph(indices=rng.integers(0, a.n, (a.n, k)), sqdist=rng.random((a.n, k), np.float32),
                              projected=projected, index=index, kind="flat")
        proj = Projection(np.zeros(d, np.float32), np.zeros((d, dim), np.float32))
        ctx = ScanContext(Features(rows, projected, proj), graph, tuple(f"{i:07d}" for i in range(a.n)), ScanConfig(),
                          (32, 32, 3))
        t0 = time.perf_counter()
        with StoreWriter(store) as w:
            _write_version(w, ctx, np.ones(a.n, bool), (graph.indices, graph.sqdist))
        print(f"wrote {store} ({a.n} images) in {time.perf_counter() - t0:.1f} s, hashing included", flush=True)
        rows_path.unlink()
        del rows, projected, index, graph, ctx
    folder, files = open_version(store)
    size = sum(e["size"] for e in files.values())
    buf = np.random.default_rng(1).integers(0, 256, 256 << 20, np.uint8).tobytes()
    import hashlib

    t0 = time.perf_counter()
    hashlib.sha256(buf).digest()
    sha = len(buf) / (time.perf_counter() - t0) / 1e9
    t0 = time.perf_counter()
    hashlib.blake2b(buf).digest()
    blake = len(buf) / (time.perf_counter() - t0) / 1e9
    print(f"store {size / 1e9:.2f} GB in {len(files)} files; sha256 {sha:.2f} GB/s, blake2b {blake:.2f} GB/s "
          f"(one thread); load {_load()}", flush=True)
    import audit.scan.store as store_mod

    cases = [("verify every file whole (what an update checks)", lambda: verify(folder, files, tuple(files))),
             ("verify every file whole, 1 thread", lambda: verify(folder, files, tuple(files), workers=1)),
             ("load_store (rows.npy checked as rows are read)", lambda: load_store(store)),
             ("load_store, no checksum", lambda: load_store(store, verify_checksums=False))]
    if a.batch is not None:
        from audit.data.load import load_images

        batch = load_images(a.batch)
        unchecked = lambda path: store_mod.__dict__["_real_load_store"](path, verify_checksums=False)  # noqa: E731
        store_mod._real_load_store = store_mod.load_store

        def against(check: bool):
            store_mod.load_store = store_mod._real_load_store if check else unchecked
            try:
                res = store_mod.scan_against(batch, store)
            finally:
                store_mod.load_store = store_mod._real_load_store
            return res

        cases += [(f"scan_against {len(batch)} images, checksums on", lambda: against(True)),
                  (f"scan_against {len(batch)} images, checksums off", lambda: against(False))]
    if a.write:  # what checksums and fsync add to writing a version (what every --update at 1M does)
        cases += [(f"write a version: {m}", lambda m=m: _write_copy(store, a.work / "copy", m))
                  for m in ("sha256 + fsync (as shipped)", "sha256, no fsync", "no sha256, no fsync")]
    timing: dict[str, list[float]] = {}
    for _ in range(a.repeat):
        for name, fn in cases:
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            timing.setdefault(name, []).append(time.perf_counter() - t0)
            timing.setdefault(name + ", CPU", []).append(time.process_time() - c0)
    for name, v in timing.items():
        print(f"{name}: median {statistics.median(v):.2f} s ({', '.join(f'{x:.2f}' for x in v)})")
    print(f"load {_load()}")


def _write_copy(store: Path, dest: Path, mode: str) -> None:
    """Write the current version of ``store`` again, as a new store at ``dest``, through the real
    writer; ``mode`` leaves out the fsyncs and/or the hashing. Dirty pages of earlier runs are
    flushed first (``os.sync``) so each run pays only for its own writes."""
    import hashlib

    from audit.features import Features
    from audit.neighbors import NeighborGraph
    from audit.scan import store_io
    from audit.scan.pipeline import ScanConfig, ScanContext
    from audit.scan.store import _write_version, load_store
    from audit.scan.store_layout import StoreWriter

    class NoHash:
        def __init__(self, *data) -> None:
            pass

        def update(self, data) -> None:
            pass

        def hexdigest(self) -> str:
            return "0" * 64

    st = load_store(store, verify_checksums=False)
    knn = st["knn"]
    graph = NeighborGraph(indices=knn[0], sqdist=knn[1], projected=st["projected"], index=st["index"], kind=st["kind"])
    ctx = ScanContext(Features(st["rows"], st["projected"], st["projection"]), graph, tuple(st["ids"]), ScanConfig(),
                      st["shape"])
    shutil.rmtree(dest, ignore_errors=True)
    os.sync()
    real_fsync, real_sha = os.fsync, store_io.hashlib.sha256
    try:
        if "no fsync" in mode:
            os.fsync = lambda fd: None
        if "no sha256" in mode:
            store_io.hashlib.sha256 = NoHash
        with StoreWriter(dest) as w:
            _write_version(w, ctx, st["eligible"], knn)
    finally:
        os.fsync, store_io.hashlib.sha256 = real_fsync, real_sha
    assert hashlib.sha256 is real_sha


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("race", "kill", "checksum"))
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--hold", action=argparse.BooleanOptionalAction, default=True,
                   help="race: hold the lock until both runs wait on it, so every trial is a real race")
    p.add_argument("--mode", choices=("inject", "strace"), default="inject")
    p.add_argument("--scenarios", default="save-absent,save-v2,save-v1,update-v2,update-v1",
                   help="kill: which writers (save, update) from which starting store (absent, v2, flat v1)")
    p.add_argument("--torn", action=argparse.BooleanOptionalAction, default=True, help="inject: torn writes too")
    p.add_argument("--next", action=argparse.BooleanOptionalAction, default=True,
                   help="strace: after each kill, run a next writer and check it leaves no garbage")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch", type=Path, help="checksum: also time scan_against of this batch (e.g. "
                                                "bench_scan_scale.py's batch10k.npz) with and without checksums")
    p.add_argument("--write", action="store_true", help="checksum: also time writing a version with and "
                                                           "without sha256 and fsync")
    p.add_argument("--store", type=Path, help="checksum: measure this existing store (e.g. bench_scan_scale.py's "
                                                "synth1000000.store) instead of writing a synthetic one")
    p.add_argument("--work", type=Path, default=WORK)
    a = p.parse_args()
    {"race": cmd_race, "kill": cmd_kill, "checksum": cmd_checksum}[a.what](a)


if __name__ == "__main__":
    main()
