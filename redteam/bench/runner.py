"""``run_bench``: the matrix, trial by trial, resumable; then results.json and the report.

A trial whose JSON is in ``OUT/trials/`` is reused, everything else is computed and stored the
moment it finishes, so a killed bench continues where it stopped (at trial granularity: a trial
cut short restarts from its beginning). Progress is reported through ``on_event`` (the CLI draws
a rich progress bar from it); this module never prints.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from audit.data.imageset import Splits
from audit.data.load import load_dataset
from redteam.bench.matrix import BenchConfig, TrialSpec, expand
from redteam.bench.store import TrialStore
from redteam.bench.trial import TrialResult, run_trial


@dataclass(frozen=True)
class BenchEvent:
    """``kind``: "start" (before the first trial: ``total`` and ``done`` = trials reused),
    "trial" (a trial begins), "phase" (inside it: ``phase``, ``step``/``steps``), "done" (it
    finished: ``result``)."""

    kind: str
    total: int
    done: int
    spec: TrialSpec | None = None
    phase: str = ""
    step: int = 0
    steps: int = 0
    result: TrialResult | None = None


@dataclass(frozen=True)
class BenchOutcome:
    results: list[TrialResult]  # matrix order
    computed: int  # trials run by this call
    reused: int  # trials found in the store
    results_path: Path
    report_path: Path | None
    seconds: float

    @property
    def failed(self) -> list[TrialResult]:
        return [r for r in self.results if not r.ok]


def run_bench(config: BenchConfig, out_dir: str | Path, *, splits: Splits | None = None,
              retry_failed: bool = False, report: bool = True, keep_predictions: bool = False,
              on_event: Callable[[BenchEvent], None] | None = None) -> BenchOutcome:
    """Run (or resume) the bench of ``config`` into ``out_dir``; see the module doc. ``splits``
    skips loading ``config.dataset`` (tests, callers that hold the data already).
    ``keep_predictions`` keeps each computed trial's recordings in ``OUT/predictions/<key>/``
    (the pool's and the probe line's, the manifest) instead of deleting them."""
    t0 = time.perf_counter()
    emit = on_event or (lambda e: None)
    store = TrialStore(out_dir)
    specs = expand(config)
    stored = {s.key: store.get(s.key) for s in specs}
    todo = [s for s in specs if stored[s.key] is None or (retry_failed and not stored[s.key].ok)]
    total, done = len(specs), len(specs) - len(todo)
    emit(BenchEvent("start", total, done))
    if todo and splits is None:
        splits = load_dataset(config.dataset, config.root)
    work = store.out / "work"  # per-trial scratch (the prediction recordings), removed after each trial
    kept = store.out / "predictions"
    for stale in kept.glob(".tmp-*") if keep_predictions else ():  # a kill mid-move (trial.keep_recordings)
        shutil.rmtree(stale, ignore_errors=True)
    for spec in todo:
        emit(BenchEvent("trial", total, done, spec))

        def phase(name: str, step: int, steps: int, spec: TrialSpec = spec) -> None:
            emit(BenchEvent("phase", total, done, spec, name, step, steps))

        # the clean control of this row runs first (matrix order): its probe line is the clean boundary
        ctrl = None if spec.is_control else stored.get(spec.control().key) or store.get(spec.control().key)
        result = run_trial(spec, splits, work, phase=phase, control=ctrl.propagation if ctrl and ctrl.ok else None,
                           keep_dir=kept if keep_predictions else None)
        try:
            store.put(result)
        except ValueError as exc:  # e.g. a value JSON cannot hold: keep the trial, as a failure
            result = TrialResult(key=spec.key, spec=spec.to_json(), status="failed",
                                 error=f"could not store the result: {exc}", timings=result.timings)
            store.put(result)
        stored[spec.key] = result
        done += 1
        emit(BenchEvent("done", total, done, spec, result=result))
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()
    results = [stored[s.key] for s in specs]
    results_path = store.write_results(config.to_json(), results)
    report_path = None
    if report:
        from redteam.bench.report import write_report

        report_path = write_report(config, results, store.out)
    return BenchOutcome(results, len(todo), total - len(todo), results_path, report_path,
                        time.perf_counter() - t0)
