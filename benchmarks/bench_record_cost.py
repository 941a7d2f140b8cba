"""What one prediction record costs in training steps on a large pool (issue #15; docs/benchmarks.md,
"README tour").

A record (``audit dynamics``) is one eval-mode forward pass of the EMA model over the whole
unlabeled pool; a FixMatch step is B + 2μB images forward and backward. On a pool too large to
train through on a loaded machine, this times a few training steps and a record of a slice of the
pool scaled to the whole (the budget cadence estimates its first record the same way), in one
process, wall and CPU time: the ratio is what sets every cadence's recording share.

    nice -n 19 python benchmarks/bench_record_cost.py fm --steps 10 --slice 0.2

``fm`` is a ``redteam inject`` output folder (labeled/, unlabeled/).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

WARMUP = 2  # first steps build the augmentation and allocator caches: not timed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a redteam inject output (labeled/, unlabeled/)")
    ap.add_argument("--steps", type=int, default=10, help="training steps to time (the first 2 are warm-up)")
    ap.add_argument("--slice", type=float, default=0.2, help="share of the pool one timed prediction covers")
    ap.add_argument("--repeat", type=int, default=2, help="timed predictions of the slice")
    args = ap.parse_args(argv)

    from audit.data.split import training_sets
    from audit.ssl.trainer import TrainConfig, Trainer

    lab, unl, _ = training_sets(dataset=None, labeled=args.folder / "labeled", unlabeled=args.folder / "unlabeled",
                                test=None, labels_per_class=4, unlabeled_size=None, seed=0)
    ticks = []  # (wall, CPU) after every step; the CLI's defaults: B 64, mu 7, cnn
    cfg = TrainConfig(steps=args.steps, allow_repeats=True, eval_every=0, checkpoint_every=0)
    trainer = Trainer(cfg, lab, unl, None,
                      on_progress=lambda info: ticks.append((time.perf_counter(), time.process_time())))
    ticks.append((time.perf_counter(), time.process_time()))  # the start mark
    trainer.fit()
    step_wall = [b[0] - a[0] for a, b in zip(ticks, ticks[1:])][WARMUP:]
    step_cpu = [b[1] - a[1] for a, b in zip(ticks, ticks[1:])][WARMUP:]

    n = int(len(unl) * args.slice)
    rec_wall, rec_cpu = [], []
    for _ in range(args.repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        trainer.predict(unl.images[:n])
        rec_wall.append((time.perf_counter() - w0) / args.slice)
        rec_cpu.append((time.process_time() - c0) / args.slice)
    sw, sc = statistics.median(step_wall), statistics.median(step_cpu)
    rw, rc = statistics.median(rec_wall), statistics.median(rec_cpu)
    print(f"pool {len(unl)}; step (median of {len(step_wall)}): {sw:.2f} s wall, {sc:.2f} s CPU; "
          f"record ({n} images x {1 / args.slice:g}, median of {args.repeat}): {rw:.1f} s wall, {rc:.1f} s CPU; "
          f"record = {rw / sw:.1f} steps (wall), {rc / sc:.1f} steps (CPU)")
    print("step walls", [round(x, 2) for x in step_wall], "record walls", [round(x, 1) for x in rec_wall])


if __name__ == "__main__":
    main()
