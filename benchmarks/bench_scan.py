"""Benchmark of ``audit scan`` (paper 5.2) on Fashion-MNIST: detection of injected bridges.

The pool is the 60k train split. A bridge takes x' from train and x* from test, places
``ratio × 60000`` points by a density of Table 3 (``redteam.density.alphas``) and stores
``rint((1-a)·x' + a·x*)`` as uint8. Reports, per density and ratio, the share of poisoned images
that end up in a ``bridge`` finding, the clean images flagged alongside, and the scan's time and
peak memory (in memory: no decode). Not a test: run by hand, one run at a time.

    python benchmarks/bench_scan.py --clean                 # false alarms on the clean 60k pool
    python benchmarks/bench_scan.py --ratios 0.001 --densities '1.5-x' '(1-x)^2'
    python benchmarks/bench_scan.py --all                   # 11 densities × 3 ratios (slow)
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

RATIOS = (0.001, 0.002, 0.005)


def _alphas(name: str, n: int) -> np.ndarray:
    from redteam.density import alphas

    return np.asarray(alphas(name, n), dtype=np.float64)


def _densities() -> list[str]:
    from redteam.density import DENSITIES

    return DENSITIES.names()


def poisoned_pool(train, test, density: str, ratio: float, seed: int):
    """(images uint8, ids, poisoned mask) for the train pool plus one bridge."""
    from audit.data.imageset import ImageSet

    rng = np.random.default_rng(seed)
    n = int(round(ratio * len(train)))
    while True:  # source and target of different classes, as in the paper
        i, j = int(rng.integers(len(train))), int(rng.integers(len(test)))
        if train.labels[i] != test.labels[j]:
            break
    a = _alphas(density, n)
    xs, xt = train.images[i].astype(np.float64), test.images[j].astype(np.float64)
    bridge = np.rint((1 - a)[:, None, None, None] * xs + a[:, None, None, None] * xt).astype(np.uint8)
    images = np.concatenate([train.images, bridge])
    ids = train.ids + tuple(f"poison/{k:04d}" for k in range(n))
    mask = np.zeros(len(images), bool)
    mask[len(train):] = True
    return ImageSet(images, ids), mask, i


def run_one(pool, mask, src_idx=None):
    from audit.scan.pipeline import scan

    t0, c0 = time.perf_counter(), time.process_time()
    res = scan(pool)
    dt = time.perf_counter() - t0
    run_one.cpu_s = time.process_time() - c0  # CPU seconds: robust when other jobs share the cores
    in_bridge = np.zeros(len(pool), bool)
    for f in res.findings:
        if f.kind == "bridge":
            in_bridge[[m.index for m in f.members]] = True
    clean_flagged = in_bridge & ~mask
    if src_idx is not None:  # x' itself is a clean train image the bridge starts at: not a false alarm
        clean_flagged[src_idx] = False
    n_chains = sum(f.kind == "bridge" for f in res.findings)
    return res, dt, in_bridge, int(clean_flagged.sum()), n_chains


def main() -> None:
    import faiss

    faiss.omp_set_num_threads(2)
    p = argparse.ArgumentParser()
    p.add_argument("--clean", action="store_true")
    p.add_argument("--all", action="store_true")
    p.add_argument("--densities", nargs="*", default=["1.5-x"])
    p.add_argument("--ratios", nargs="*", type=float, default=[0.001])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    from audit.data.builtin import fashion_mnist

    fm = fashion_mnist()
    train, test = fm.train, fm.test
    if args.clean:
        from audit.data.imageset import ImageSet

        pool = ImageSet(train.images, train.ids)
        res, dt, in_bridge, fa, nch = run_one(pool, np.zeros(len(pool), bool))
        counts = {}
        for f in res.findings:
            counts[f.kind] = counts.get(f.kind, 0) + 1
        print(f"clean 60k: {dt:.1f} s wall, {run_one.cpu_s:.1f} s CPU, bridge false alarms {fa} images in {nch} chains, findings {counts}, "
              f"timings { {k: round(v, 2) for k, v in res.timings.items()} }, "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        return
    dens = _densities() if args.all else args.densities
    ratios = RATIOS if args.all else args.ratios
    print("density,ratio,n_poison,flagged_pct,clean_flagged,chains,scan_s,cpu_s")
    for r in ratios:
        for k, d in enumerate(dens):
            pool, mask, src = poisoned_pool(train, test, d, r, seed=args.seed * 1000 + k)
            res, dt, in_bridge, fa, nch = run_one(pool, mask, src)
            pct = 100.0 * in_bridge[mask].mean()
            print(f"{d},{r},{mask.sum()},{pct:.1f},{fa},{nch},{dt:.1f},{run_one.cpu_s:.1f}", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
