"""Validation of ``audit dynamics`` on real SSL runs (paper 5.3), scaled to a shared 2-core CPU.

Setting: Fashion-MNIST, 40 labels (4 per class), a clean unlabeled pool of ``--pool`` images
(default 5 000) plus a ``redteam inject`` linear bridge at ``--ratio`` (default 0.5%: 25 images),
the narrow ``cnn`` (widths 16/32/64), B = 32, μ = 7, ``--steps`` steps (1 200), EMA 0.99 (0.999 averages
over ~1 000 steps, half of a CPU-sized run, and would blur the order in which members flip),
recording the EMA model's softmax every ``--record-every`` steps. For every seed a poisoned run
and a clean-only run (the same labeled set and pool without the bridge: its false alarms).

    nice -n 19 python benchmarks/bench_dynamics.py train --algo fixmatch --seeds 0 1 2 3 --kinds poisoned
    nice -n 19 python benchmarks/bench_dynamics.py train --seeds 0 --kinds clean
    nice -n 19 python benchmarks/bench_dynamics.py score            # the table, from the saved runs
    nice -n 19 python benchmarks/bench_dynamics.py score --every 3  # records subsampled: a 3x coarser cadence
    (results and every command used: docs/benchmarks.md, "audit dynamics")

``train`` writes ``WORK/<algo>-s<seed>-<poisoned|clean>/`` (predictions/, summary.json,
bench.json with ground truth, attack success and recording cost); ``score`` reads them back and
reports, per score, AUROC (bridge = positive), TPR at FPR 0.1% and 1%, what the flagging rule
flags on the poisoned and on the clean run, and scoring time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

WORK = Path("/tmp/dynbench")
MODEL_OPTIONS = {"widths": [16, 32, 64]}


def train(args: argparse.Namespace) -> None:
    from audit.data.builtin import fashion_mnist
    from audit.dynamics.run import record_run
    from audit.ssl.trainer import TrainConfig
    from redteam.inject import inject

    torch.set_num_threads(args.threads)
    splits = fashion_mnist()
    for seed in args.seeds:
        ds = inject(splits, _inject_config(args.pool, args.ratio, seed, args.attack, args.param))
        t_idx = ds.manifest.target.index
        for kind in args.kinds:
            out = args.work / f"{_prefix(args.algo, args.attack)}-s{seed}-{kind}"
            if (out / "bench.json").exists():
                print(f"skip {out} (done)", flush=True)
                continue
            pool = ds.unlabeled if kind == "poisoned" else ds.unlabeled.subset(np.flatnonzero(~ds.is_poison))
            config = TrainConfig(algo=args.algo, model="cnn", model_options=MODEL_OPTIONS, steps=args.steps,
                                 batch_size=32, mu=7, ema=0.99, eval_every=0, checkpoint_every=500, seed=seed,
                                 device="cpu", allow_repeats=True)
            run = record_run(config, ds.labeled, pool, ds.test, out_dir=out, record_every=args.record_every,
                             resume=(out / "predictions" / "meta.json").exists() and (out / "checkpoint.pt").exists())
            # attack success: does the final EMA model give the target x* the attacker's label y*?
            probs_t = _predict_target(out, ds.test.images[t_idx:t_idx + 1], ds.labeled)
            info = {
                "algo": args.algo, "seed": seed, "kind": kind, "pool": len(pool), "n_poison": int(ds.is_poison.sum()),
                "poison_ids": list(ds.manifest.poisoned) if kind == "poisoned" else [], "ratio": args.ratio,
                "attack": args.attack, "param": list(args.param),
                "target_label": ds.manifest.target_label, "target_true": ds.manifest.target.label,
                "target_pred": int(probs_t.argmax()), "target_prob_ystar": float(probs_t[ds.manifest.target_label]),
                "attack_success": bool(probs_t.argmax() == ds.manifest.target_label),
                **run.to_json(), "record_fraction": run.record_fraction,
            }
            (out / "bench.json").write_text(json.dumps(info, indent=2))
            print(json.dumps({k: v for k, v in info.items() if k != "poison_ids"}), flush=True)


def _prefix(algo: str, attack: str) -> str:
    """Run folder prefix: ``fixmatch`` for the linear bridge (the first runs' names), else ``fixmatch-gan``."""
    return algo if attack == "linear" else f"{algo}-{attack}"


def _inject_config(pool: int, ratio: float, seed: int, attack: str = "linear", param=()):
    from redteam.cli import attack_config
    from redteam.inject import InjectConfig

    return InjectConfig(dataset="fashion-mnist", unlabeled=pool, ratio=ratio, seed=seed, labels_per_class=4,
                        attack=attack, attack_config=attack_config(attack, list(param)))


def _predict_target(out: Path, image: np.ndarray, labeled) -> np.ndarray:
    from audit.ssl.models import build_model
    from audit.ssl.augment import to_float

    state = torch.load(out / "model.pt", weights_only=True)
    h, w = state["image_size"]
    model = build_model(state["model"], state["num_classes"], state["in_channels"], (h, w), **state["model_options"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(to_float(torch.from_numpy(image), torch.device("cpu"))), 1)[0].numpy()


# --- scoring ------------------------------------------------------------------------------------
VARIANTS = ("influence", "chain", "chain+pixels")  # lagged-influence and flip-chain: dropped (docs/benchmarks.md)


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(score)
    n1, n0 = positive.sum(), (~positive).sum()
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def tpr_at_fpr(score: np.ndarray, positive: np.ndarray, fpr: float) -> float:
    """TPR at the threshold that lets at most ``fpr`` of the negatives through (ties count against)."""
    neg = np.sort(score[~positive])[::-1]
    allowed = int(np.floor(fpr * len(neg)))
    thr = neg[allowed] if allowed < len(neg) else -np.inf  # strictly above the (allowed+1)-th negative
    return float((score[positive] > thr).mean())


def score_variant(pred, variant: str, config_kw: dict, pixels: np.ndarray | None):
    from audit.dynamics import DynamicsConfig, score_predictions

    name = variant.removesuffix("+pixels")  # NAME+pixels: the score gets the pool's pixels
    cfg = DynamicsConfig(score=name, **config_kw)
    t0 = time.perf_counter()
    res = score_predictions(pred, cfg, features=pixels if name != variant else None)
    return res, time.perf_counter() - t0


def score(args: argparse.Namespace) -> None:
    from audit.dynamics import load_predictions

    rows = []
    for bench in sorted(args.work.glob(f"{_prefix(args.algo, args.attack)}-s*-poisoned/bench.json")):
        info = json.loads(bench.read_text())
        run = bench.parent
        pred = load_predictions(run / "predictions")
        if args.every > 1:
            pred = pred.window(0, pred.num_records - 1)
            keep = np.arange(pred.num_records - 1, -1, -args.every)[::-1]
            from audit.dynamics import validate_predictions
            pred = validate_predictions(pred.probs[:, keep], pred.ids, pred.steps[keep], None, pred.source)
        positive = np.isin(np.asarray(pred.ids), info["poison_ids"])
        pixels = _pixels(run, pred.ids, info)
        clean_dir = run.parent / run.name.replace("poisoned", "clean")
        clean = None
        if (clean_dir / "bench.json").exists():
            clean = load_predictions(clean_dir / "predictions")
            if args.every > 1:
                keep = np.arange(clean.num_records - 1, -1, -args.every)[::-1]
                from audit.dynamics import validate_predictions
                clean = validate_predictions(clean.probs[:, keep], clean.ids, clean.steps[keep], None, clean.source)
            clean_pixels = _pixels(clean_dir, clean.ids, info)
        kw: dict = {}
        for variant in VARIANTS:
            res, secs = score_variant(pred, variant, kw, pixels)
            s = res.scores["dynamics"]
            flagged = np.isin(np.asarray(pred.ids), res.flagged())
            row = {"seed": info["seed"], "variant": variant, "auroc": auroc(s, positive),
                   "tpr@0.1%": tpr_at_fpr(s, positive, 0.001), "tpr@1%": tpr_at_fpr(s, positive, 0.01),
                   "flag_tp": int((flagged & positive).sum()), "flag_fp": int((flagged & ~positive).sum()),
                   "attack": info["attack_success"], "acc": info["test_acc_ema"], "secs": secs,
                   "records": pred.num_records}
            if clean is not None:
                cres, _ = score_variant(clean, variant, kw, clean_pixels)
                row["clean_flagged"] = len(cres.flagged())
            rows.append(row)
            print(json.dumps(row), flush=True)
    _table(rows)


_PIXEL_CACHE: dict = {}


def _pixels(run: Path, ids, info) -> np.ndarray:
    """Pixel rows of the run's pool in prediction order, rebuilt with the same inject call."""
    from audit.data.builtin import fashion_mnist
    from redteam.inject import inject

    attack, param = info.get("attack", "linear"), tuple(info.get("param", ()))
    key = (info["seed"], info["pool"] if info["kind"] == "poisoned" else info["pool"] + info["n_poison"], attack, param)
    if key not in _PIXEL_CACHE:
        ds = inject(fashion_mnist(), _inject_config(key[1] - info["n_poison"], info.get("ratio", 0.005), info["seed"],
                                                    attack, param))
        _PIXEL_CACHE[key] = dict(zip(ds.unlabeled.ids, ds.unlabeled.pixels()))
    table = _PIXEL_CACHE[key]
    return np.stack([table[i] for i in ids]).astype(np.float32)


def _table(rows: list[dict]) -> None:
    print("\n| score | seed | AUROC | TPR@FPR0.1% | TPR@FPR1% | flagged (bridge/clean) | clean-run flagged | attack | acc | score s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['seed']} | {r['auroc']:.3f} | {100 * r['tpr@0.1%']:.0f}% | {100 * r['tpr@1%']:.0f}% "
              f"| {r['flag_tp']}/{r['flag_fp']} | {r.get('clean_flagged', '–')} | {'yes' if r['attack'] else 'no'} "
              f"| {100 * (r['acc'] or 0):.1f}% | {r['secs']:.1f} |")
    print("\n| score | seeds | mean AUROC | seeds meeting the target (AUROC >= 0.99 and TPR@1% >= 90%) |")
    print("|---|---|---|---|")
    for v in VARIANTS:
        rs = [r for r in rows if r["variant"] == v]
        if rs:
            ok = sum(r["auroc"] >= 0.99 and r["tpr@1%"] >= 0.9 for r in rs)
            print(f"| {v} | {len(rs)} | {np.mean([r['auroc'] for r in rs]):.3f} | {ok} of {len(rs)} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--algo", default="fixmatch")
    t.add_argument("--seeds", type=int, nargs="+", default=[0])
    t.add_argument("--kinds", nargs="+", default=["poisoned", "clean"], choices=["poisoned", "clean"])
    t.add_argument("--pool", type=int, default=5000)
    t.add_argument("--ratio", type=float, default=0.005)
    t.add_argument("--attack", default="linear", help="redteam attack (gan: needs -p generator=G.pt)")
    t.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="attack parameter")
    t.add_argument("--steps", type=int, default=1200)
    t.add_argument("--record-every", type=int, default=10)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--work", type=Path, default=WORK)
    s = sub.add_parser("score")
    s.add_argument("--algo", default="fixmatch")
    s.add_argument("--attack", default="linear")
    s.add_argument("--every", type=int, default=1, help="keep every n-th record (a coarser cadence)")
    s.add_argument("--work", type=Path, default=WORK)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    {"train": train, "score": score}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
