"""Files on disk -> ImageSet / Splits: the data layer's two entry points.

``load_images`` reads one image set (an unlabeled pool, or a labeled set whose labels the format
carries); ``load_dataset`` reads a built-in name or a dataset with splits; ``load_labeled_folder``
reads class subfolders (``--labeled DIR``). Formats are recognised by content through the reader
registry (``audit.data.readers``); size and channel options apply to every format the same way.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from audit.data.builtin import BUILTINS
from audit.data.imageset import ImageSet, Splits
from audit.data.readers import READERS, supported_formats
from audit.data.readers._common import (
    DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, Progress, ReadOptions, check_options, conform, file_kind,
    head, is_regular,
)
from audit.data.readers.folder import read_labeled_folder
from audit.errors import DataError, EmptyDatasetError, UnsupportedFormatError, invalid_parameter

_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def _options(owner: str, size, channels, max_pixels, **more) -> ReadOptions:
    """Validate at the boundary, naming the public function, then build the options."""
    check_options(owner, size, channels, max_pixels)
    ms, mb, wk = more.get("max_side"), more.get("max_bytes"), more.get("workers")
    if ms is not None and (not isinstance(ms, int) or isinstance(ms, bool) or ms < 1):
        raise invalid_parameter("max_side", owner, "None or a positive int", ms)
    if not isinstance(mb, int) or isinstance(mb, bool) or mb < 1:
        raise invalid_parameter("max_bytes", owner, "a positive int (bytes)", mb)
    if wk is not None and (not isinstance(wk, int) or isinstance(wk, bool) or wk < 0):
        raise invalid_parameter("workers", owner, "None or an int >= 0", wk)
    return ReadOptions(size=None if size is None else tuple(size), channels=channels, max_pixels=int(max_pixels),
                       **more)


def _existing(path: str | Path, owner: str) -> Path:
    if not isinstance(path, (str, Path)) or str(path) == "":
        raise invalid_parameter("path", owner, "a file or directory path", path)
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p} does not exist")
    return p


def load_images(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
    include_hidden: bool = False,
    follow_symlinks: bool = False,
    max_side: int | None = DEFAULT_MAX_SIDE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    workers: int | None = None,
) -> ImageSet:
    """One image set from a folder, ``.npz``/``.npy``, idx3 file, CIFAR batch, SVHN ``.mat`` or
    STL-10 ``*_X.bin``: uint8 N×H×W×C, C in (1, 3).

    ids: relative paths for folders, ``00042`` (zero-padded index) for array formats, or the
    ``ids`` array of an npz. Working size (``audit.data.readers.resolution``): ``size`` (H, W)
    if given, else the majority size with its longer side capped at ``max_side`` (None: no cap);
    every resize is a linear map. ``channels`` forces gray replicated / colour to luma.
    ``max_bytes`` is the decoded-memory budget of the whole read (checked from headers before
    decoding); ``include_hidden`` / ``follow_symlinks`` read what a folder walk skips by default;
    ``workers`` sets the decode processes (None: one per CPU; 0: in this process).
    ``ImageSet.notes`` (words) and ``ImageSet.summary`` (JSON) say what was met and done.
    """
    opts = _options("load_images", size, channels, max_pixels, progress=progress, include_hidden=include_hidden,
                    follow_symlinks=follow_symlinks, max_side=max_side, max_bytes=max_bytes, workers=workers)
    p = _existing(path, "load_images")
    for name in READERS:
        reader = READERS.get(name)
        if reader.sniff(p):
            try:
                s = reader.read(p, opts)
            except EmptyDatasetError as exc:
                raise EmptyDatasetError(str(exc) + _dataset_hint(p)) from None
            if name == "folder":
                return conform(s, opts.size, opts.channels, max_bytes=opts.max_bytes)
            if progress is not None:  # array formats load in one step
                progress(len(s), len(s))
            gray = s.shape[2] == 1
            s = replace(s, summary={"format": name, "images": len(s), "native_sizes": [
                {"size": f"{s.shape[0]}x{s.shape[1]}", "count": len(s)}], "working_size": f"{s.shape[0]}x{s.shape[1]}",
                "channels": s.shape[2], "native_colour": {"gray": len(s) if gray else 0, "colour": 0 if gray else len(s)},
                **s.summary})
            return conform(s, opts.size, opts.channels, max_side=opts.max_side, max_bytes=opts.max_bytes)
    raise UnsupportedFormatError(_unsupported(p))


def load_labeled_folder(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
    include_hidden: bool = False,
    follow_symlinks: bool = False,
    max_side: int | None = DEFAULT_MAX_SIDE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    workers: int | None = None,
) -> ImageSet:
    """Class subfolders of ``path`` -> labels (class_names sorted; label i is class_names[i]).
    ids are ``class/file.png``; files directly in ``path`` are listed as unreadable. Options as
    :func:`load_images`; pass the pool's working size as ``size`` so that a labeled image and
    the pool's images of the same native size go through the same linear map."""
    opts = _options("load_labeled_folder", size, channels, max_pixels, progress=progress,
                    include_hidden=include_hidden, follow_symlinks=follow_symlinks, max_side=max_side,
                    max_bytes=max_bytes, workers=workers)
    p = _existing(path, "load_labeled_folder")
    if not p.is_dir():
        raise DataError(f"{p}: a labeled folder must be a directory of class subfolders")
    return conform(read_labeled_folder(p, opts), opts.size, opts.channels, max_bytes=opts.max_bytes)


def load_dataset(spec: str | Path, root: str | Path | None = None) -> Splits:
    """A built-in name (``digits``, ``fashion-mnist``; ``root`` overrides where fashion-mnist's
    IDX files are) or a path to a dataset with splits: a folder with ``train/`` + ``test/`` (or
    ``labeled/`` [+ ``test/``, ``unlabeled/``]) class subfolders, a CIFAR-10/100 directory, an SVHN
    directory, an STL-10 directory, an MNIST-style IDX directory, or an ``.npz`` with
    ``x_train``/``y_train``/``x_test``/``y_test``. All splits share one (H, W, C)."""
    if isinstance(spec, str) and spec in BUILTINS:
        return BUILTINS.get(spec)(root)
    if not isinstance(spec, (str, Path)) or str(spec) == "":
        raise invalid_parameter("spec", "load_dataset", "a built-in dataset name or a path", spec)
    p = Path(spec).expanduser()
    if not p.exists():
        raise DataError(
            f"{p} does not exist (and '{spec}' is not a built-in dataset: {', '.join(BUILTINS)})"
        )
    names = sorted(READERS, key=lambda n: n == "folder")  # the generic folder reader goes last
    for name in names:
        reader = READERS.get(name)
        if reader.sniff_splits is not None and reader.sniff_splits(p):
            # datasets for training keep their native size (no working-size cap); the budget applies
            splits = reader.read_splits(p, ReadOptions(max_side=None))
            return splits if splits.name else replace(splits, name=p.name)
    raise UnsupportedFormatError(
        f"{p}: not a dataset with splits. Built-ins: {', '.join(BUILTINS)}. Supported: {supported_formats()}. "
        "For a folder of class subfolders alone use --labeled DIR (load_labeled_folder)."
    )


def _dataset_hint(p: Path) -> str:
    for name in READERS:
        reader = READERS.get(name)
        if name != "folder" and reader.sniff_splits is not None and reader.sniff_splits(p):
            return f". It looks like a dataset directory ({name}): load it with load_dataset / --dataset"
    return ""


def _unsupported(p: Path) -> str:
    if not p.is_dir() and not is_regular(p):
        try:
            kind = file_kind(p.stat().st_mode)
        except OSError as exc:
            kind = f"unreadable ({exc.strerror})"
        return f"{p} is {kind}, not a file or directory of images. Supported: {supported_formats()}"
    start = head(p, 12)
    if start.startswith(_IMAGE_MAGIC) or (start[:4] == b"RIFF" and start[8:12] == b"WEBP"):
        return f"{p} is a single image; pass the folder that holds it. Supported: {supported_formats()}"
    return f"{p}: unknown format. Supported: {supported_formats()}"
