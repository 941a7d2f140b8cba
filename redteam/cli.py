"""The ``redteam`` command: ``inject`` (poison a dataset), later ``bench``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from audit.cli import new_app
from redteam.attacks import ATTACKS
from redteam.density import DEFAULT_DENSITY, DENSITIES

app = new_app("Produce the poisoning attacks of the paper and benchmark the auditor against them.")

_DENSITY_HELP = (
    "Density ρ of the α values along the bridge (paper Table 3). One of: "
    + ", ".join(f"'{n}'" for n in DENSITIES)
    + ". Quote it in a shell."
)


_Opt = typer.Option


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
    attack: Annotated[str, _Opt(help="Attack: " + ", ".join(ATTACKS) + ".")] = "linear",
    seed: Annotated[int, _Opt(help="Seed: the same seed writes the same bytes.")] = 0,
    force: Annotated[bool, _Opt("--force", help="Overwrite a non-empty --out.")] = False,
) -> None:
    """Write a poisoned copy of a dataset and its ground-truth manifest (paper 3.1).

    n = max(2, round(ratio × clean unlabeled pool)) images between a labeled x' of class y* and a test image x*.

    Unlabeled file names are keyed hashes: only manifest.json says which are poisoned.
    """
    from rich.console import Console

    from redteam.inject import InjectConfig, check_out_dir, write_poisoned
    from audit.data.load import load_dataset
    from redteam.inject import inject as run_inject

    start = time.perf_counter()
    config = InjectConfig(
        dataset=dataset, root=root, labels_per_class=labels_per_class, unlabeled=unlabeled, target=target,
        target_label=target_label, source=source, ratio=ratio, count=count, density=density, attack=attack,
        seed=seed,
    )
    check_out_dir(out, force=force)  # fail before the (possibly slow) load and injection
    ds = run_inject(load_dataset(dataset, root), config)
    write_poisoned(ds, out, force=force)
    m = ds.manifest
    console = Console()
    console.print(f"[bold]Poisoned[/bold] {m.dataset} written to [cyan]{out}[/cyan] "
                  f"in {time.perf_counter() - start:.1f} s")
    console.print(f"  labeled {m.labeled_size}, unlabeled {m.unlabeled_size} = {m.unlabeled_pool_size} clean "
                  f"+ [red]{m.n} poisoned[/red] ({m.attack}, density {m.density}, seed {m.seed})")
    console.print(f"  target x*: {m.target.path} (true label {m.target.label} '{m.target.class_name}')"
                  f" -> y* = {m.target_label} '{m.target_label_name}'")
    console.print(f"  source x': {m.source.path} (labeled index {m.source.index})")
    console.print(f"  ground truth: {out / 'manifest.json'}")


def main() -> None:
    app(prog_name="redteam")


if __name__ == "__main__":
    sys.exit(main())
