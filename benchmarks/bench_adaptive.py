"""Benchmark of ``audit scan`` against adaptive bridges (issue #14), side by side with cleanlab.

A pool is a clean Fashion-MNIST split (``--pool test``: the 10k test images; ``train``: the 60k
training images) plus three bridges, each built by a ``redteam`` attack with its own x' (a labeled
training image of class y*), x* (a test image of another class) and seed. Variants are the
issue's (linear, ±10% jitter, two-segment hop, 8-image bridges, JPEG q85, latent slerp, Bézier,
±1/±2 px shifts, noise σ 2-8) and others beyond them, so a detector fitted to the first set
shows it on the second (zero-filled shifts, uniform noise, σ 12, JPEG q70, jitter+shift, other
densities and lengths, a softer bend, a smaller latent space; the GAN bridge with
``--generator G.pt``).

Per variant and seed: image recall (members of a finding at warning or above, over the bridge's
images except x* itself), bridges found (≥ half of their images), clean images flagged (x* and x'
copies already in the pool excluded), and each detector's per-image score as AUROC and TPR at a
false-positive rate of 1e-3. ``--cleanlab PYTHON`` runs cleanlab Datalab's near_duplicate check
on the same pools (raw pixels as features) in another interpreter (cleanlab is a peer, never a
dependency: install it in its own venv).

    python benchmarks/bench_adaptive.py run --pool test --seeds 0 1 2 3 4 --out adaptive-test.json
    python benchmarks/bench_adaptive.py run --pool test --seeds 0 1 --cleanlab /work/venv-peers/bin/python --out ...
    python benchmarks/bench_adaptive.py table adaptive-test.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Variant:
    name: str
    attack: str
    config: dict = field(default_factory=dict)
    n: int = 30
    density: str = "1.5-x"
    issue: bool = True  # one of the issue's named variants (False: beyond them)


VARIANTS = [
    Variant("linear", "linear"),
    Variant("jitter_10pct", "jitter", {"brightness": 0.1, "contrast": 0.1}),
    Variant("hop", "curved", {"shape": "hop"}),
    Variant("short_8", "linear", n=8),
    Variant("jpeg_q85", "jpeg", {"quality": 85}),
    Variant("slerp", "slerp"),
    Variant("bezier", "curved", {"shape": "bezier"}),
    Variant("shift_1", "translate", {"max_shift": 1}),
    Variant("shift_2", "translate", {"max_shift": 2}),
    Variant("noise_2", "noise", {"sigma": 2.0}),
    Variant("noise_4", "noise", {"sigma": 4.0}),
    Variant("noise_6", "noise", {"sigma": 6.0}),
    Variant("noise_8", "noise", {"sigma": 8.0}),
    # beyond the issue's list
    Variant("shift_2_zero", "translate", {"max_shift": 2, "padding": "zero"}, issue=False),
    Variant("shift_3", "translate", {"max_shift": 3}, issue=False),
    Variant("noise_uniform_8", "noise", {"sigma": 8.0, "kind": "uniform"}, issue=False),
    Variant("noise_12", "noise", {"sigma": 12.0}, issue=False),
    Variant("jpeg_q70", "jpeg", {"quality": 70}, issue=False),
    Variant("jitter_shift", "jitter_translate", {"brightness": 0.05, "contrast": 0.05, "max_shift": 1}, issue=False),
    Variant("uniform_density", "linear", density="1", issue=False),
    Variant("dense_at_target", "linear", density="x", issue=False),
    Variant("short_15", "noise", {"sigma": 4.0}, n=15, issue=False),
    Variant("long_60", "curved", {"shape": "bezier"}, n=60, issue=False),
    Variant("bezier_half", "curved", {"shape": "bezier", "bend": 0.5}, issue=False),
    Variant("slerp_8", "slerp", {"dim": 8}, issue=False),
    Variant("multi_path", "multi_path", issue=False),
]


def build_pool(variant: Variant, clean, train, test, seed: int, generator: str | None = None):
    """(images, kind, excluded): kind 0 clean, b for the b-th bridge; ``excluded`` marks clean
    copies of x'/x* (and of a hop's waypoint z, which the path passes through, and of every
    source x'_i of a multi-path bridge) and each bridge's x* point (not false alarms, not misses)."""
    from audit.data.imageset import ImageSet
    from redteam.attacks import ATTACKS, AttackContext

    rng = np.random.default_rng(10_000 + seed)
    labels = train.labels
    labeled = np.concatenate([rng.choice(np.flatnonzero(labels == c), 4, replace=False) for c in range(10)])
    unlabeled = np.setdiff1d(np.arange(len(train)), labeled)
    images, kind, excluded = [clean.images], [np.zeros(len(clean), int)], [np.zeros(len(clean), bool)]
    config = dict(variant.config)
    if variant.attack == "gan":
        config["generator"] = generator
    cls = ATTACKS.get(variant.attack)
    for b in range(1, 4):
        while True:
            j = int(rng.integers(len(test)))
            y = int(rng.integers(10))
            if y != test.labels[j]:
                break
        src = int(rng.choice(labeled[labels[labeled] == y]))
        ctx = AttackContext(train=train, labeled=labeled, unlabeled=unlabeled, target=test.images[j], target_label=y,
                            source=src, n=variant.n, density=variant.density)
        batch = cls(cls.Config(**config)).generate(ctx, np.random.default_rng(seed * 10 + b))
        images.append(batch.images)
        kind.append(np.full(len(batch.images), b))
        ex = np.zeros(len(batch.images), bool)
        ex[[i for i, p in enumerate(batch.points) if p.alpha >= 1.0]] = True  # x* itself
        excluded.append(ex)
        ends = [test.images[j], train.images[src]]
        if config.get("shape") == "hop":  # the hop passes through the natural z (in a train pool)
            ends.append(train.images[batch.meta["waypoint_index"]])
        if "source_ids" in batch.meta:  # multi_path: every x'_i starts a path (labeled copies in a train pool)
            row = {i: k for k, i in enumerate(train.ids)}
            ends += [train.images[row[i]] for i in batch.meta["source_ids"]]
        for end in ends:  # their clean copies, where the pool has them
            same = np.all(clean.images.reshape(len(clean), -1) == end.reshape(1, -1), axis=1)
            excluded[0] |= same
    return ImageSet(np.concatenate(images), tuple(f"i{k:06d}" for k in range(sum(map(len, images))))), \
        np.concatenate(kind), np.concatenate(excluded)


def measure(flagged: np.ndarray, kind: np.ndarray, excluded: np.ndarray) -> dict:
    per = [float(flagged[(kind == b) & ~excluded].mean()) for b in range(1, kind.max() + 1)]
    return {"recall": float(np.mean(per)), "bridges_found": float(np.mean(np.array(per) >= 0.5)),
            "per_bridge": per, "clean_flagged": int((flagged & (kind == 0) & ~excluded).sum())}


def score_quality(score: np.ndarray, kind: np.ndarray, excluded: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score, roc_curve

    keep = ~excluded
    y, s = kind[keep] > 0, np.nan_to_num(score[keep], nan=0.0)
    fpr, tpr, _ = roc_curve(y, s)
    return {"auroc": float(roc_auc_score(y, s)), "tpr_at_fpr_1e-3": float(np.interp(1e-3, fpr, tpr))}


_CLEANLAB = r"""
import sys, json, numpy as np
from cleanlab import Datalab
x = np.load(sys.argv[1])["images"]
x = x.reshape(len(x), -1).astype(np.float32) / 255
lab = Datalab(data={"id": list(range(len(x)))})
lab.find_issues(features=x, issue_types={"near_duplicate": {}})
print(json.dumps(np.flatnonzero(lab.get_issues("near_duplicate")["is_near_duplicate_issue"].to_numpy()).tolist()))
"""


def run_cleanlab(python: str, images: np.ndarray) -> tuple[np.ndarray, float]:
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "pool.npz", images=images)
        t0 = time.perf_counter()
        out = subprocess.run([python, "-c", _CLEANLAB, str(Path(tmp) / "pool.npz")], capture_output=True, text=True,
                             check=True)
        dt = time.perf_counter() - t0
    flagged = np.zeros(len(images), bool)
    flagged[json.loads(out.stdout.strip().splitlines()[-1])] = True
    return flagged, dt


def cmd_run(args) -> None:
    from audit.data.builtin import fashion_mnist
    from audit.scan.pipeline import ScanConfig, scan

    fm = fashion_mnist()
    train, test = fm.train, fm.test
    clean = test if args.pool == "test" else train  # x* is always a test image, x' a labeled training one
    chosen = [v for v in VARIANTS if not args.variants or v.name in args.variants]
    if args.generator:
        chosen.append(Variant("gan", "gan", n=30, issue=False))
    rows = []
    out = Path(args.out)
    for v in chosen:
        for seed in args.seeds:
            pool, kind, excluded = build_pool(v, clean, train, test, seed, args.generator)
            t0 = time.perf_counter()
            res = scan(pool, ScanConfig())
            dt = time.perf_counter() - t0
            flagged = np.zeros(len(pool), bool)
            for f in res.findings:
                if f.severity.rank >= 1:
                    flagged[[m.index for m in f.members]] = True
            row = {"variant": v.name, "issue": v.issue, "seed": seed, "pool": args.pool, "scan_s": round(dt, 2),
                   "audit": measure(flagged, kind, excluded),
                   "findings": {f"{f.kind}/{f.severity.value}": 0 for f in res.findings},
                   "scores": {k: score_quality(s, kind, excluded) for k, s in res.scores.items()}}
            for f in res.findings:
                row["findings"][f"{f.kind}/{f.severity.value}"] += 1
            if args.cleanlab and seed in (args.cleanlab_seeds or args.seeds):
                cl, cdt = run_cleanlab(args.cleanlab, pool.images)
                row["cleanlab"] = measure(cl, kind, excluded) | {"seconds": round(cdt, 1)}
            rows.append(row)
            a = row["audit"]
            extra = f"  cleanlab recall {row['cleanlab']['recall']:.2f} clean {row['cleanlab']['clean_flagged']}" \
                if "cleanlab" in row else ""
            print(f"{v.name:16s} seed {seed}: recall {a['recall']:.2f} bridges {a['bridges_found']:.2f} "
                  f"clean flagged {a['clean_flagged']} ({dt:.1f} s){extra}", flush=True)
            out.write_text(json.dumps(rows, indent=1))


def cmd_table(args) -> None:
    rows = [r for p in args.results for r in json.loads(Path(p).read_text())]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    print("| variant | issue's | seeds | image recall | bridges found | clean flagged per pool (max) | path AUROC | "
          "TPR@FPR 1e-3 (path) | cleanlab recall | cleanlab clean flagged (mean) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        rs = [r for r in rows if r["variant"] == name]
        rec = np.mean([r["audit"]["recall"] for r in rs])
        found = np.mean([b >= 0.5 for r in rs for b in r["audit"]["per_bridge"]])
        fa = [r["audit"]["clean_flagged"] for r in rs]
        auc = np.mean([r["scores"].get("path", {}).get("auroc", np.nan) for r in rs])
        tpr = np.mean([r["scores"].get("path", {}).get("tpr_at_fpr_1e-3", np.nan) for r in rs])
        cl = [r["cleanlab"] for r in rs if "cleanlab" in r]
        clr = f"{np.mean([c['recall'] for c in cl]):.2f}" if cl else "–"
        clf = f"{np.mean([c['clean_flagged'] for c in cl]):.0f}" if cl else "–"
        print(f"| {name} | {'yes' if rs[0]['issue'] else 'beyond'} | {len(rs)} | {rec:.3f} | {found:.2f} | "
              f"{np.mean(fa):.1f} ({max(fa)}) | {auc:.4f} | {tpr:.2f} | {clr} | {clf} |")


def main() -> None:
    import faiss

    faiss.omp_set_num_threads(2)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--pool", choices=("test", "train"), default="test")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    r.add_argument("--variants", nargs="*")
    r.add_argument("--generator", help="a redteam train-gan checkpoint: adds the GAN bridge")
    r.add_argument("--cleanlab", metavar="PYTHON", help="an interpreter with cleanlab[datalab] installed")
    r.add_argument("--cleanlab-seeds", type=int, nargs="*")
    r.add_argument("--out", required=True)
    t = sub.add_parser("table")
    t.add_argument("results", nargs="+")
    args = p.parse_args()
    {"run": cmd_run, "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
