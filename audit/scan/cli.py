"""``audit scan DIR``: static inspection of an unlabeled pool (paper 5.2), its reports and the CI
gate. Attached to the ``audit`` app in ``audit/cli.py``; errors are handled by its BoundaryGroup.

This module parses options, runs the scan and hands the result to ``audit.report.emit``, which
writes every report and decides what stdout carries: exactly what ``--format`` asks for (the text
summary, GitHub annotations, the JSON document, JUnit XML or SARIF); progress and the summary of
the other formats go to stderr. Exit codes: 0 gate passed, 1 gate failed (a finding at or above
``--fail-on``), 2 usage/runtime error. The scanned folder is only read, never written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from audit.errors import DataError, EmptyDatasetError, InvalidParameterError, invalid_parameter
from audit.report.ci import FailOn, OutputFormat

# Defaults of the tuning options; a test checks they equal ScanConfig's (importing the pipeline
# here would slow down every `audit --help`).
DEFAULT_DIM = 64
DEFAULT_K = 16
DEFAULT_DETECTORS = "bridge,path,cluster,near_duplicate"
DEFAULT_MAX_SIDE = 40  # audit.data.readers.resolution's; a test checks they agree
DEFAULT_MAX_MEMORY = "2G"  # audit.data.readers._common.DEFAULT_MAX_BYTES
MAX_PREVIEW_ROWS = 5000  # stored images fetched for HTML thumbnails of an --against scan

_REPORTS = "Reports"
_STORE = "Incremental scanning"
_TUNING = "Scan tuning"
_READING = "Reading the pool"


def scan(
    directory: str = typer.Argument(..., metavar="DIR", show_default=False,
                                    help="Unlabeled pool: a folder of images, or any file `audit` can read (.npz, IDX, ...), or a URL of a folder in object storage (s3://bucket/prefix, gs://..., file://...). Only read, never modified."),
    labeled: Optional[Path] = typer.Option(None, "--labeled", metavar="DIR",
                                           help="Labeled set (one sub-folder per class): bridges that start at a labeled image are reported with their source."),
    json_path: Optional[Path] = typer.Option(None, "--json", metavar="FILE", rich_help_panel=_REPORTS,
                                             help="Write the JSON report (versioned schema, gate verdict)."),
    html_path: Optional[Path] = typer.Option(None, "--html", metavar="FILE", rich_help_panel=_REPORTS,
                                             help="Write a self-contained HTML page with thumbnails for review."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", metavar="FILE", rich_help_panel=_REPORTS,
                                            help="Write one row per image: is_<kind>_issue, <kind>_score."),
    fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", case_sensitive=False,
                                   help="Exit 1 when a finding is at or above this severity."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", case_sensitive=False,
                                               help="stdout: text summary, GitHub Actions annotations, the JSON report, JUnit XML (GitLab/Jenkins/Azure test panels) or SARIF 2.1.0 (GitHub code scanning)."),
    summary_path: Optional[Path] = typer.Option(None, "--summary", metavar="FILE", rich_help_panel=_REPORTS,
                                                help="Write the Markdown step summary (also appended to $GITHUB_STEP_SUMMARY whenever GitHub Actions sets it)."),
    save_index: Optional[Path] = typer.Option(None, "--save-index", metavar="STORE", rich_help_panel=_STORE,
                                              help="Save this pool's index to STORE so later batches can be scanned --against it."),
    against: Optional[Path] = typer.Option(None, "--against", metavar="STORE", rich_help_panel=_STORE,
                                           help="Scan DIR as a new batch against the pool saved in STORE."),
    update: bool = typer.Option(False, "--update", rich_help_panel=_STORE,
                                help="With --against: add this batch to STORE when the gate passes."),
    lock_timeout: float = typer.Option(600.0, "--lock-timeout", min=0, metavar="SECONDS", rich_help_panel=_STORE,
                                       help="How long --save-index and --update wait while another run writes STORE, then exit 2."),
    size: Optional[str] = typer.Option(None, "--size", metavar="HxW", rich_help_panel=_READING,
                                       help="Bring every image to H×W (linear area/bilinear resampling keeps chains linear), e.g. 32x32. "
                                            "Default: the most common size, its longer side capped by --max-side."),
    max_side: int = typer.Option(DEFAULT_MAX_SIDE, "--max-side", min=0, metavar="N", rich_help_panel=_READING,
                                 help="Without --size: the longer side of the working size is at most N pixels (0: no cap, "
                                      "the most common size as is). Bridges stay lines under any linear downsampling."),
    max_memory: str = typer.Option(DEFAULT_MAX_MEMORY, "--max-memory", metavar="SIZE", rich_help_panel=_READING,
                                   help="Decoded-image budget of the read (e.g. 512M, 4G), checked from file headers before "
                                        "decoding; a pool over it is refused with the --size/--max-side that would fit."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, metavar="N", rich_help_panel=_READING,
                                          help="Decode processes for a folder (default: one per CPU; 0: in this process)."),
    dim: int = typer.Option(DEFAULT_DIM, "--dim", min=1, rich_help_panel=_TUNING,
                            help="PCA dimensions for the neighbour search; lower is faster and uses less memory."),
    k: int = typer.Option(DEFAULT_K, "--k", min=2, rich_help_panel=_TUNING,
                          help="Neighbours per image; a bridge point needs its chain neighbours among them."),
    detectors: str = typer.Option(DEFAULT_DETECTORS, "--detectors", rich_help_panel=_TUNING,
                                  help="Comma-separated detectors to run (--against never runs cluster). See docs/detectors.md."),
    detector_options: Optional[List[str]] = typer.Option(None, "--set", metavar="DETECTOR.KEY=VALUE", rich_help_panel=_TUNING,
                                                         help="Override a detector's option, e.g. --set path.min_size=8 (repeatable; docs/detectors.md)."),
    features: Optional[Path] = typer.Option(None, "--features", metavar="FILE", rich_help_panel=_TUNING,
                                            help="Your own per-image embeddings (.npz with features + ids, or .npy in pool order): the path detector also looks in that space."),
    top: int = typer.Option(10, "--top", min=1, help="Findings listed in the text summary."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no summary; errors and --format output only."),
    include_hidden: bool = typer.Option(False, "--include-hidden",
                                        help="Also read hidden entries (names starting with '.'), which are otherwise skipped and listed in the reports."),
    follow_symlinks: bool = typer.Option(False, "--follow-symlinks",
                                         help="Also read through symlinks to folders and out of DIR, which are otherwise skipped and listed in the reports."),
    engine: str = typer.Option("local", "--engine", metavar="local|ray",
                               help="Where the scan runs: this process, or a Ray cluster (pip install 'ssl-poison-audit[ray]'); the same findings either way (docs/scale-out.md)."),
    address: Optional[str] = typer.Option(None, "--address", metavar="ADDR",
                                          help="With --engine ray: the cluster to join (ray://host:10001, auto); default: start one on this machine."),
) -> None:
    """Scan an unlabeled image pool for poisoning: interpolation bridges, clusters of
    near-identical images, near duplicates (paper 5.2). Exit 0 pass, 1 gate failed, 2 error."""
    if update and against is None:
        raise InvalidParameterError("--update needs --against STORE (the stored index to add this batch to)")
    if save_index is not None and against is not None:
        raise InvalidParameterError("--save-index cannot be combined with --against; use --against STORE --update to grow STORE")
    if features is not None and against is not None:
        raise InvalidParameterError("--features cannot be combined with --against: a stored index holds no embeddings; "
                                    "scan the whole pool with --features instead")
    from audit.engines.run import is_sharded, previews as sharded_previews, read_pool, scan_pool

    from audit.data.remote import is_url, local_path

    source, url = directory, is_url(directory) and local_path(directory) is None
    directory = Path(local_path(directory) or directory)
    if engine not in ("local", "ray"):
        raise invalid_parameter("--engine", "audit scan", "local or ray", engine)
    sharded = is_sharded(source, engine)
    if not url and not directory.exists():
        raise DataError(f"{directory}: no such file or directory")
    if labeled is not None and not labeled.is_dir():
        raise DataError(f"--labeled {labeled}: not a directory (expected one sub-folder of images per class)")
    from audit.scan.store_layout import check_store_path  # standard library only: --help stays fast

    for flag, store_path, writes in (("--save-index", save_index, True), ("--against", against, update)):
        if store_path is not None:  # not a store (a file, a device, a folder of data): refused, never replaced
            check_store_path(store_path, write=writes, flag=flag)
    hw = parse_size(size)
    max_bytes = parse_bytes(max_memory, "--max-memory")
    # every output checked against every input before the scan (audit/outputs.py)
    from audit.outputs import REPLACED, Output, prepare_outputs
    from audit.report.emit import ReportRequest

    request = ReportRequest(fail_on=fail_on, output_format=output_format, json_path=json_path, html_path=html_path,
                            csv_path=csv_path, summary_path=summary_path, top=top, quiet=quiet)
    scanned = "scanned folder" if directory.is_dir() else "scanned file"
    prepare_outputs([*request.outputs(), Output("--save-index", save_index, REPLACED)],
                    {scanned: None if url else directory, "--labeled": labeled, "--against": against, "--features": features})
    # imported here, after the cheap checks: keeps `audit --help` fast (faiss, scipy)
    from audit.data.compare import compare_labeled
    from audit.data.load import load_images, load_labeled_folder
    from audit.report.ci import gate
    from audit.report.context import Scope
    from audit.report.emit import ReportExtras, emit
    from audit.report.progress import Progress, console
    from audit.report.text import printable
    from audit.scan import ScanConfig, save_index as store_index, scan_against
    from audit.scan.detectors import DETECTORS
    from audit.scan.store import update_store

    config = ScanConfig(projection_dim=dim, k=k, detectors=tuple(d.strip() for d in detectors.split(",") if d.strip()),
                        options=_detector_options(detector_options or []))
    config.validate()

    channels = None
    if against is not None:  # the batch is read at the stored pool's working size and colour
        from audit.scan.store import stored_shape

        stored = stored_shape(against)
        if hw is not None and hw != stored[:2]:
            raise InvalidParameterError(f"--size {size} differs from the images stored at {against} "
                                        f"({stored[0]}x{stored[1]}): a batch is compared at the store's size; drop --size")
        hw, channels = stored[:2], stored[2]

    with Progress(console(stderr=True, quiet=quiet)) as progress:
        if sharded:  # a URL or --engine ray: the pool stays where the shards read it
            from audit.data.readers._common import ReadOptions

            images = read_pool(source, engine, address, ReadOptions(
                size=hw, channels=channels, include_hidden=include_hidden, follow_symlinks=follow_symlinks,
                max_side=max_side or None, max_bytes=max_bytes, workers=workers), progress)
            if against is not None:  # a batch checked against a store is small: scanned here
                images = images.to_imageset()
        else:
            images = load_images(directory, size=hw, channels=channels, include_hidden=include_hidden,
                                 follow_symlinks=follow_symlinks, max_side=max_side or None, max_bytes=max_bytes,
                                 workers=workers, progress=lambda d, t: progress("read", d, t))
        if len(images) == 0:
            raise EmptyDatasetError(f"{source}: no readable image ({len(images.unreadable)} unreadable files)")
        labeled_set = None
        if labeled is not None:
            labeled_set = load_labeled_folder(labeled, size=images.shape[:2], channels=images.shape[2],
                                              max_bytes=max_bytes, workers=workers,
                                              progress=lambda d, t: progress("read labeled", d, t))
            warnings = compare_labeled(images, labeled_set)
            if warnings:  # said in the console, JSON and HTML notes, like the reader's own notes
                images = images.with_notes(warnings)
        added = 0
        if against is not None and update:  # one pass holding STORE's lock: scan, gate, append
            result, added = update_store(images, against, config, accept=lambda r: gate(r, fail_on.value) == 0,
                                         labeled=labeled_set, progress=progress, lock_timeout=lock_timeout)
        elif against is not None:
            result = scan_against(images, against, config, labeled=labeled_set, progress=progress)
        else:
            if len(images) < 3:
                what = "1 readable image" if len(images) == 1 else f"{len(images)} readable images"
                raise DataError(f"{source}: only {what}; a scan needs at least 3 "
                                "(to check a small batch, scan it --against a saved index)")
            embeddings = None
            if features is not None:
                from audit.data.embeddings import load_embeddings

                embeddings = load_embeddings(features, images.ids)
            result, context = scan_pool(images, config, labeled=labeled_set, progress=progress,
                                        embeddings=embeddings, keep_index=save_index is not None)
            if save_index is not None:
                progress("save index", 0, 1)
                store_index(context, save_index, lock_timeout=lock_timeout)  # the features and index just built
                progress("save index", 1, 1)

    messages = []
    if save_index is not None:
        messages.append(f"wrote {printable(save_index)}")
    if against is not None:
        scope = Scope.against(result, images.ids, source, str(against))
        title = f"audit scan: {source} against {against}"
        if added:
            messages.append(f"added {added} images to {printable(against)}")
        elif update and gate(result, fail_on.value) == 0:
            messages.append(f"nothing added to {printable(against)}: the batch's images are already in it")
        elif update:
            messages.append(f"not added to {printable(against)}: the gate failed")
    else:
        scope, title = Scope(root=source), f"audit scan: {source}"
    previews = None
    if html_path is not None:
        previews = sharded_previews(images, result) if against is None else _with_stored_previews(images, result, against)
    kinds = list(result.params.get("detectors", []))
    extras = ReportExtras(previews=previews, labeled=labeled_set, scope=scope, local_ids=frozenset(images.ids),
                          title=title, kinds=kinds, rules={k: DETECTORS.get(k).summary for k in kinds},
                          messages=messages)
    code = emit(result, request, extras)
    if code:
        raise typer.Exit(code)


def _with_stored_previews(batch, result, store: Path):
    """The batch plus the stored images that findings show (an --against scan's members may be
    old images; the store keeps their pixel rows), for HTML thumbnails."""
    from audit.data.imageset import ImageSet
    from audit.scan.store import load_store

    have = set(batch.ids)
    want = sorted({m.index: m.id for f in result.findings for m in f.members if m.id not in have}.items())
    if not want:
        return batch
    st = load_store(store)
    want = [(i, mid) for i, mid in want[:MAX_PREVIEW_ROWS] if i < len(st["ids"]) and st["ids"][i] == mid]
    if not want:
        return batch
    rows = np.asarray(st["rows"][[i for i, _ in want]]).reshape((len(want),) + tuple(st["shape"]))
    old = ImageSet(images=np.ascontiguousarray(rows), ids=tuple(mid for _, mid in want))
    return ImageSet.concat([batch.without_labels(), old])


def _detector_options(items: list[str]) -> dict[str, dict]:
    """``--set DETECTOR.KEY=VALUE`` items grouped per detector, typed by its config
    (``audit.overrides``, the syntax every CLI shares)."""
    from audit.overrides import parse_overrides
    from audit.scan.detectors import DETECTORS

    grouped: dict[str, list[str]] = {}
    for item in items:
        name, dot, rest = item.partition(".")
        if not dot or "=" not in rest or "=" in name:
            raise InvalidParameterError(f"The '--set' option of audit scan must be DETECTOR.KEY=VALUE, e.g. "
                                        f"path.min_size=8. Got {item!r} instead.")
        grouped.setdefault(name.strip(), []).append(rest)
    return {name: parse_overrides(rest, DETECTORS.get(name).Config, owner=f"detector '{name}'", command="audit scan")
            for name, rest in grouped.items()}


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def parse_bytes(text: str, flag: str) -> int:
    """``2G``, ``512M``, ``1.5GiB``, ``1000000`` → bytes (binary units: a G is 2^30)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text or "")
    unit = m and _UNITS.get(m.group(2).lower())
    if not unit or int(float(m.group(1)) * unit) < 1:
        raise invalid_parameter(flag, "audit scan", "a positive size such as 512M, 2G or 1.5GiB", text)
    return int(float(m.group(1)) * unit)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"32x32"`` / ``"32"`` -> ``(32, 32)``; ``None`` -> ``None``."""
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        hw = tuple(int(p) for p in parts)
    except ValueError:
        hw = ()
    if len(hw) == 1:
        hw = hw * 2
    if len(hw) != 2 or min(hw) <= 0:
        raise invalid_parameter("--size", "audit scan", "HxW with positive integers, e.g. 32x32", text)
    return hw  # type: ignore[return-value]
