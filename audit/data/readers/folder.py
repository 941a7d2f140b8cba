"""A folder of images, read recursively, each image decoded straight to the pool's working size.

The steps, each in its own module with its policies and their reasons:

1. **Walk** (:mod:`~audit.data.readers.walk`): regular files, what is skipped on purpose
   (hidden names, symlinks to directories or out of the root) and what cannot be read.
2. **Working size** (:mod:`~audit.data.readers.resolution`): chosen from the headers of a seeded
   sample of the files (the majority size, its longer side capped at ``max_side``), unless
   ``size`` is given. Checked against the memory budget (``max_bytes``) *before* any pixel is
   decoded: the pool will hold ``N × H × W × C`` bytes, whatever the files' resolution.
3. **Decode** (:mod:`~audit.data.readers.decode`, in worker processes, see
   :mod:`~audit.data.readers.parallel`): each file straight to a thumbnail at the working size
   (JPEG DCT scaling, box/area or bilinear resize: linear maps), alpha over gray, modes to L or
   RGB; every failure is an unreadable entry with a reason, never the end of the scan.
4. **Assemble**: 1 channel if every image is gray, else 3 (gray replicated); ``channels`` forces
   it. ``ImageSet.notes`` says in words, and ``ImageSet.summary`` in JSON, what was met (size and
   mode mix) and done (resized, composited, first frames, ...), to how many images.

Nothing in the folder is written. ids are the POSIX paths relative to the root, sorted.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from audit.data.imageset import ImageSet, Splits, Unreadable
from audit.data.readers import decode as D
from audit.data.readers._common import ReadOptions, check_budget, harmonise, rgb_to_gray
from audit.data.readers.parallel import decode_all, worker_count
from audit.data.readers.resolution import choose_size, sample
from audit.data.readers.walk import Tree, scan_tree
from audit.errors import DataError, EmptyDatasetError

__all__ = ["Tree", "scan_tree", "decode_files", "read_folder", "read_labeled_folder", "read_split_folder",
           "sniff_split_folder", "class_order"]


def working_size(paths: list[str], follow: list[bool], opts: ReadOptions) -> tuple[tuple[int, int], dict]:
    """(H, W) to decode every image at, and how it was chosen (for the summary)."""
    if opts.size is not None:
        return tuple(opts.size), {"policy": "explicit size"}
    picked = sample(list(range(len(paths))))
    sizes = [s for s in (D.header_size(paths[i], follow[i], opts.max_pixels) for i in picked) if s]
    if not sizes and len(picked) < len(paths):  # a sample of junk: look at every header
        sizes = [s for s in (D.header_size(p, f, opts.max_pixels) for p, f in zip(paths, follow)) if s]
    if not sizes:
        return (1, 1), {"policy": "no readable header"}
    size, major = choose_size(sizes, opts.max_side)
    how = {"policy": "majority size" if size == major else f"majority size scaled to longer side {opts.max_side}",
           "majority_size": _hw(major), "headers_sampled": len(picked), "max_side": opts.max_side}
    return size, how


def decode_files(root: Path, tree: Tree, opts: ReadOptions) -> ImageSet:
    """Decode ``tree.files`` (relative to ``root``) into one ImageSet under the module policies.

    Raises EmptyDatasetError when nothing is readable (with the count and first reasons), and
    DataError before decoding when the pool at its working size is over ``opts.max_bytes``."""
    rels, base = tree.files, str(root)
    paths = [os.path.join(base, r) for r in rels]
    follow = [r in tree.links for r in rels]
    if not rels:
        raise EmptyDatasetError(_empty_message(root, 0, tree.unreadable, tree.skipped))
    size, how = working_size(paths, follow, opts)
    h, w = size
    check_budget(len(paths), h * w * (opts.channels or 3), opts.max_bytes, str(root),
                 what=f"{len(paths):,} images at the working size {h}×{w}×{opts.channels or 3}")
    workers = worker_count(opts.workers, len(paths))
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if opts.progress is not None:
            opts.progress(done[0], len(paths))

    if opts.progress is not None:
        opts.progress(0, len(paths))
    stack, stats = _Stack(len(paths), size, opts.channels), _Stats()
    ids, unreadable, i, colour = [], list(tree.unreadable), 0, 0
    t0 = time.perf_counter()
    for pixels, channels, metas in decode_all(paths, follow, size, opts.max_pixels, workers, tick):
        ok = [j for j, c in enumerate(channels) if c]
        unreadable += [Unreadable(rels[i + j], metas[j][0] or "unreadable") for j, c in enumerate(channels) if not c]
        ids += [rels[i + j] for j in ok]
        stack.add_many(pixels, [channels[j] for j in ok])
        colour += sum(1 for j in ok if channels[j] == 3)
        stats.add_many([metas[j] for j in ok], size)
        i += len(channels)
    unreadable.sort(key=lambda u: u.path)
    if not ids:
        raise EmptyDatasetError(_empty_message(root, len(rels), unreadable, tree.skipped))
    images = stack.result()
    how["decode"] = {"processes": workers, "seconds": round(time.perf_counter() - t0, 3)}
    notes = list(tree.notes) + stats.notes(size, how, stack)
    summary = stats.summary(len(rels), len(ids), len(unreadable), len(tree.skipped), size, images.shape[3], how,
                            tree.non_utf8)
    summary["native_colour"] = {"gray": len(ids) - colour, "colour": colour}
    return ImageSet(images=images, ids=tuple(ids), unreadable=tuple(unreadable), root=root, notes=tuple(notes),
                    skipped=tuple(tree.skipped), summary=summary)


class _Stack:
    """The pool's pixels, filled in file order without a second copy: gray until the first
    colour image arrives (then widened once to 3 channels), or the forced channel count."""

    def __init__(self, n: int, size: tuple[int, int], channels: int | None) -> None:
        self.forced, self.k, self.replicated, self.grayed = channels, 0, 0, 0
        self.out = np.empty((n, *size, channels or 1), np.uint8)  # pages are touched only as filled
        self.gray_before_colour = 0

    def add_many(self, pixels: np.ndarray, channels: list[int]) -> None:
        """Images raveled one after another in ``pixels``, with their channel counts."""
        h, w = self.out.shape[1:3]
        if channels and all(c == self.out.shape[3] for c in channels):  # the usual case: one copy
            n = len(channels)
            self.out[self.k : self.k + n] = pixels.reshape(n, h, w, channels[0])
            self.k += n
            return
        off = 0
        for c in channels:
            self.add(pixels[off : off + h * w * c].reshape(h, w, c))
            off += h * w * c

    def add(self, a: np.ndarray) -> None:
        c = self.out.shape[3]
        if a.shape[2] == 3 and c == 1:
            if self.forced == 1:
                a = rgb_to_gray(a[None])[0]
                self.grayed += 1
            else:
                wide = np.empty(self.out.shape[:3] + (3,), np.uint8)
                wide[: self.k] = self.out[: self.k]
                self.out, self.gray_before_colour = wide, self.k
        elif a.shape[2] == 1 and c == 3:
            self.replicated += 1
        self.out[self.k] = a  # broadcasting replicates a gray H×W×1 into 3 channels
        self.k += 1

    def result(self) -> np.ndarray:
        return self.out[: self.k]


class _Stats:
    """Counts of what the decode met and did, for ImageSet.notes and ImageSet.summary."""

    FLAGS = {"resized": D.RESIZED, "upscaled": D.UPSCALED, "jpeg_dct_scaled": D.DRAFT, "alpha_composited": D.ALPHA,
             "animated_first_frame": D.ANIMATED, "exif_orientation_not_applied": D.EXIF_ROTATED,
             "sixteen_bit_scaled": D.SIXTEEN_BIT, "cmyk_converted": D.CMYK, "gray_palette": D.PALETTE_GRAY,
             "fully_transparent": D.TRANSPARENT}

    def __init__(self) -> None:
        self.sizes: Counter = Counter()
        self.modes: Counter = Counter()
        self.counts = {k: 0 for k in self.FLAGS}
        self.aspect = 0

    def add_many(self, metas: list[tuple], size: tuple[int, int]) -> None:
        """``metas``: (reason, flags, native (h, w), mode) of decoded images."""
        for (native, mode, flags), k in Counter((m[2], m[3], m[1]) for m in metas).items():
            self.sizes[native] += k
            self.modes[mode] += k
            for name, bit in self.FLAGS.items():
                if flags & bit:
                    self.counts[name] += k
            ratio = (native[1] / native[0]) / (size[1] / size[0])
            self.aspect += k if (ratio > 2 or ratio < 0.5) else 0

    def summary(self, files, images, unreadable, skipped, size, channels, how, non_utf8) -> dict:
        top = [{"size": _hw(s), "count": c} for s, c in self.sizes.most_common(10)]
        return {"format": "folder", "files": files, "images": images, "unreadable": unreadable, "skipped": skipped,
                "working_size": _hw(size), "channels": int(channels), **how,
                "native_sizes": top, "distinct_sizes": len(self.sizes),
                "modes": dict(self.modes.most_common()), **self.counts, "aspect_changed_over_2x": self.aspect,
                "alpha_background": D.BACKGROUND, "non_utf8_names": non_utf8}

    def notes(self, size: tuple[int, int], how: dict, stack: _Stack) -> list[str]:
        n = sum(self.sizes.values())
        h, w = size
        c = self.counts
        out = []
        if how["policy"] == "explicit size":
            out.append(f"working size {h}×{w} (given)")
        elif how["policy"] != "majority size":
            out.append(f"working size {h}×{w}: the most common size {how['majority_size'].replace('x', '×')} scaled so "
                       f"its longer side is {how['max_side']} (a linear map, so bridges stay lines)")
        if len(self.sizes) > 1 or len(self.modes) > 1:
            sizes = ", ".join(f"{a}×{b}: {k}" for (a, b), k in self.sizes.most_common(3))
            modes = ", ".join(f"{m} {k}" for m, k in self.modes.most_common())
            out.append(f"native sizes: {len(self.sizes)} distinct (most common {sizes}); modes: {modes}")
        if c["resized"]:
            out.append(f"resized {c['resized']} of {n} images to {h}×{w}")
        if c["upscaled"]:
            out.append(f"enlarged {c['upscaled']} image(s) smaller than the working size (bilinear)")
        if self.aspect:
            out.append(f"{self.aspect} image(s) stretched to the working aspect (their own differs by more than 2×)")
        if c["alpha_composited"]:
            out.append(f"composited alpha over gray {D.BACKGROUND} in {c['alpha_composited']} image(s); a loader that "
                       "drops alpha sees the colour stored under transparent pixels instead")
        if c["fully_transparent"]:
            out.append(f"{c['fully_transparent']} image(s) are transparent everywhere: blank whatever the background "
                       "(they look identical to each other)")
        if c["animated_first_frame"]:
            out.append(f"{c['animated_first_frame']} animated or multi-page image(s): the first frame is used")
        if c["exif_orientation_not_applied"]:
            out.append(f"{c['exif_orientation_not_applied']} image(s) carry an EXIF orientation; not applied "
                       "(PIL-based loaders train on the stored pixels)")
        if c["sixteen_bit_scaled"]:
            out.append(f"{c['sixteen_bit_scaled']} 16-bit gray image(s) scaled to 8 bits (v/257)")
        if c["cmyk_converted"]:
            out.append(f"{c['cmyk_converted']} CMYK image(s) converted to RGB by PIL (no colour management)")
        if stack.gray_before_colour:
            out.append(f"replicated {stack.gray_before_colour + stack.replicated} gray image(s) to 3 channels")
        elif stack.replicated:
            out.append(f"replicated {stack.replicated} gray image(s) to 3 channels")
        if stack.grayed:
            out.append(f"converted {stack.grayed} colour image(s) to gray (ITU-R 601-2 luma)")
        return out


def _hw(hw) -> str:
    return f"{int(hw[0])}x{int(hw[1])}"


def _empty_message(root: Path, total: int, unreadable: list[Unreadable], skipped: list[Unreadable]) -> str:
    hint = (f" ({len(skipped)} entries skipped on purpose: hidden names or symlinks; --include-hidden / "
            "--follow-symlinks read them)") if skipped else ""
    if total == 0 and not unreadable:
        return f"{root}: no files found{hint}"
    first = "; ".join(f"{u.path}: {u.reason}" for u in unreadable[:3])
    return f"{root}: no readable image among {len(unreadable)} unreadable file(s) (first: {first}){hint}"


def read_folder(path: str | Path, opts: ReadOptions = ReadOptions()) -> ImageSet:
    """uint8 N×H×W×C from every readable image under ``path`` (unlabeled), ids relative paths."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    return decode_files(root, scan_tree(root, opts.include_hidden, opts.follow_symlinks), opts)


def class_order(names) -> list[str]:
    """Sorted class names; numerically when every name is an integer, so folders ``0``..``99``
    (as ``redteam inject`` writes them) keep their numbers as labels (``10`` after ``9``)."""
    names = list(names)
    if names and all(n.isascii() and n.isdigit() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def read_labeled_folder(
    path: str | Path, opts: ReadOptions = ReadOptions(), class_names: tuple[str, ...] | None = None
) -> ImageSet:
    """Class subfolders give labels: label i is the i-th subfolder in :func:`class_order` (or the
    index in ``class_names`` when given, e.g. a test split that must agree with its train split).
    Files directly under ``path`` are listed as unreadable (``not inside a class folder``)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    tree = scan_tree(root, opts.include_hidden, opts.follow_symlinks)
    found = class_order({f.split("/", 1)[0] for f in tree.files if "/" in f} | _class_dirs(root, opts))
    if class_names is None:
        class_names = tuple(found)
    else:
        extra = sorted(set(found) - set(class_names))
        if extra:
            raise DataError(f"{root}: class folder(s) {', '.join(extra)} are not among {', '.join(class_names)}")
    if not class_names:
        raise EmptyDatasetError(f"{root}: no class subfolders (expected one folder per class)")
    top = [f for f in tree.files if "/" not in f]
    tree.unreadable.extend(Unreadable(f, "not inside a class folder") for f in top)
    tree.files = [f for f in tree.files if "/" in f]
    s = decode_files(root, tree, opts)
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[i.split("/", 1)[0]] for i in s.ids], dtype=np.int64)
    empty = [c for c in found if c not in {i.split("/", 1)[0] for i in s.ids}]
    notes = s.notes + ((f"class folder(s) without a readable image: {', '.join(empty)}",) if empty else ())
    return ImageSet(s.images, s.ids, labels, s.unreadable, root, tuple(class_names), notes, skipped=s.skipped,
                    summary=dict(s.summary, classes=len(class_names)))


def _class_dirs(root: Path, opts: ReadOptions) -> set[str]:
    """Class folders that hold no file (so they still get their label index)."""
    try:
        with os.scandir(root) as it:
            return {e.name for e in it if e.is_dir(follow_symlinks=opts.follow_symlinks)
                    and (opts.include_hidden or not e.name.startswith("."))}
    except OSError:
        return set()


def sniff_split_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "train").is_dir() or (path / "labeled").is_dir())


def read_split_folder(path: Path, opts: ReadOptions = ReadOptions()) -> Splits:
    """``train/`` (or ``labeled/``, as ``redteam inject`` writes) and optional ``test/`` of class
    subfolders, plus an optional ``unlabeled/`` pool; test labels follow train's class list."""
    labeled = path / "train" if (path / "train").is_dir() else path / "labeled"
    train = read_labeled_folder(labeled, opts)
    same = replace(opts, size=tuple(train.shape[:2]))  # every split through the same maps
    test = read_labeled_folder(path / "test", same, train.class_names) if (path / "test").is_dir() else None
    pool = read_folder(path / "unlabeled", same) if (path / "unlabeled").is_dir() else None
    train, test, pool = harmonise([train, test, pool])
    return Splits(train=train, test=test, unlabeled=pool, name=path.name)
