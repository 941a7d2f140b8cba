"""``audit dynamics``: train while recording every unlabeled image's prediction, score how each
one's prediction follows others' (paper 5.3), report and gate like ``audit scan``; optionally
remove what was flagged and retrain (``--rounds``).

Two modes:

* train here: ``--labeled DIR --unlabeled DIR [--test DIR] --out RUN`` (the layout ``redteam
  inject`` writes) or ``--dataset NAME``; the data and training options are ``audit train``'s
  own (the very option objects, so the two commands cannot drift);
* score predictions recorded elsewhere: ``--predictions FILE_OR_DIR --unlabeled DIR`` (ids are
  checked against the folder).

Streams as in ``audit scan``: progress and notes on stderr, the summary (or ``--format json``)
on stdout. Exit codes: 0 gate passed, 1 gate failed (a finding at or above ``--fail-on``),
2 usage/runtime error, 130 interrupted (Ctrl-C / SIGTERM while training: a checkpoint is written
first, and ``--resume`` continues exactly). Outputs follow ``audit train``'s rules: checked
before any work (never inside an input), an ``--out`` holding an earlier run needs ``--resume``
or ``--force``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from audit.errors import DataError, InvalidParameterError, invalid_parameter
from audit.report.text import printable
from audit.report.ci import FailOn, OutputFormat
from audit.ssl.cli import OPTIONS as _T, Device
from audit.dynamics.cadence import DEFAULT_RECORD_EVERY
from audit.dynamics.config import DEFAULT_SCORE
from audit.dynamics.scoring import SCORES

_SCORING = "Scoring"
_REPORTS = "Reports"
_ROUNDS = "Remove and retrain"

Score = Enum("Score", {name: name for name in SCORES.names()}, type=str)  # --score's choices: the registry


def dynamics(
    algo: str = _T["algo"], algo_options: Optional[List[str]] = _T["algo_options"],
    labeled: Optional[Path] = _T["labeled"], unlabeled: Optional[Path] = _T["unlabeled"],
    test: Optional[Path] = _T["test"], dataset: Optional[str] = _T["dataset"],
    labels_per_class: int = _T["labels_per_class"], unlabeled_size: Optional[int] = _T["unlabeled_size"],
    model: str = _T["model"], steps: int = _T["steps"], batch_size: int = _T["batch_size"], mu: int = _T["mu"],
    lr: float = _T["lr"], flip: bool = _T["flip"], allow_repeats: bool = _T["allow_repeats"], seed: int = _T["seed"],
    ema: float = typer.Option(0.999, "--ema", rich_help_panel="Training",
                              help="EMA decay of the recorded model (0.99 suits runs of a few thousand steps)."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="RUN", rich_help_panel="Run",
                                       help="Run folder: predictions/, model.pt, metrics.jsonl, checkpoint.pt, round-R/."),
    resume: bool = typer.Option(False, "--resume", rich_help_panel="Run",
                                help="Continue the run in --out (training and recording) from its checkpoint: no record lost or duplicated."),
    force: bool = typer.Option(False, "--force", rich_help_panel="Run",
                               help="Start over in an --out that holds an earlier run, replacing its checkpoint, model, recording and rounds."),
    record_every: Optional[str] = typer.Option(None, "--record-every", metavar="N|epoch|Kepochs", rich_help_panel="Run",
                                               help=f"Record the EMA model's prediction on every unlabeled image every N steps, every pass over the pool (epoch, the paper's cadence) or every K passes (default {DEFAULT_RECORD_EVERY} steps; cost: docs/dynamics.md)."),
    record_budget: Optional[float] = typer.Option(None, "--record-budget", metavar="SHARE", rich_help_panel="Run",
                                                  help="Instead of --record-every: record as often as keeps recording within this share of training time (0.1 = 10%), from its measured cost."),
    device: Device = _T["device"], eval_every: int = _T["eval_every"], checkpoint_every: int = _T["checkpoint_every"],
    threads: Optional[int] = _T["threads"],
    predictions: Optional[Path] = typer.Option(None, "--predictions", metavar="FILE_OR_DIR", rich_help_panel="Data",
                                               help="Score predictions recorded elsewhere (a recording folder, .npz or .npy) instead of training; needs --unlabeled."),
    score: Score = typer.Option(DEFAULT_SCORE, "--score", case_sensitive=False, rich_help_panel=_SCORING,
                                help="Score to flag with (the default validated best). The paper's influence is always in the JSON as a reference."),
    window: Optional[str] = typer.Option(None, "--window", metavar="A:B", rich_help_panel=_SCORING,
                                         help="Score only records made in epochs A..B (a source without epochs: one record per epoch)."),
    pixel_links: bool = typer.Option(False, "--pixel-links", rich_help_panel=_SCORING,
                                     help="Pixel-space neighbours as one input: chain averages its value over them (the best validated setting)."),
    motion_dedupe: float = typer.Option(0.0, "--motion-dedupe", metavar="R", min=0.0, rich_help_panel=_SCORING,
                                        help="chain: leave out neighbours closer than R x the median squared distance (near-duplicate groups; 0 = off, try 0.05)."),
    z: float = typer.Option(3.5, "--z", rich_help_panel=_SCORING, help="Flag at robust z-score above this (median + z·MAD rule)."),
    max_flagged: Optional[int] = typer.Option(None, "--max-flagged", min=1, rich_help_panel=_SCORING,
                                              help="Review budget: keep at most this many of the flagged (never flags more than the rule)."),
    rounds: int = typer.Option(0, "--rounds", metavar="R", min=0, rich_help_panel=_ROUNDS,
                               help="Remove the flagged images, retrain from scratch, rescore; R times."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", metavar="FILE", rich_help_panel=_ROUNDS,
                                            help="A `redteam inject` manifest.json: report how many removed images were poison and whether the attack still succeeds."),
    json_path: Optional[Path] = typer.Option(None, "--json", metavar="FILE", rich_help_panel=_REPORTS, help="Write the JSON report."),
    html_path: Optional[Path] = typer.Option(None, "--html", metavar="FILE", rich_help_panel=_REPORTS,
                                             help="Write the HTML review page: score histogram (paper Fig. 7), per-instance heatmaps (Fig. 5)."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", metavar="FILE", rich_help_panel=_REPORTS,
                                            help="Write one row per image: is_dynamics_issue, dynamics_score."),
    fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", case_sensitive=False, help="Exit 1 when a finding is at or above this severity."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", case_sensitive=False,
                                               help="stdout: text summary, GitHub Actions annotations, the JSON report, JUnit XML or SARIF 2.1.0 (docs/ci.md)."),
    top: int = typer.Option(10, "--top", min=1, help="Findings listed in the text summary."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no summary; errors and --format output only."),
) -> None:
    """Audit an unlabeled pool by its training dynamics (paper 5.3): train while recording each
    image's prediction, flag images whose prediction follows a few others' (a bridge is learned
    one member after another), group them into attack instances. Exit 0 pass, 1 gate failed, 2 error."""
    train_mode = predictions is None
    if train_mode:
        if out is None:
            raise InvalidParameterError("give --out RUN (the run folder) to train here, or --predictions FILE_OR_DIR "
                                        "--unlabeled DIR to score predictions recorded elsewhere")
        from audit.data.split import check_sources

        check_sources(dataset, labeled, unlabeled, test, unlabeled_size)
    else:
        if unlabeled is None:
            raise InvalidParameterError("--predictions needs --unlabeled DIR: the folder the predictions were recorded on")
        for flag, v in (("--rounds", rounds or None), ("--resume", resume or None), ("--dataset", dataset),
                        ("--labeled", labeled), ("--force", force or None), ("--record-every", record_every),
                        ("--record-budget", record_budget)):
            if v is not None:
                raise InvalidParameterError(f"{flag} trains a model; it cannot be combined with --predictions")
    from audit.dynamics.cadence import Cadence
    from audit.ssl.cli import algorithm_overrides, data_inputs

    epochs = _parse_window(window)
    cadence = Cadence.parse(record_every, record_budget)
    algo_config = algorithm_overrides(algo, algo_options, "dynamics") if train_mode else None
    _check_outputs(out if train_mode else None, json_path, html_path, csv_path,
                   {**data_inputs(dataset, labeled, unlabeled, test), "--predictions": predictions,
                    "--manifest": manifest}, resume=resume, force=force)
    if threads is not None:
        if threads < 1:
            raise invalid_parameter("threads", "dynamics", "an int >= 1", threads)
        import torch

        torch.set_num_threads(threads)
    from audit.dynamics.config import DynamicsConfig
    from audit.dynamics.retrain import audit_rounds, score_folder, single_round
    from audit.groundtruth import read_manifest

    config = DynamicsConfig(score=Score(score).value, z=z, max_flagged=max_flagged, motion_dedupe=motion_dedupe)
    truth = None if manifest is None else read_manifest(manifest)
    from audit.report.progress import console, training_progress

    err = console(stderr=True, quiet=quiet)

    if train_mode:
        from audit.data.split import training_sets
        from audit.ssl.cli import option_names
        from audit.ssl.trainer import TrainConfig

        with option_names("dynamics"):
            tconfig = TrainConfig(algo=algo, algo_config=algo_config, model=model, steps=steps,
                                  batch_size=batch_size, mu=mu, lr=lr, ema=ema, eval_every=eval_every,
                                  checkpoint_every=checkpoint_every, seed=seed, device=device.value, flip=flip,
                                  allow_repeats=allow_repeats)
            lab, unl, tst = training_sets(dataset=dataset, labeled=labeled, unlabeled=unlabeled, test=test,
                                          labels_per_class=labels_per_class, unlabeled_size=unlabeled_size, seed=seed)
        _check_records(cadence, steps, len(unl), mu * batch_size)  # before training, not after it
        if force:
            _clear(out)  # the data is known good by now: a failed start keeps the old run
        if resume and not (out / "predictions" / "meta.json").exists():
            err.print(f"nothing to resume in {printable(out)}: starting a new run", highlight=False, markup=False)
        with training_progress(err, algo, steps) as progress, option_names("dynamics"):
            run = audit_rounds(tconfig, lab, unl, tst, out_dir=out, config=config, rounds=rounds,
                               record_every=cadence, resume=resume, epochs=epochs, pixel_links=pixel_links,
                               truth=truth, root=str(unlabeled or dataset), on_round=progress.round,
                               on_progress=progress.step)
        pool = unl
    else:
        from audit.data.load import load_images

        pool = load_images(unlabeled)
        if len(pool) == 0:
            raise DataError(f"{unlabeled}: no readable image")
        result = score_folder(predictions, pool.without_labels(), config, epochs=epochs, pixel_links=pixel_links,
                              root=str(unlabeled))
        run = single_round(result, pool, truth)
    _report(run, pool, truth, _request(fail_on, output_format, json_path, html_path, csv_path, top, quiet), unlabeled,
            labeled=lab if train_mode else None, manifest=manifest)


def _check_outputs(out: Path | None, json_path, html_path, csv_path, inputs: dict, *, resume: bool,
                   force: bool) -> None:
    """The output policy (``audit.outputs``) for the reports, and ``audit train``'s run-folder
    rules for ``--out`` (a recording and ``round-R/`` folders count as an earlier run too)."""
    from audit.outputs import FOLDER, Output, prepare_outputs
    from audit.ssl.cli import check_run_folder

    from audit.report.emit import ReportRequest

    reports = ReportRequest(json_path=json_path, html_path=html_path, csv_path=csv_path).outputs()
    prepare_outputs([*reports, None if out is None else Output("--out", out, FOLDER)], inputs)
    if out is not None:
        extra = ("predictions",) + tuple(sorted(p.name for p in _rounds(out)))
        check_run_folder(out, inputs, resume=resume, force=force, extra=extra)
        from audit.atomic import remove_stale_temps

        remove_stale_temps(out / "predictions")  # a killed recording's temporaries


def _check_records(cadence, steps: int, pool_size: int, images_per_step: int) -> None:
    """A run that cannot make the records the scores need fails before it trains, not after:
    a fixed cadence records every ``every`` steps and at the last one; a budget records at
    least that minimum, but never more than once a step."""
    from audit.dynamics.predictions import MIN_RECORDS

    every = cadence.every(pool_size, images_per_step)
    records = min(steps, MIN_RECORDS) if every is None else -(-steps // every)
    if records < MIN_RECORDS:
        how = "" if every is None else f" recording {cadence.describe()}" + ("" if cadence.steps else f" ({every} steps)")
        raise InvalidParameterError(
            f"--steps {steps}{how} makes {records} record(s) of the predictions; the scores need at least "
            f"{MIN_RECORDS}: " + (f"train {MIN_RECORDS} steps or more" if every is None else
                                  f"train longer or record more often (e.g. --record-every {max(1, steps // MIN_RECORDS)})"))


def _rounds(out: Path) -> list[Path]:
    return [p for p in out.glob("round-*") if p.is_dir() and not p.is_symlink() and p.name[6:].isdigit()]


def _clear(out: Path) -> None:
    """--force: remove what an earlier dynamics run wrote in ``out`` (its run files, its recording,
    its round-R/ folders), nothing else."""
    import shutil

    from audit.ssl.checkpoint import clear_run

    for folder in [out, *_rounds(out)]:
        clear_run(folder)
        pred = folder / "predictions"
        if (pred / "meta.json").is_file() and not pred.is_symlink():
            shutil.rmtree(pred)
        if folder is not out:
            try:
                folder.rmdir()  # only when nothing but our files was in it
            except OSError:
                pass


def _parse_window(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    a, sep, b = text.partition(":")
    try:
        lo, hi = int(a), int(b)
    except ValueError:
        lo = hi = -1
    if not sep or lo < 0 or hi <= lo:
        raise invalid_parameter("--window", "audit dynamics", "A:B with epochs 0 <= A < B, e.g. 10:80", text)
    return lo, hi


def _request(fail_on, output_format, json_path, html_path, csv_path, top, quiet):
    from audit.report.emit import ReportRequest

    return ReportRequest(fail_on=fail_on, output_format=output_format, json_path=json_path, html_path=html_path,
                         csv_path=csv_path, top=top, quiet=quiet)


def _report(run, pool, truth, request, unlabeled: Path | None, *, labeled=None, manifest: Path | None = None) -> None:
    """Every report through ``audit.report.emit``: members placed along their pixel line with
    source/target from the labeled set (``orient_instances``), class names from the labeled set
    (or the manifest), the figures and the remove-and-retrain table in the HTML."""
    from dataclasses import replace

    from audit.dynamics.instances import orient_instances
    from audit.report.context import Scope
    from audit.report.emit import ReportExtras, emit

    result = run.result
    result = replace(result, findings=orient_instances(result.findings, pool, labeled))
    names = _class_names(labeled, manifest)
    extra, per_finding = _figures(result, pool, truth, names) if request.html_path is not None else ({}, {})
    root = str(unlabeled) if unlabeled is not None else None
    head, rows, note = _rounds_rows(run, truth)
    extras = ReportExtras(
        previews=pool, labeled=labeled, class_names=names, scope=Scope(root=root),
        title=f"audit dynamics: {result.root}", kinds=["dynamics"],
        rules={"dynamics": "images whose predictions change one after another during training (paper 5.3)"},
        html_figures=extra, finding_figures=per_finding,
        html_tables={"Remove and retrain": (head, rows)} if rows else None,
        console_extra=lambda c: _rounds_table(c, head, rows, note))
    code = emit(result, request, extras)
    if code:
        raise typer.Exit(code)


def _class_names(labeled, manifest: Path | None) -> tuple[str, ...] | None:
    """The labeled set's class names, else a ``redteam inject`` manifest's ``class_names``."""
    if labeled is not None and labeled.class_names is not None:
        return tuple(labeled.class_names)
    if manifest is None:
        return None
    import json

    try:
        p = manifest / "manifest.json" if manifest.is_dir() else manifest
        names = json.loads(p.read_text(encoding="utf-8")).get("class_names")
    except (OSError, ValueError, AttributeError):
        return None
    return tuple(str(n) for n in names) if isinstance(names, list) else None


def _figures(result, pool, truth, names):
    import numpy as np

    from audit.dynamics.figures import instance_heatmap, score_histogram

    positive = None if truth is None else np.isin(np.asarray(result.ids, dtype=object), list(truth.poison_ids))
    hist = score_histogram(result.scores["dynamics"], float(result.params.get("threshold", np.inf)),
                           score=str(result.params.get("score", "dynamics")), positive=positive)
    extra = {f"Figure 7 (paper): {result.params.get('score')} suspicion of every unlabeled image; shaded: flagged "
             f"(threshold {result.params.get('threshold', float('nan')):.3g})": hist}
    per_finding = {}
    for k, f in enumerate(result.findings[:50]):
        ev = f.evidence
        if "trajectory" in ev and "steps" in ev and ev["trajectory"]:
            cls = int(ev["final_class"])
            name = names[cls] if names is not None and 0 <= cls < len(names) else f"class {cls}"
            order = "along the pixel line" if "order" in ev else "flip order"
            png = instance_heatmap(np.asarray(ev["trajectory"], dtype=np.float64), ev["steps"], final_class=name,
                                   labels=[printable(m.id) for m in f.members], order=order)
            per_finding[k] = {f"Figure 5 (paper): P({name}) of each member over training, members {order}": png}
    return extra, per_finding


def _rounds_rows(run, truth) -> tuple[list[str], list[list[str]], str]:
    """The remove-and-retrain table (header, rows; no rows for one round without ground truth)
    and the recording's cost line."""
    rounds = run.rounds
    rec = rounds[0].run
    note = "" if rec is None else rec.cost_line()
    head = ["round", "pool", "removed", "poison removed", "poison left", "flagged", "test acc", "Δ acc", "attack"]
    if len(rounds) < 2 and truth is None:
        return head, [], note
    base = rounds[0].test_acc
    rows = []
    for rd in rounds:
        acc = "–" if rd.test_acc is None else f"{100 * rd.test_acc:.2f}%"
        delta = "–" if rd.test_acc is None or base is None else f"{100 * (rd.test_acc - base):+.2f}"
        atk = "–" if rd.attack_success is None else ("succeeded" if rd.attack_success else "failed")
        rows.append([str(rd.index), str(rd.pool_size), str(len(rd.removed)),
                     "–" if rd.poison_removed is None else str(rd.poison_removed),
                     "–" if rd.poison_left is None else str(rd.poison_left), str(len(rd.flagged)), acc, delta, atk])
    return head, rows, note


def _rounds_table(console, head, rows, note: str) -> None:
    if note:
        console.print(note, highlight=False, markup=False)
    if not rows:
        return
    table = Table(title="Remove and retrain", title_justify="left")
    for col in head:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
