"""Scale benchmark of ``audit scan`` (paper 5.2): wall time, CPU time and peak memory of the CLI
as a subprocess, on pools too large for the detection benchmark (``bench_scan.py``).

Three measurements, each one a subcommand; every run prints one CSV-ish line with the load
average (``os.getloadavg``) at start and end, because the 2 cores are shared:

    # 1. the 60k Fashion-MNIST train split as a PNG folder, decode included (writes the PNGs once)
    python benchmarks/bench_scan_scale.py png --repeat 3
    # 2. a synthetic 32×32×3 pool (.npy, written in chunks, bridges injected), scanned from disk
    python benchmarks/bench_scan_scale.py gen --n 1000000
    python benchmarks/bench_scan_scale.py scan --n 1000000 --save-index
    # 3. a 10k batch (one more bridge inside) against the stored index of that pool
    python benchmarks/bench_scan_scale.py against --n 1000000 --repeat 3

Measured per run: wall seconds, the child's CPU seconds (user + sys) and its max RSS, all from
``os.wait4`` on that one child (so repeats do not mix). Max RSS counts resident pages of the
memory-mapped pool too; the scan drops those after each streaming pass (``audit.features``).
Detection at scale: the share of injected bridge images inside ``bridge`` findings and the
number of other images flagged by a ``bridge`` finding (the synthetic pool has no clean bridges,
so every one is a false alarm). Files go to ``--work`` (default /tmp/scanbench), never the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path("/tmp/scanbench")
SIDE, CHANNELS, LATENT = 32, 3, 8  # synthetic images: an 8×8×3 latent upsampled to 32×32×3
N_CENTERS = 200  # latent cluster centres: gives the pool class-like neighbourhoods
CHUNK = 16_384  # rows generated per step: 50 MB of uint8, never the whole pool in memory


# --- synthetic pool ------------------------------------------------------------------------


def _upsample_matrix(out: int, inp: int) -> np.ndarray:
    """Bilinear (half-pixel centres) interpolation as an ``out×inp`` matrix: a linear map, so
    an interpolation in latent space stays an interpolation in pixels (up to clipping)."""
    m = np.zeros((out, inp), np.float32)
    for i in range(out):
        x = min(max((i + 0.5) * inp / out - 0.5, 0.0), inp - 1.0)
        lo = int(np.floor(x))
        hi = min(lo + 1, inp - 1)
        m[i, lo] += 1 - (x - lo)
        m[i, hi] += x - lo
    return m


def smooth_images(rng: np.random.Generator, n: int, centers: np.ndarray) -> np.ndarray:
    """uint8 ``n×32×32×3``: low-frequency noise around one of the latent centres."""
    up = _upsample_matrix(SIDE, LATENT)
    z = centers[rng.integers(len(centers), size=n)] + 0.6 * rng.standard_normal((n, LATENT, LATENT, CHANNELS))
    z = z.astype(np.float32).transpose(0, 3, 1, 2)  # n×C×8×8: two small matmuls beat one einsum
    x = (up @ z @ up.T).transpose(0, 2, 3, 1)  # n×32×32×C
    return np.clip(np.rint(128 + 45 * x), 0, 255).astype(np.uint8)


def bridge_images(xs: np.ndarray, xt: np.ndarray, n: int, density: str = "1.5-x") -> np.ndarray:
    """``rint((1-a)·x' + a·x*)`` for the paper's default density (Table 3)."""
    from redteam.density import alphas

    a = np.asarray(alphas(density, n), np.float64)[:, None, None, None]
    return np.rint((1 - a) * xs.astype(np.float64) + a * xt.astype(np.float64)).astype(np.uint8)


def generate(path: Path, n: int, *, bridges: int = 3, bridge_len: int | None = None, seed: int = 0) -> dict:
    """Write the pool as ``path`` (.npy, chunk by chunk through a memory map) and the row indices
    of its injected bridges as ``path.with_suffix('.json')``; returns that ground truth."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((N_CENTERS, LATENT, LATENT, CHANNELS))
    blen = bridge_len or max(30, n // 2000)  # 0.05% of the pool per bridge (the paper uses 0.1% in all)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, SIDE, SIDE, CHANNELS))
    for s in range(0, n, CHUNK):
        out[s : s + CHUNK] = smooth_images(rng, min(CHUNK, n - s), centers)
    rows = rng.choice(n, size=bridges * blen, replace=False).reshape(bridges, blen)
    truth = []
    for b in range(bridges):
        ends = smooth_images(rng, 2, centers)  # x' and x* come from outside the pool
        out[np.sort(rows[b])] = bridge_images(ends[0], ends[1], blen)
        truth.append(np.sort(rows[b]).tolist())
    out.flush()
    del out
    meta = {"n": n, "seed": seed, "bridge_len": blen, "bridges": truth}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return meta


def batch(path: Path, n_pool: int, n: int = 10_000, *, seed: int = 1, bridge_len: int = 40) -> dict:
    """A new batch (``.npz`` with ids that cannot clash with the pool's) holding one bridge."""
    rng = np.random.default_rng(10_000 + seed)
    centers = np.random.default_rng(0).standard_normal((N_CENTERS, LATENT, LATENT, CHANNELS))  # the pool's
    imgs = smooth_images(rng, n, centers)
    rows = np.sort(rng.choice(n, size=bridge_len, replace=False))
    ends = smooth_images(rng, 2, centers)
    imgs[rows] = bridge_images(ends[0], ends[1], bridge_len)
    ids = np.array([f"new/{i:05d}" for i in range(n)])
    np.savez(path, images=imgs, ids=ids)
    meta = {"n": n, "bridge": [f"new/{i:05d}" for i in rows]}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return meta


# --- running the CLI -----------------------------------------------------------------------


def audit_exe() -> str:
    """The ``audit`` console script of this interpreter (not a shell shim: no extra process)."""
    exe = Path(sys.executable).with_name("audit")
    return str(exe) if exe.exists() else "audit"


def run_child(args: list[str], ok: tuple[int, ...] = (0, 1)) -> dict:
    """Run one command; wall seconds, the child's CPU seconds and max RSS (MiB) from wait4.
    ``ok``: accepted exit codes (``audit scan`` exits 1 when its gate fails, as it should here)."""
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{err}")
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_mib": ru.ru_maxrss / 1024,
            "load": (load0, os.getloadavg()[0]), "exit": proc.returncode}


def flagged(report: Path) -> tuple[set[str], dict, int]:
    doc = json.loads(report.read_text())
    ids = {m["id"] for f in doc["findings"] if f["kind"] == "bridge" for m in f["members"]}
    n_chains = sum(f["kind"] == "bridge" for f in doc["findings"])
    return ids, doc.get("timings_s", {}), n_chains


def _fmt(r: dict) -> str:
    return (f"wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, max RSS {r['maxrss_mib']:.0f} MiB, "
            f"load {r['load'][0]:.1f}->{r['load'][1]:.1f}")


def _median(runs: list[dict], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def _summary(name: str, runs: list[dict]) -> None:
    print(f"{name}: median of {len(runs)}: wall {_median(runs, 'wall_s'):.1f} s, CPU {_median(runs, 'cpu_s'):.1f} s, "
          f"max RSS {max(r['maxrss_mib'] for r in runs):.0f} MiB (max), load {np.median([r['load'][0] for r in runs]):.1f}",
          flush=True)


# --- subcommands ---------------------------------------------------------------------------


def cmd_png(a) -> None:
    folder = a.work / "fmnist60k"
    if not folder.is_dir() or len(os.listdir(folder)) < 60_000:
        from audit.data.builtin import fashion_mnist
        from audit.data.write import write_png_folder

        folder.mkdir(parents=True, exist_ok=True)
        write_png_folder(fashion_mnist().train, folder)
    runs = []
    for i in range(a.repeat):
        report = a.work / "fmnist60k.json"
        r = run_child([audit_exe(), "scan", str(folder), "--json", str(report), "--quiet"])
        ids, timings, nch = flagged(report)
        r["timings"] = timings
        runs.append(r)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
        print(f"png 60k run {i}: {_fmt(r)}; stages [{stages}] s; other (decode+import+report) "
              f"{r['wall_s'] - sum(timings.values()):.1f} s; bridge images flagged {len(ids)} in {nch} chains",
              flush=True)
    _summary("png 60k", runs)
    if a.decode:  # decode alone, in this process: how much of "other" is reading the files
        from audit.data.load import load_images

        t0, c0 = time.perf_counter(), time.process_time()
        s = load_images(folder)
        print(f"decode only: {len(s)} images, wall {time.perf_counter() - t0:.1f} s, "
              f"CPU {time.process_time() - c0:.1f} s, load {os.getloadavg()[0]:.1f}")


def _pool(a) -> Path:
    return a.work / f"synth{a.n}.npy"


def cmd_gen(a) -> None:
    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    meta = generate(_pool(a), a.n, bridges=a.bridges, seed=a.seed)
    print(f"generated {_pool(a)}: {a.n} images, {len(meta['bridges'])} bridges of {meta['bridge_len']}, "
          f"{time.perf_counter() - t0:.0f} s")


def _truth(a) -> tuple[set[str], int]:
    meta = json.loads(_pool(a).with_suffix(".json").read_text())
    width = max(5, len(str(a.n - 1)))  # the .npy reader's ids: zero-padded row numbers
    return {f"{i:0{width}d}" for b in meta["bridges"] for i in b}, len(meta["bridges"])


def cmd_scan(a) -> None:
    pool = _pool(a)
    if not pool.exists():
        generate(pool, a.n, bridges=a.bridges, seed=a.seed)
    truth, n_bridges = _truth(a)
    runs = []
    for i in range(a.repeat):
        report = a.work / f"synth{a.n}.report.json"
        args = [audit_exe(), "scan", str(pool), "--json", str(report), "--quiet"]
        if a.save_index and i == 0:
            args += ["--save-index", str(a.work / f"synth{a.n}.store")]
        r = run_child(args)
        ids, timings, nch = flagged(report)
        runs.append(r)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
        print(f"scan {a.n} run {i}{' (+save-index)' if len(args) > 6 else ''}: {_fmt(r)}; stages [{stages}] s; "
              f"bridge images found {len(ids & truth)}/{len(truth)} ({n_bridges} bridges) in {nch} chains, "
              f"other images flagged {len(ids - truth)}", flush=True)
    _summary(f"scan {a.n}", runs)


def cmd_against(a) -> None:
    store = a.work / f"synth{a.n}.store"
    if not store.is_dir():
        raise SystemExit(f"no store at {store}: run `scan --n {a.n} --save-index` first")
    new = a.work / "batch10k.npz"
    meta = batch(new, a.n, a.batch)
    truth = set(meta["bridge"])
    runs = []
    for i in range(a.repeat):
        report = a.work / "batch10k.report.json"
        r = run_child([audit_exe(), "scan", str(new), "--against", str(store), "--json", str(report), "--quiet"])
        ids, timings, nch = flagged(report)
        runs.append(r)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
        print(f"against {a.n} + {a.batch} run {i}: {_fmt(r)}; stages [{stages}] s; new bridge found "
              f"{len(ids & truth)}/{len(truth)} in {nch} chains, other images flagged {len(ids - truth)}", flush=True)
    _summary(f"against {a.n}", runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("png", "gen", "scan", "against"))
    p.add_argument("--n", type=int, default=1_000_000, help="synthetic pool size")
    p.add_argument("--bridges", type=int, default=3)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-index", action="store_true", help="scan: also write the store (first run only)")
    p.add_argument("--decode", action="store_true", help="png: also time decoding alone")
    p.add_argument("--work", type=Path, default=WORK)
    a = p.parse_args()
    {"png": cmd_png, "gen": cmd_gen, "scan": cmd_scan, "against": cmd_against}[a.what](a)


if __name__ == "__main__":
    main()
