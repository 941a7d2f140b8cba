"""kill -9 at every file operation of a store writer, in-process: a child forked per kill point
counts the store's file operations and calls ``os._exit(137)`` at operation N (before it runs,
or, for a write, after half of its bytes: a torn write), exactly as a SIGKILL would leave the
disk. The parent then opens the store, which must hold the old pool or the new one, and lets a
next writer run, which must succeed and leave no garbage.

Run by ``test_store_safety.py`` (a reduced matrix) and ``benchmarks/bench_store_safety.py``
(all of it) as ``python store_kill.py WORK [--scenarios ...] [--torn] [--every K]``: it must be
a fresh process, because forking one whose OpenMP pool already ran (faiss) can hang the child.
The parent never runs faiss itself: every scan happens in a forked child.

Prints one JSON line per scenario: kill points, failures (each with its point and reason).
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "fashion-mnist-200.npz"
SCENARIOS = ("save-absent", "save-v2", "save-v1", "update-v2", "update-v1")
KILLED = 137


def _sets():
    from audit.data.imageset import ImageSet

    with np.load(FIXTURE) as z:
        images = z["images"]

    def make(a, b, prefix):
        return ImageSet(np.ascontiguousarray(images[a:b]), tuple(f"{prefix}/{i:03d}" for i in range(b - a)))

    return {"old": make(0, 80, "old"), "new": make(80, 160, "new"), "batch": make(160, 180, "batch"),
            "next": make(180, 190, "next")}


def _in_child(fn) -> int:
    """Run ``fn`` in a forked child; its exit status (KILLED when it was 'killed')."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except BaseException as e:  # a failure of the child is reported, not raised in the parent
            sys.stderr.write(f"child: {type(e).__name__}: {e}\n")
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


class Faults:
    """Patches the file operations a store writer uses; ``kill_at`` None only counts them."""

    def __init__(self, root: Path, kill_at: int | None, torn: bool, log: Path | None = None) -> None:
        self.root, self.kill_at, self.torn, self.n, self.log, self.kinds = str(root), kill_at, torn, 0, log, []

    def _ours(self, path, dir_fd=None) -> bool:
        return dir_fd is not None or os.path.abspath(os.fsdecode(path)).startswith(self.root)

    def step(self, kind: str) -> bool:
        """Count one operation; True when this is the one to die at."""
        self.n += 1
        if self.log is not None:
            self.kinds.append(kind)
            self.log.write_text(json.dumps(self.kinds))
        return self.n == self.kill_at

    def die(self) -> None:
        os._exit(KILLED)

    def install(self) -> None:
        from audit.scan import store_io

        real = {name: getattr(os, name) for name in ("open", "mkdir", "rename", "replace", "unlink", "rmdir", "fsync")}
        real_open, real_write = builtins.open, store_io.HashingWriter.write
        faults = self

        def wrap(name):
            fn = real[name]

            def op(*args, **kw):
                counted = name == "fsync" or faults._ours(args[0], kw.get("dir_fd") or kw.get("src_dir_fd"))
                if name == "open":
                    counted = counted and args[1] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
                kind = "rmtree" if name in ("unlink", "rmdir") and kw.get("dir_fd") is not None else name
                if counted and faults.step(kind):
                    faults.die()
                if name == "fsync":  # a killed process loses no page cache: durability is not on trial here
                    return None
                return fn(*args, **kw)

            return op

        for name in real:
            setattr(os, name, wrap(name))

        def open_(file, mode="r", *args, **kw):
            if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wxa+") and faults._ours(file):
                if faults.step("open"):
                    faults.die()
            return real_open(file, mode, *args, **kw)

        def write(self, data):
            if faults.step("write"):
                if faults.torn and len(data) > 1:
                    real_write(self, memoryview(data).cast("B")[: len(data) // 2])
                    self.fh.flush()
                faults.die()
            return real_write(self, data)

        builtins.open = open_
        store_io.HashingWriter.write = write


def _v1_copy(v2_store: Path, dest: Path) -> None:
    """The flat layout of version 1, as the old code wrote it, from a version-2 store."""
    from audit.scan.store_layout import read_current

    src = v2_store / read_current(v2_store)[0]
    dest.mkdir(parents=True)
    for f in src.iterdir():
        if f.name != "manifest.json":
            shutil.copyfile(f, dest / f.name)


def _garbage(store: Path) -> list[str]:
    names = sorted(os.listdir(store))
    bad = [n for n in names if n.startswith(".") or n in ("meta.json", "rows.npy", "ids.json")]
    versions = [n for n in names if re.fullmatch(r"v\d{6}", n)]
    if len(versions) != 1:
        bad.append(f"{len(versions)} versions")
    bad += [n for n in os.listdir(store.parent) if n.startswith(f".{store.name}.")]
    return bad


def run(work: Path, scenarios: tuple[str, ...], torn: bool, every: int) -> list[dict]:
    from audit.errors import CheckpointError
    from audit.scan import save_index
    from audit.scan.store import load_store, update_store

    sets = _sets()
    work.mkdir(parents=True, exist_ok=True)
    pristine = work / "pristine"
    if not (pristine / "CURRENT").exists():
        assert _in_child(lambda: save_index(sets["old"], pristine)) == 0, "could not build the starting store"
    ids = {k: s.ids for k, s in sets.items()}
    results = []
    for scenario in scenarios:
        op, start = scenario.split("-")
        store = work / "run" / "STORE"

        def reset() -> None:
            shutil.rmtree(work / "run", ignore_errors=True)
            (work / "run").mkdir(parents=True)
            if start == "v2":
                shutil.copytree(pristine, store)
            elif start == "v1":
                _v1_copy(pristine, store)

        if op == "save":
            action, before, after = (lambda: save_index(sets["new"], store)), ids["old"], ids["new"]
        else:
            action, before, after = (lambda: update_store(sets["batch"], store)), ids["old"], ids["old"] + ids["batch"]
        if start == "absent":
            before = None
        counter = work / "count"
        reset()

        def counted():
            Faults(work / "run", None, False, counter).install()
            action()

        assert _in_child(counted) == 0, f"{scenario}: the writer failed without a fault"
        kinds = json.loads(counter.read_text())
        total = len(kinds)
        # every operation that changes a name (create, mkdir, rename, replace, unlink, rmdir) is a
        # kill point; data writes, fsyncs and the deletions inside one folder's removal (alike),
        # every ``every``-th of them (all with --every 1)
        sampled = ("write", "fsync", "rmtree")
        data_ops = [n for n, kind in enumerate(kinds, 1) if kind in sampled]
        chosen = sorted({n for n, kind in enumerate(kinds, 1) if kind not in sampled} | set(data_ops[::every]))
        points = [(n, False) for n in chosen] + [(n, True) for n in chosen if torn and kinds[n - 1] == "write"]
        failures = []
        t0 = time.perf_counter()
        for n, t in points:
            reset()

            def killed():
                Faults(work / "run", n, t).install()
                action()

            status = _in_child(killed)
            where = f"op {n}{' torn' if t else ''}"
            if status != KILLED:
                failures.append({"point": where, "reason": f"the writer was not killed (exit {status})"})
                continue
            try:
                got = load_store(store)["ids"]
            except CheckpointError as e:
                got = None if start == "absent" and "no scan index" in str(e) else str(e)
            if got not in ([list(before)] if before else [None]) + [list(after)]:
                failures.append({"point": where, "reason": f"store neither old nor new: {str(got)[:200]}"})
                continue
            # the next writer must succeed on whatever the kill left, and collect its garbage
            def nxt():
                Faults(work / "run", None, False).install()  # counts only: no fsync, as above
                update_store(sets["next"], store) if got is not None else save_index(sets["old"], store)

            if _in_child(nxt) != 0:
                failures.append({"point": where, "reason": "the next writer failed"})
                continue
            want = list(got) + list(ids["next"]) if got is not None else list(ids["old"])
            if load_store(store)["ids"] != want or _garbage(store):
                failures.append({"point": where, "reason": f"after the next writer: garbage {_garbage(store)}"})
        results.append({"scenario": scenario, "file_ops": total, "kill_points": len(points),
                        "kinds": {k: kinds.count(k) for k in sorted(set(kinds))}, "failures": failures,
                        "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work", type=Path)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--torn", action="store_true", help="also kill each write after half of its bytes")
    p.add_argument("--every", type=int, default=1, help="of the data writes and fsyncs, kill at every K-th only")
    a = p.parse_args()
    results = run(a.work, tuple(a.scenarios.split(",")), a.torn, a.every)
    sys.exit(1 if any(r["failures"] for r in results) else 0)


if __name__ == "__main__":
    main()
