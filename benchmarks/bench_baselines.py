"""``audit scan`` side by side with what users already run, on the same bridge-poisoned pools.

Pool: ``redteam.inject`` (linear bridge, paper 3.1, default density) on Fashion-MNIST with a
clean unlabeled pool of ``--pool`` training images plus ``--count`` bridge images. Methods, each
in its own child process so wall time, CPU time and max RSS (``os.wait4``) are its own, all on
in-memory pixel arrays (no decode for anyone):

* ``audit``: ``audit.scan.scan`` (the Python API behind ``audit scan``); flagged = members of
  ``bridge`` findings (error), and separately every image of a warning-or-above finding;
* ``cleanlab``: ``Datalab.find_issues(features=pixels, issue_types={"near_duplicate": {},
  "outlier": {}})``; flagged = either issue;
* ``agglo-single`` / ``agglo-ward``: scikit-learn's exact ``AgglomerativeClustering`` without
  connectivity (the paper's "standard implementation", 5.2) on the pixel vectors, cut at
  ``tau`` = the 5% quantile of the pool's exact pixel 1-NN distances (the rule of
  ``audit.scan.clusters``, here in pixel space); reported: the largest cluster, its poisoned
  and clean images. Ward keeps an O(N²) distance matrix; single linkage uses sklearn's MST
  (O(N) memory, O(N²·D) time).

cleanlab is a benchmark-only dependency, never a requirement of the project:

    pip install 'cleanlab[datalab]'   # measured with cleanlab 2.9.0
    python benchmarks/bench_baselines.py                        # 10k pool + 80 bridge images
    python benchmarks/bench_baselines.py --agglo-sizes 5000 10000 20000 --methods agglo-single agglo-ward
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scan_scale import run_child  # noqa: E402  (sibling benchmark: one wait4 runner)

WORK = Path("/tmp/scanbench")
METHODS = ("audit", "cleanlab", "agglo-single", "agglo-ward")


def build_pool(pool: int, count: int, seed: int) -> Path:
    """Inject once, save pixels + ground truth for the child processes."""
    from audit.data.builtin import fashion_mnist
    from redteam.inject import InjectConfig, inject

    path = WORK / f"baseline_pool_{pool}_{count}_{seed}.npz"
    if path.exists():
        return path
    ds = inject(fashion_mnist(), InjectConfig(dataset="fashion-mnist", unlabeled=pool, count=count, seed=seed))
    m = ds.manifest
    alpha = {p.path: p.alpha for p in m.points}
    order = np.array([alpha.get(i, np.nan) for i in ds.unlabeled.ids])  # alpha per pool row (nan: clean)
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=ds.unlabeled.images, ids=np.array(ds.unlabeled.ids), is_poison=ds.is_poison, alpha=order)
    return path


def _load(path: Path):
    with np.load(path) as z:
        return z["images"], [str(i) for i in z["ids"]], z["is_poison"], z["alpha"]


def _tau(x: np.ndarray) -> float:
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    d, _ = index.search(x, 2)
    return float(np.quantile(np.sqrt(np.maximum(d[:, 1], 0)), 0.05))


def one(method: str, path: Path, out: Path) -> None:
    """Child process: run one method, write what it flagged as JSON."""
    images, ids, is_poison, alpha = _load(path)
    x = images.reshape(len(images), -1).astype(np.float32)
    res: dict = {"method": method, "n": len(images), "n_poison": int(is_poison.sum())}
    t0, c0 = time.perf_counter(), time.process_time()
    if method == "audit":
        from scipy.stats import spearmanr

        from audit.data.imageset import ImageSet
        from audit.scan import scan

        r = scan(ImageSet(images, tuple(ids)))
        flag = np.zeros(len(images), bool)
        warn = np.zeros(len(images), bool)
        chains = []
        for f in r.findings:
            idx = [m.index for m in f.members]
            if f.kind == "bridge":
                flag[idx] = True
                a = alpha[idx]  # ground-truth alpha in chain order: is the order right?
                ok = ~np.isnan(a)
                rho = float(spearmanr(np.arange(len(a))[ok], a[ok])[0]) if ok.sum() > 2 else float("nan")
                chains.append({"size": len(idx), "poison": int(is_poison[idx].sum()), "order_corr": abs(rho)})
            if f.severity.rank >= 1:  # warning or error
                warn[idx] = True
        res.update(flagged=flag.tolist(), warned=warn.tolist(), chains=chains)
    elif method == "cleanlab":
        from cleanlab import Datalab

        lab = Datalab(data={"row": np.arange(len(images))})
        lab.find_issues(features=x, issue_types={"near_duplicate": {}, "outlier": {}})
        dup = lab.get_issues("near_duplicate")["is_near_duplicate_issue"].to_numpy()
        out_ = lab.get_issues("outlier")["is_outlier_issue"].to_numpy()
        res.update(flagged=(dup | out_).tolist(), dup=dup.tolist(), outlier=out_.tolist())
    else:
        from sklearn.cluster import AgglomerativeClustering

        tau = _tau(x)
        linkage = method.split("-")[1]
        labels = AgglomerativeClustering(n_clusters=None, distance_threshold=tau, linkage=linkage).fit_predict(x)
        sizes = np.bincount(labels)
        big = int(np.argmax(sizes))
        flag = labels == big
        most = int(np.bincount(labels[is_poison]).argmax())  # the cluster holding most poison
        res.update(flagged=flag.tolist(), tau=tau, n_clusters=int(len(sizes)), largest=int(sizes[big]),
                   poison_cluster_size=int(sizes[most]), poison_cluster_poison=int((labels[is_poison] == most).sum()),
                   poison_cluster_is_largest=bool(most == big))
    res["wall_s"], res["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    out.write_text(json.dumps(res))


def report(r: dict, run: dict, is_poison: np.ndarray) -> str:
    flag = np.array(r["flagged"], bool)
    found, clean = int((flag & is_poison).sum()), int((flag & ~is_poison).sum())
    line = (f"{r['method']:<13} N={r['n']:<6} poisoned found {found}/{r['n_poison']}, clean flagged {clean}; "
            f"method {r['wall_s']:.1f} s wall / {r['cpu_s']:.1f} s CPU; child total {run['wall_s']:.1f} s wall / "
            f"{run['cpu_s']:.1f} s CPU, max RSS {run['maxrss_mib']:.0f} MiB, load {run['load'][0]:.1f}")
    if r["method"] == "audit":
        warn = np.array(r["warned"], bool)
        line += (f"; warning+ findings: poisoned {int((warn & is_poison).sum())}, clean {int((warn & ~is_poison).sum())}"
                 f"; chains {[(c['size'], c['poison'], round(c['order_corr'], 3)) for c in r['chains']]}")
    if r["method"] == "cleanlab":
        d, o = np.array(r["dup"], bool), np.array(r["outlier"], bool)
        line += (f"; near_duplicate: poisoned {int((d & is_poison).sum())} clean {int((d & ~is_poison).sum())}"
                 f"; outlier: poisoned {int((o & is_poison).sum())} clean {int((o & ~is_poison).sum())}")
    if r["method"].startswith("agglo"):
        line += (f"; tau {r['tau']:.1f}, {r['n_clusters']} clusters, largest {r['largest']}; the cluster with most "
                 f"poison has {r['poison_cluster_poison']} poisoned of {r['poison_cluster_size']} "
                 f"(is the largest: {r['poison_cluster_is_largest']})")
    return line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool", type=int, default=10_000, help="clean unlabeled images")
    p.add_argument("--count", type=int, default=80, help="bridge images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    p.add_argument("--agglo-sizes", nargs="*", type=int, default=None,
                   help="clean pool sizes for the agglomerative runs (default: --pool)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--one", nargs=3, metavar=("METHOD", "POOL", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        one(a.one[0], Path(a.one[1]), Path(a.one[2]))
        return
    for method in a.methods:
        sizes = (a.agglo_sizes or [a.pool]) if method.startswith("agglo") else [a.pool]
        for size in sizes:
            path = build_pool(size, a.count, a.seed)
            is_poison = _load(path)[2]
            for _ in range(a.repeat):
                out = WORK / f"baseline_{method}_{size}.json"
                run = run_child([sys.executable, __file__, "--one", method, str(path), str(out)], ok=(0,))
                print(report(json.loads(out.read_text()), run, is_poison), flush=True)


if __name__ == "__main__":
    main()
