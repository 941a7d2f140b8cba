"""The ``redteam`` command: ``inject`` (poison a dataset), ``train-gan`` (the generator of the
paper's 4.2 attack), ``bench`` (inject, train, audit, score: paper 3.2 and 5).

Outputs follow ``audit.outputs`` (checked before any work: never in or around the dataset read).
Every message that quotes a path is printed without rich markup and with control characters
escaped, so ``--out 'x[/]'`` is just a folder name."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence

import typer

from audit.cli import new_app, run_and_exit
from audit.errors import InvalidParameterError
from redteam.attacks import ATTACKS
from redteam.density import DEFAULT_DENSITY, DENSITIES

app = new_app("Produce the poisoning attacks of the paper and benchmark the auditor against them.")

_DENSITY_HELP = (
    "Density ρ of the α values along the bridge (paper Table 3). One of: "
    + ", ".join(f"'{n}'" for n in DENSITIES)
    + ". Quote it in a shell."
)


_Opt = typer.Option


def _param_keys(attack: str) -> list[str]:
    return [f.name for f in dataclasses.fields(ATTACKS.get(attack).Config)]


_PARAM_HELP = (
    "Set a field of the attack's config, KEY=VALUE (VALUE read as JSON; repeatable), e.g. --set sigma=4 "
    "--set kind=uniform. Keys: "
    + "; ".join(f"{a}: {', '.join(_param_keys(a)) or '(none)'}" for a in ATTACKS)
    + ". Defaults and meaning: docs/attacks.md."
)


def _dataset_inputs(dataset: str, root: Optional[str]) -> dict[str, Any]:
    """The paths a command reads its dataset from, for the output policy: a dataset path, or a
    built-in's folder (``--root``, or fashion-mnist's default; digits ships inside scikit-learn)."""
    from audit.data.builtin import BUILTINS, FASHION_MNIST_ROOT

    if dataset in BUILTINS:
        default = FASHION_MNIST_ROOT if dataset == "fashion-mnist" else None
        return {"--root": root if root is not None else default}
    return {"--dataset": dataset, "--root": root}


def attack_config(attack: str, params: Sequence[str]) -> Any:
    """The attack's frozen Config from ``--set KEY=VALUE`` strings (``audit.overrides``: the one
    syntax of every CLI), validated by the Config itself; None when ``params`` is empty (defaults)."""
    from audit.overrides import parse_overrides

    cls = ATTACKS.get(attack)
    if not params:
        return None
    return cls.Config(**parse_overrides(params, cls.Config, owner=f"the {attack} attack", command="inject"))


@app.command("inject")
def inject(
    dataset: Annotated[str, _Opt("--dataset", "-d", help="Builtin name (digits, fashion-mnist) or a dataset path.")],
    out: Annotated[Path, _Opt("--out", "-o", help="Output folder (labeled/, unlabeled/, test/, manifest.json).")],
    root: Annotated[Optional[str], _Opt(help="Where a builtin dataset's files are.")] = None,
    labels_per_class: Annotated[
        int, _Opt(help="Labeled examples per class (4 = the paper's 40 on 10 classes).")
    ] = 4,
    unlabeled: Annotated[
        Optional[int], _Opt(help="Clean unlabeled pool size.", show_default="every training image not labeled")
    ] = None,
    target: Annotated[
        Optional[int], _Opt(help="Index of the target x* in the test split.", show_default="random")
    ] = None,
    target_label: Annotated[
        Optional[int], _Opt(help="Label y* that x* should get.", show_default="random, not x*'s own")
    ] = None,
    source: Annotated[
        Optional[int],
        _Opt(help="Index of x' in the labeled set, ordered by class; must be of class y*.", show_default="random"),
    ] = None,
    ratio: Annotated[
        Optional[float], _Opt(help="Poisoned images per clean unlabeled image, in (0, 0.5].", show_default="0.001")
    ] = None,
    count: Annotated[Optional[int], _Opt(help="Exact number of poisoned images (instead of --ratio), >= 2.")] = None,
    density: Annotated[str, _Opt(help=_DENSITY_HELP)] = DEFAULT_DENSITY,
    attack: Annotated[str, _Opt(help="Attack (docs/attacks.md): " + ", ".join(ATTACKS) + ".")] = "linear",
    param: Annotated[Optional[list[str]], _Opt("--set", metavar="KEY=VALUE", help=_PARAM_HELP)] = None,
    seed: Annotated[int, _Opt(help="Seed: the same seed writes the same bytes.")] = 0,
    force: Annotated[bool, _Opt("--force", help="Replace an --out that holds an earlier inject output (recognised by "
                                                "its manifest); any other non-empty folder is refused.")] = False,
) -> None:
    """Write a poisoned copy of a dataset and its ground-truth manifest (paper 3.1).

    n = max(2, round(ratio × clean unlabeled pool)) images between a labeled x' of class y* and a test image x*.

    Unlabeled file names are keyed hashes: only manifest.json says which are poisoned.

    --out is written as a hidden sibling folder and renamed into place at the end: an interrupted
    run leaves nothing half-written there.
    """
    from rich.console import Console
    from rich.text import Text

    from audit.data.load import load_dataset
    from audit.outputs import REPLACED, Output, prepare_outputs
    from audit.report.text import printable as p
    from redteam.inject import InjectConfig, check_out_dir, write_poisoned
    from redteam.inject import inject as run_inject

    start = time.perf_counter()
    config = InjectConfig(
        dataset=dataset, root=root, labels_per_class=labels_per_class, unlabeled=unlabeled, target=target,
        target_label=target_label, source=source, ratio=ratio, count=count, density=density, attack=attack,
        seed=seed, attack_config=attack_config(attack, param or []),
    )
    # fail before the (possibly slow) load and injection
    prepare_outputs([Output("--out", out, REPLACED)], _dataset_inputs(dataset, root))
    check_out_dir(out, force=force)
    ds = run_inject(load_dataset(dataset, root), config)
    write_poisoned(ds, out, force=force)
    m = ds.manifest
    console = Console(highlight=False, soft_wrap=True)  # a path is never broken across lines
    console.print(Text.assemble(("Poisoned", "bold"), f" {p(m.dataset)} written to ", (p(out), "cyan"),
                                f" in {time.perf_counter() - start:.1f} s"))
    console.print(Text.assemble(f"  labeled {m.labeled_size}, unlabeled {m.unlabeled_size} = {m.unlabeled_pool_size} "
                                "clean + ", (f"{m.n} poisoned", "red"), f" ({m.attack}, density {m.density}, "
                                f"seed {m.seed})"))
    console.print(Text(f"  target x*: {p(m.target.path)} (true label {m.target.label} '{p(m.target.class_name)}')"
                       f" -> y* = {m.target_label} '{p(m.target_label_name)}'"))
    console.print(Text(f"  source x': {p(m.source.path)} ({m.source.split} index {m.source.index})"))
    console.print(Text(f"  ground truth: {p(out / 'manifest.json')}"))


@app.command("train-gan")
def train_gan(
    dataset: Annotated[str, _Opt("--dataset", "-d", help="Builtin name (digits, fashion-mnist) or a dataset path.")],
    out: Annotated[Path, _Opt("--out", "-o", help="Generator checkpoint to write (e.g. G.pt), atomically.")],
    root: Annotated[Optional[str], _Opt(help="Where a builtin dataset's files are.")] = None,
    steps: Annotated[int, _Opt(help="Training steps (one discriminator + one generator update each).")] = 2000,
    batch_size: Annotated[int, _Opt(help="Real images per step.")] = 64,
    latent_dim: Annotated[int, _Opt(help="Size of the latent z.")] = 64,
    width: Annotated[int, _Opt(help="Channels of the last up-sampling block (earlier ones double).")] = 32,
    seed: Annotated[int, _Opt(help="Seed for weights, batches and latents.")] = 0,
    device: Annotated[str, _Opt(help="auto (CUDA when present), cpu, cuda or cuda:N.")] = "auto",
    force: Annotated[bool, _Opt("--force", help="Overwrite an existing --out.")] = False,
) -> None:
    """Train the small DC-GAN of the paper's 4.2 attack on a dataset's training images and save its
    generator (use it with: redteam inject --attack gan --set generator=OUT)."""
    from audit.data.load import load_dataset
    from audit.report.progress import Progress, console
    from audit.ssl.trainer import resolve_device
    from redteam.generative.train import GanTrainConfig, config_json, save_generator
    from redteam.generative.train import train_gan as run_train

    from audit.outputs import FILE, Output, prepare_outputs

    config = GanTrainConfig(steps=steps, batch_size=batch_size, latent_dim=latent_dim, width=width, seed=seed,
                            device=device)
    prepare_outputs([Output("--out", out, FILE)], _dataset_inputs(dataset, root))
    if out.exists() and not force:
        raise InvalidParameterError(f"The 'out' parameter of train-gan must be a new file. Got '{out}', which "
                                    f"exists; pass --force to overwrite it.")
    images = load_dataset(dataset, root).train.images
    start = time.perf_counter()
    with Progress(console(stderr=True)) as progress:  # the one progress display: plain lines in a log
        generator = run_train(images, config, lambda p: progress("train-gan", p.step, p.steps,
                                                                 f"D {p.loss_d:.3f}  G {p.loss_g:.3f}"))
    info = {"dataset": dataset, "images": int(len(images)), "config": config_json(config),
            "device": str(resolve_device(device)), "seconds": round(time.perf_counter() - start, 1)}
    save_generator(out, generator, info)
    s = generator.shape
    from audit.report.text import printable

    typer.echo(f"wrote {printable(out)}: a {s.size}×{s.size}×{s.channels} generator (latent {s.latent_dim}) after "
               f"{config.steps} steps in {info['seconds']} s")


def _split_list(values: Optional[list[str]], convert: Any = str, name: str = "") -> tuple | None:
    """Repeatable options that also take comma-separated lists: ``--ratio 0.005,0.01``."""
    if not values:
        return None
    out = []
    for v in values:
        for part in (p.strip() for p in v.split(",")):
            if part:
                try:
                    out.append(convert(part))
                except ValueError:
                    raise InvalidParameterError(f"The '{name}' parameter of bench must be a float. Got {part!r} "
                                                "instead.") from None
    return tuple(out)


@app.command("bench")
def bench(
    out: Annotated[Path, _Opt("--out", "-o", help="Output folder: trials/*.json, results.json, report.md, "
                                                   "report.html (self-contained), *.png. Rerunning into it resumes.")],
    preset: Annotated[str, _Opt(help="smoke (digits, ~2 min), cpu_small (Fashion-MNIST, ~1 h on 2 cores), "
                                     "gpu (one H200 call), paper, paper_densities (GPU). Flags below override "
                                     "it.")] = "smoke",
    dataset: Annotated[Optional[str], _Opt("--dataset", "-d", help="Builtin name or dataset path.")] = None,
    root: Annotated[Optional[str], _Opt(help="Where a builtin dataset's files are.")] = None,
    pool: Annotated[Optional[int], _Opt(help="Clean unlabeled pool size.")] = None,
    labels_per_class: Annotated[Optional[int], _Opt(help="Labeled examples per class.")] = None,
    algo: Annotated[Optional[list[str]], _Opt("--algo", help="SSL algorithm(s), repeatable or comma-separated.")] = None,
    attack: Annotated[Optional[list[str]], _Opt("--attack", help="Attack(s): " + ", ".join(ATTACKS) + ".")] = None,
    ratio: Annotated[Optional[list[str]], _Opt("--ratio", help="Poison ratio(s) in (0, 0.5]; the clean control "
                                                               "(ratio 0) is always added.")] = None,
    density: Annotated[Optional[list[str]], _Opt("--density", help="Density(ies) of Table 3, quoted.")] = None,
    trials: Annotated[Optional[int], _Opt(help="Trials per cell (seeds seed..seed+trials-1, same x'/x* per "
                                               "trial in every cell).")] = None,
    steps: Annotated[Optional[int], _Opt(help="Training steps per trial.")] = None,
    batch_size: Annotated[Optional[int], _Opt(help="Labeled images per step.")] = None,
    mu: Annotated[Optional[int], _Opt(help="Unlabeled images per labeled one.")] = None,
    model: Annotated[Optional[str], _Opt(help="Model: cnn or wrn28_2.")] = None,
    observe_every: Annotated[Optional[int], _Opt(help="Steps between prediction records (dynamics).",
                                                 show_default="one pass over the pool")] = None,
    dynamics_score: Annotated[Optional[list[str]], _Opt("--dynamics-score",
                                                        help="Dynamics score(s) to evaluate; NAME+pixels gives the score the pool's pixels (default: influence, chain, chain+pixels).")] = None,
    seed: Annotated[Optional[int], _Opt(help="Base seed.")] = None,
    device: Annotated[Optional[str], _Opt(help="auto, cpu, cuda or cuda:N.")] = None,
    threads: Annotated[int, _Opt(help="CPU threads for torch and FAISS (0: their default). The default 1 "
                                      "suits shared machines.")] = 1,
    retry_failed: Annotated[bool, _Opt("--retry-failed", help="Recompute stored failed trials.")] = False,
    keep_predictions: Annotated[bool, _Opt("--keep-predictions",
                                           help="Keep each trial's recorded predictions in OUT/predictions/<key>/ "
                                                "(default: deleted).")] = False,
) -> None:
    """Benchmark attack success and detection quality over attacks × algorithms × ratios × densities × trials.

    Per trial: inject in memory, train the victim recording predictions, check whether x* ends as y*.

    Then audit scan and the dynamics scores run on the pool and are scored against the ground truth.

    Resumable (one JSON per trial). Exit code 1 when a trial failed (listed in the report), else 0.
    """
    from dataclasses import replace

    from audit.outputs import FOLDER, Output, prepare_outputs
    from audit.report.progress import Progress, console
    from audit.report.text import printable
    from redteam.bench import PRESETS, run_bench

    config = PRESETS.get(preset)()
    overrides = {k: v for k, v in {
        "dataset": dataset, "root": root, "pool": pool, "labels_per_class": labels_per_class,
        "algos": _split_list(algo), "attacks": _split_list(attack), "ratios": _split_list(ratio, float, "ratio"),
        "densities": _split_list(density), "trials": trials, "seed": seed,
        "dynamics_scores": _split_list(dynamics_score)}.items() if v is not None}
    train = {k: v for k, v in {"steps": steps, "batch_size": batch_size, "mu": mu, "model": model,
                               "observe_every": observe_every, "device": device}.items() if v is not None}
    if model is not None and model != config.train.model:
        train["model_options"] = None  # the preset's options belong to its model
    config = replace(config, **overrides, train=replace(config.train, **train))
    if overrides or train:
        config = replace(config, preset=f"{config.preset} (modified)")
    prepare_outputs([Output("--out", out, FOLDER)], _dataset_inputs(config.dataset, config.root))
    if threads > 0:
        import faiss
        import torch

        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)

    start = time.perf_counter()
    reused = [0]
    # the one progress display: "trials" counts the trials computed here (its time left is theirs),
    # "trial" is the running one's phase, its training steps counted
    with Progress(console(stderr=True)) as progress:

        def on_event(e) -> None:
            if e.kind == "start":
                reused[0] = e.done
                progress("trials", 0, e.total - e.done, f"{e.done} reused from {printable(out)}" if e.done else "")
            elif e.kind in ("trial", "phase"):
                train = e.kind == "phase" and e.phase == "train"
                progress("trial", e.step if train else 0, e.steps if train else 0,
                         f"{printable(e.spec.label())} · {e.phase if e.kind == 'phase' else 'start'}")
            elif e.kind == "done":
                failed = "" if e.result.ok else f"last trial failed: {printable(e.result.error.splitlines()[0])}"
                progress("trials", e.done - reused[0], e.total - reused[0], failed)

        outcome = run_bench(config, out, retry_failed=retry_failed, keep_predictions=keep_predictions,
                             on_event=on_event)

    ok = len(outcome.results) - len(outcome.failed)
    typer.echo(f"bench '{config.preset}': {ok}/{len(outcome.results)} trials finished "
               f"({outcome.computed} computed, {outcome.reused} reused) in {time.perf_counter() - start:.0f} s")
    for r in outcome.failed:
        typer.echo(f"  FAILED {printable(r.key)}: {printable((r.error or '').splitlines()[0])}")
    typer.echo(f"results: {printable(outcome.results_path)}")
    typer.echo(f"report:  {printable(outcome.report_path)}")
    if outcome.report_path is not None and outcome.report_path.with_suffix(".html").is_file():
        typer.echo(f"         {printable(outcome.report_path.with_suffix('.html'))} (one page, plots inside)")
    if outcome.failed:
        raise typer.Exit(1)


def main() -> None:
    run_and_exit(app, "redteam")


if __name__ == "__main__":
    sys.exit(main())
