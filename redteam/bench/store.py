"""The bench's results on disk: one JSON per finished trial, so a killed bench resumes.

    OUT/trials/<key>.json     one trial (TrialResult.to_json), key = TrialSpec.key (a config hash)
    OUT/results.json          every trial of the matrix in matrix order, plus the bench config
    OUT/report.md, OUT/report.html, OUT/*.png  report.py (the HTML page embeds the plots)

Every file is written to a temporary name, fsynced and renamed into place, so a kill leaves a
trial either complete or absent; a file that does not parse (disk full, hand edits) counts as
absent and is recomputed. Failed trials are stored like finished ones and are not retried unless
asked (``retry_failed``): a deterministic error would only fail again.
"""

from __future__ import annotations

import json
from pathlib import Path

from audit.atomic import write_atomic
from audit.errors import InvalidParameterError
from redteam.bench.trial import TrialResult

RESULTS_VERSION = 1


def write_json_atomic(path: Path, obj: object) -> None:
    # allow_nan=False: a NaN would make the file unreadable by strict JSON parsers; metrics use None
    write_atomic(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")


class TrialStore:
    """``OUT/trials/``: ``get(key)`` a stored trial or None, ``put(result)`` atomically."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out = Path(out_dir)
        if self.out.exists() and not self.out.is_dir():
            raise InvalidParameterError(f"The 'out' parameter of the bench must be a directory. Got '{self.out}', "
                                        f"which is a file.")
        self.trials = self.out / "trials"
        self.trials.mkdir(parents=True, exist_ok=True)
        for stale in self.trials.glob(".tmp-*"):  # left by a kill between write and rename
            stale.unlink(missing_ok=True)

    def path(self, key: str) -> Path:
        return self.trials / f"{key}.json"

    def get(self, key: str) -> TrialResult | None:
        p = self.path(key)
        try:
            return TrialResult.from_json(json.loads(p.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: recomputed (and overwritten) like a missing one

    def put(self, result: TrialResult) -> Path:
        p = self.path(result.key)
        write_json_atomic(p, result.to_json())
        return p

    def write_results(self, config: dict, results: list[TrialResult]) -> Path:
        p = self.out / "results.json"
        write_json_atomic(p, {"version": RESULTS_VERSION, "config": config,
                              "trials": [r.to_json() for r in results]})
        return p


def read_results(path: str | Path) -> tuple[dict, list[TrialResult]]:
    """``(config, trials)`` of a ``results.json`` (or the folder holding it)."""
    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    d = json.loads(p.read_text(encoding="utf-8"))
    return d["config"], [TrialResult.from_json(t) for t in d["trials"]]
