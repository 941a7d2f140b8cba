"""``audit train``: train a semi-supervised model with any registered algorithm (paper 3.2.4).

Attached to the ``audit`` app in ``audit/cli.py``; errors are handled by its BoundaryGroup (one
line on stderr, exit 2). Data: the folders ``redteam inject`` writes (``--labeled DIR`` of class
sub-folders, ``--unlabeled DIR``, ``--test DIR`` of class sub-folders), or a built-in dataset
(``--dataset``) split into a class-balanced labeled set and an unlabeled pool. Writes
``OUT/model.pt`` (EMA weights), ``OUT/metrics.jsonl``, ``OUT/summary.json``, ``OUT/checkpoint.pt``.
Progress goes to stderr; the result to stdout: steps and test accuracy, then the three classes
the EMA model gets worst (``summary.json`` has every class: ``test_acc_per_class_ema``).

Nothing is lost: ``--out`` is checked before the data is read (never inside an input folder,
writable); an ``--out`` that holds an earlier run is refused unless ``--resume`` (continue it)
or ``--force`` (start over); Ctrl-C or SIGTERM during training writes a checkpoint and exits 130,
and ``--resume`` continues from it exactly.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from audit.errors import InvalidParameterError, invalid_parameter
from audit.ssl.algorithms import ALGORITHMS

_DATA = "Data"
_TRAINING = "Training"
_RUN = "Run"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# The data and training options `audit train` and `audit dynamics` share: the same option
# objects in both signatures, so the two commands cannot drift.
OPTIONS = dict(
    algo=typer.Option("fixmatch", "--algo", rich_help_panel=_TRAINING,
                      help=f"SSL algorithm: {', '.join(ALGORITHMS.names())}."),
    algo_options=typer.Option(None, "--set", metavar="KEY=VALUE", rich_help_panel=_TRAINING,
                              help="Override a field of the algorithm's config, e.g. --set threshold=0.9 (VALUE read as JSON; repeatable; see docs/algorithms.md)."),
    labeled=typer.Option(None, "--labeled", metavar="DIR", rich_help_panel=_DATA,
                         help="Labeled images, one sub-folder per class (as `redteam inject` writes)."),
    unlabeled=typer.Option(None, "--unlabeled", metavar="DIR", rich_help_panel=_DATA,
                           help="Unlabeled pool: a folder of images or any file `audit` can read."),
    test=typer.Option(None, "--test", metavar="DIR", rich_help_panel=_DATA,
                      help="Test images, one sub-folder per class (named as in --labeled)."),
    dataset=typer.Option(None, "--dataset", metavar="NAME_OR_PATH", rich_help_panel=_DATA,
                         help="A dataset instead of folders: a built-in name (digits, fashion-mnist) or a dataset path (as `redteam` takes), split into labeled + pool."),
    labels_per_class=typer.Option(4, "--labels-per-class", rich_help_panel=_DATA,
                                  help="With --dataset: labeled images per class (4 = the paper's 40 labels)."),
    unlabeled_size=typer.Option(None, "--unlabeled-size", metavar="N", rich_help_panel=_DATA,
                                help="With --dataset: unlabeled pool size (default: every training image not labeled)."),
    model=typer.Option("cnn", "--model", rich_help_panel=_TRAINING, help="Model: cnn or wrn28_2."),
    steps=typer.Option(1000, "--steps", rich_help_panel=_TRAINING, help="Optimiser steps."),
    batch_size=typer.Option(64, "--batch-size", rich_help_panel=_TRAINING, help="Labeled images per step."),
    mu=typer.Option(7, "--mu", rich_help_panel=_TRAINING, help="Unlabeled images per labeled image in a step."),
    lr=typer.Option(0.03, "--lr", rich_help_panel=_TRAINING, help="Learning rate (cosine-decayed)."),
    flip=typer.Option(True, "--flip/--no-flip", rich_help_panel=_TRAINING,
                      help="Random horizontal flips in the augmentations (turn off for digits, text)."),
    allow_repeats=typer.Option(False, "--allow-repeats", rich_help_panel=_TRAINING,
                               help="Allow --batch-size above the number of labeled images (labeled images repeat within a batch)."),
    seed=typer.Option(0, "--seed", rich_help_panel=_TRAINING, help="Seed of the split, the initialisation and every random draw."),
    device=typer.Option(Device.auto, "--device", case_sensitive=False, rich_help_panel=_RUN,
                        help="auto: CUDA when present."),
    eval_every=typer.Option(500, "--eval-every", rich_help_panel=_RUN, help="Steps between test evaluations (0: at the end only)."),
    checkpoint_every=typer.Option(500, "--checkpoint-every", rich_help_panel=_RUN, help="Steps between checkpoints (0: never)."),
    threads=typer.Option(None, "--threads", rich_help_panel=_RUN, help="CPU threads for torch (default: torch's choice)."),
)
_O = OPTIONS


def train(
    algo: str = _O["algo"], algo_options: Optional[List[str]] = _O["algo_options"],
    labeled: Optional[Path] = _O["labeled"], unlabeled: Optional[Path] = _O["unlabeled"],
    test: Optional[Path] = _O["test"], dataset: Optional[str] = _O["dataset"],
    labels_per_class: int = _O["labels_per_class"], unlabeled_size: Optional[int] = _O["unlabeled_size"],
    model: str = _O["model"], steps: int = _O["steps"], batch_size: int = _O["batch_size"], mu: int = _O["mu"],
    lr: float = _O["lr"], flip: bool = _O["flip"], allow_repeats: bool = _O["allow_repeats"], seed: int = _O["seed"],
    out: Path = typer.Option(..., "--out", metavar="DIR", rich_help_panel=_RUN, show_default=False,
                             help="Run folder: model.pt, metrics.jsonl, summary.json, checkpoint.pt."),
    resume: bool = typer.Option(False, "--resume", rich_help_panel=_RUN,
                                help="Continue the run in --out from its checkpoint, exactly (same options and data)."),
    force: bool = typer.Option(False, "--force", rich_help_panel=_RUN,
                               help="Start over in an --out that holds an earlier run, replacing its checkpoint, model and metrics."),
    device: Device = _O["device"], eval_every: int = _O["eval_every"], checkpoint_every: int = _O["checkpoint_every"],
    threads: Optional[int] = _O["threads"],
    quiet: bool = typer.Option(False, "--quiet", "-q", rich_help_panel=_RUN, help="No progress bar."),
) -> None:
    """Train a semi-supervised classifier (labeled + unlabeled images) with one of the paper's
    seven SSL algorithms; the EMA model is evaluated and saved. Exit 0 done, 2 error."""
    from audit.data.split import check_sources

    algo_config = algorithm_overrides(algo, algo_options, "train")  # before any data is read
    check_sources(dataset, labeled, unlabeled, test, unlabeled_size)
    check_run_folder(out, data_inputs(dataset, labeled, unlabeled, test), resume=resume, force=force)
    if threads is not None:
        if threads < 1:
            raise invalid_parameter("threads", "train", "an int >= 1", threads)
        import torch

        torch.set_num_threads(threads)
    from audit.data.split import training_sets
    from audit.ssl.trainer import TrainConfig, Trainer

    with option_names("train"):
        config = TrainConfig(
            algo=algo, algo_config=algo_config, model=model, steps=steps,
            batch_size=batch_size, mu=mu, lr=lr, eval_every=eval_every, checkpoint_every=checkpoint_every,
            seed=seed, device=device.value, flip=flip, allow_repeats=allow_repeats)
        lab, unl, tst = training_sets(dataset=dataset, labeled=labeled, unlabeled=unlabeled, test=test,
                                      labels_per_class=labels_per_class, unlabeled_size=unlabeled_size, seed=seed)

    from audit.report.progress import Progress, console

    bars = Progress(console(stderr=True, quiet=quiet))  # the one progress display: plain lines in a CI log
    progress = bars.training(algo, steps)
    with option_names("train"):
        trainer = Trainer(config, lab, unl, tst, out_dir=out, on_progress=progress.step)  # checks data first
    if force:
        from audit.ssl.checkpoint import clear_run

        clear_run(out)  # only now that the data is known good: a failed start keeps the old run
    start = trainer.resume() if resume else 0  # a bad checkpoint fails before any output
    with bars:
        progress.round(0, start, len(unl))
        result = trainer.fit()

    from audit.report.text import printable

    acc = ("no test set" if result.test_acc_ema is None else
           f"test accuracy {100 * result.test_acc_ema:.2f}% (EMA), {100 * result.test_acc_raw:.2f}% (raw)")
    typer.echo(f"{algo}: {result.steps} steps, {acc}; wrote {printable(out / 'model.pt')}, metrics.jsonl, summary.json")
    if result.per_class_ema:
        weakest = sorted(result.per_class_ema.items(), key=lambda kv: kv[1])[:3]
        typer.echo("weakest classes (EMA): " + ", ".join(f"{printable(name)} {100 * a:.0f}%" for name, a in weakest))


# "The 'batch_size' parameter of TrainConfig must be ...": the library's names for what the user
# typed as an option; these owners' parameters that are options are renamed to them.
_LIBRARY_PARAMETER = re.compile(r"^The '(\w+)' parameter of (?:TrainConfig|balanced_split|training_sets|train)\b")
_OPTION_NAMES = frozenset(OPTIONS) | {"ema"}


@contextmanager
def option_names(command: str) -> Iterator[None]:
    """Library parameter errors in the user's terms: ``The 'batch_size' parameter of
    TrainConfig`` becomes ``The '--batch-size' parameter of audit train``."""
    try:
        yield
    except InvalidParameterError as exc:
        m = _LIBRARY_PARAMETER.match(str(exc))
        if m is None or m.group(1) not in _OPTION_NAMES:
            raise
        flag = "--" + m.group(1).replace("_", "-")
        raise InvalidParameterError(f"The '{flag}' parameter of audit {command}{str(exc)[m.end():]}") from None


def check_run_folder(out: Path, inputs: dict, *, resume: bool, force: bool, extra: tuple[str, ...] = ()) -> None:
    """Before any data is read: ``out`` passes the output policy (``audit.outputs``), and an
    ``out`` holding an earlier run (its checkpoint, model, metrics or any of ``extra``) is only
    continued with ``--resume`` or replaced with ``--force``, never silently overwritten."""
    from audit.outputs import FOLDER, Output, prepare_outputs
    from audit.ssl.checkpoint import earlier_run

    if resume and force:
        raise InvalidParameterError("--resume continues the run in --out and --force starts it over; give one")
    prepare_outputs([Output("--out", out, FOLDER)], inputs)
    found = earlier_run(out) + [name for name in extra if (out / name).exists()]
    if found and not (resume or force):
        raise InvalidParameterError(
            f"--out {out} already holds a run ({', '.join(found)}); continue it with --resume, or pass --force "
            "to start over (replacing it), or choose another --out")


def data_inputs(dataset, labeled, unlabeled, test) -> dict:
    """What a run reads, for the output policy (a built-in dataset name is no path)."""
    from audit.data.builtin import BUILTINS

    path = None if dataset is None or dataset in BUILTINS else Path(dataset)
    return {"--dataset": path, "--labeled": labeled, "--unlabeled": unlabeled, "--test": test}


def algorithm_overrides(algo: str, items: Optional[List[str]], command: str) -> dict:
    """``--set KEY=VALUE`` for the algorithm's config (``audit.overrides``); an unknown algorithm
    name fails here, before any data is read."""
    from audit.overrides import parse_overrides
    from audit.ssl.algorithms import ALGORITHMS

    cls = ALGORITHMS.get(algo)
    values = parse_overrides(items or [], cls.Config, owner=f"the {algo} algorithm", command=command)
    try:
        cls.make_config(values)  # the values' ranges too, still before any data is read
    except InvalidParameterError as exc:  # "... of FixMatchConfig": name it as the user wrote it
        m = re.match(r"^The '(\w+)' parameter of \w+\b", str(exc))
        if m is None:
            raise
        raise InvalidParameterError(f"The '--set {m.group(1)}' value of the {algo} algorithm{str(exc)[m.end():]}") from None
    return values
