"""``redteam bench``: inject, train the victim, run both audits, score attack success and detection
against the ground truth, over a matrix of attacks × algorithms × ratios × densities × trials
(paper 3.2 and 5). Flow: matrix.py (the trials) → trial.py (one trial) → metrics.py → store.py
(one JSON per trial, resumable) → runner.py (the loop) → report.py + plots.py. Presets: presets.py.
"""

from redteam.bench.matrix import CONTROL, BenchConfig, Pair, TrialSpec, expand
from redteam.bench.presets import PRESETS
from redteam.bench.runner import BenchEvent, BenchOutcome, run_bench
from redteam.bench.store import TrialStore, read_results
from redteam.bench.trial import TrialResult, run_trial

__all__ = ["CONTROL", "PRESETS", "BenchConfig", "BenchEvent", "BenchOutcome", "Pair", "TrialResult", "TrialSpec",
           "TrialStore", "expand", "read_results", "run_bench", "run_trial"]
