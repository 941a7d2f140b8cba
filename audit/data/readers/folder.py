"""A folder of images, read recursively: PNG, JPEG, BMP, WebP, GIF (first frame).

Policies (each one a choice; the reason is given because a reviewer will ask):

- **Format by content.** Every regular file is opened with PIL restricted to the five formats
  above, whatever its extension: a text file named ``x.png`` is ``not an image``, a PNG named
  ``x.jpg`` is read. Restricting PIL's plugins also keeps exotic decoders away from hostile files.
- **Unreadable files are listed, never fatal**: ``empty file``, ``not an image``, ``truncated``,
  ``too large``, ``unsupported mode …``, ``vanished during read``, ``not a regular file``,
  ``broken symlink``, ``permission denied``, ``corrupt (…)``.
- **Hidden entries** (names starting with '.') are skipped unless ``include_hidden``: they are
  ``.DS_Store``, ``._*`` AppleDouble files, ``.git``, thumbnail caches; a note counts them.
- **Symlinks.** File symlinks are read (a file cannot loop). Directory symlinks are *not*
  followed (as ``find`` and ``os.walk`` do by default): that makes loops impossible and keeps the
  scan inside the root; a note counts them. Pass the link's target as its own root to scan it.
- **Decompression bombs.** The header is read first; an image with more than ``max_pixels``
  pixels is refused as ``too large`` before any pixel is decoded (PIL's own bomb error too).
- **Modes.** ``1``/``L`` and palettes whose colours are all gray are gray; ``RGB``, other
  palettes, ``CMYK`` and ``YCbCr`` (PIL's conversion, no colour management) are colour.
  16-bit and float modes (``I;16``, ``I``, ``F``) are refused as ``unsupported mode``: mapping them
  to 8 bits needs a bit depth the file does not state.
- **Alpha** (``RGBA``, ``LA``, ``PA``, palettes with transparency) is composited over **black**,
  i.e. premultiplied: opaque pixels keep their value, transparent ones become 0, and the result is
  linear in the colour, so blended bridge images stay on their line. A note counts these images.
- **Channels.** 1 channel if every image is gray, else 3 (gray replicated); ``channels`` forces it.
- **Size.** The most common (H, W) wins (ties: larger area); others are resized with PIL's
  bilinear filter (linear, see ``_common``) and a note says how many; ``size`` forces it.
- **Read-only.** Files are opened ``O_RDONLY | O_NONBLOCK`` (a FIFO can never hang the scan);
  nothing in the folder is written.

ids are the POSIX paths relative to the root, sorted by code point, so they are stable.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from audit.data.imageset import ImageSet, Splits, Unreadable
from audit.data.readers._common import ReadOptions, harmonise, majority_size, resize_one, rgb_to_gray
from audit.errors import DataError, EmptyDatasetError

FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "GIF")
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF")  # to tell "truncated" from "not an image" ("BM" is too short to trust)
_CHUNK = 256  # files per pool task: amortises executor overhead over many tiny images
# Threads pay off for larger JPEG/PNG (decoders and file I/O release the GIL); for 28×28 PNGs the
# per-file Python overhead dominates and 1 or 4 threads measure the same (~3 s for 60k files).
_WORKERS = max(2, min(8, (os.cpu_count() or 1) * 2))
_ALPHA = {"RGBA": "RGBA", "RGBa": "RGBA", "LA": "LA", "La": "LA", "PA": "RGBA"}
_COLOUR = {"RGB", "CMYK", "YCbCr"}


@dataclass
class Tree:
    """What a walk found: relative file paths (sorted) and what it skipped or could not use."""

    files: list[str] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def scan_tree(root: Path, include_hidden: bool = False) -> Tree:
    """Every regular file under ``root`` (see the module policies on hidden names and symlinks)."""
    tree, hidden, dir_links = Tree(), 0, []
    stack = [("", str(root))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                entries = list(it)
        except PermissionError:
            tree.unreadable.append(Unreadable(rel_dir or ".", "permission denied (directory)"))
            continue
        except FileNotFoundError:
            tree.unreadable.append(Unreadable(rel_dir or ".", "vanished during read (directory)"))
            continue
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            if e.name.startswith(".") and not include_hidden:
                hidden += 1
                continue
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                tree.unreadable.append(Unreadable(rel, "file name is not valid UTF-8"))
                continue
            try:
                if e.is_symlink():
                    if e.is_dir(follow_symlinks=True):
                        dir_links.append(rel)
                    elif e.is_file(follow_symlinks=True):
                        tree.files.append(rel)
                    elif not os.path.exists(e.path):
                        tree.unreadable.append(Unreadable(rel, "broken symlink"))
                    else:
                        tree.unreadable.append(Unreadable(rel, "not a regular file"))
                elif e.is_dir(follow_symlinks=False):
                    stack.append((rel, e.path))
                elif e.is_file(follow_symlinks=False):
                    tree.files.append(rel)
                else:
                    tree.unreadable.append(Unreadable(rel, "not a regular file"))
            except OSError:
                tree.unreadable.append(Unreadable(rel, "vanished during read"))
    tree.files.sort()
    tree.unreadable.sort(key=lambda u: u.path)
    if hidden:
        tree.notes.append(f"skipped {hidden} hidden entries (names starting with '.')")
    if dir_links:
        tree.notes.append(
            f"did not follow {len(dir_links)} directory symlink(s), e.g. {sorted(dir_links)[0]}"
        )
    return tree


def _read_bytes(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(path)  # any non-regular file; mapped to "not a regular file"
        data = os.read(fd, st.st_size + 1)  # one call for the usual file; +1 sees growth
        if len(data) <= st.st_size:
            return data
        parts = [data]
        while chunk := os.read(fd, 1 << 20):  # it grew while we read: go on to EOF
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _to_array(im: Image.Image) -> tuple[np.ndarray, bool]:
    """uint8 H×W×1 (gray) or H×W×3, and whether alpha was composited. Raises ValueError with the
    Unreadable reason for a mode we refuse."""
    mode = im.mode
    if mode == "P":  # a palette is gray when every colour it uses is: decided on the pixels
        alpha = "transparency" in im.info
        out = np.asarray(im.convert("RGBA" if alpha else "RGB"))
        out = _composite(out) if alpha else out
        return _gray_if_equal(out), alpha
    if mode == "L":  # the hot path: tobytes/frombuffer is cheaper than the array interface
        return np.frombuffer(im.tobytes(), np.uint8).reshape(im.size[1], im.size[0], 1), False
    if mode == "1":
        return np.asarray(im.convert("L"))[:, :, None], False
    if mode in _ALPHA:
        target = _ALPHA[mode]
        return _composite(np.asarray(im if mode == target else im.convert(target))), True
    if mode in _COLOUR:  # a file stored as RGB is colour by declaration, even if R=G=B
        rgb = im if mode == "RGB" else im.convert("RGB")
        return np.frombuffer(rgb.tobytes(), np.uint8).reshape(im.size[1], im.size[0], 3), False
    raise ValueError(f"unsupported mode {mode}")


def _composite(a: np.ndarray) -> np.ndarray:
    """H×W×(C+1) with alpha last -> H×W×C over black: round(c·α/255)."""
    a = a.astype(np.uint16)
    return ((a[:, :, :-1] * a[:, :, -1:] + 127) // 255).astype(np.uint8)


def _gray_if_equal(a: np.ndarray) -> np.ndarray:
    if (a[:, :, 0] == a[:, :, 1]).all() and (a[:, :, 1] == a[:, :, 2]).all():
        return np.ascontiguousarray(a[:, :, :1])
    return a


def _decode(path: str, max_pixels: int) -> tuple[np.ndarray | None, str | None, bool]:
    """(image, None, alpha) or (None, reason, False). Never raises: every failure is a reason."""
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        return None, "vanished during read", False
    except PermissionError:
        return None, "permission denied", False
    except (IsADirectoryError, NotADirectoryError):
        return None, "not a regular file", False
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or exc})", False
    if not data:
        return None, "empty file", False
    try:
        im = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        return None, "too large (PIL decompression-bomb limit)", False
    except UnidentifiedImageError:
        if data.startswith(_MAGIC) and not (data.startswith(b"RIFF") and data[8:12] != b"WEBP"):
            return None, "truncated (header incomplete or corrupt)", False
        return None, "not an image", False
    except Exception as exc:  # a plugin bug on hostile bytes must not end the scan
        return None, _failure(exc), False
    try:
        w, h = im.size
        if w * h > max_pixels:
            return None, f"too large ({w}×{h} pixels; limit {max_pixels})", False
        im.load()
        arr, alpha = _to_array(im)
        return arr, None, alpha
    except ValueError as exc:
        if str(exc).startswith("unsupported mode"):
            return None, str(exc), False
        return None, f"corrupt ({exc})", False
    except MemoryError:
        return None, "too large (out of memory while decoding)", False
    except Exception as exc:
        return None, _failure(exc), False
    # no im.close(): the image reads from an in-memory buffer, and closing costs ~10 µs an image


def _failure(exc: Exception) -> str:
    """The reason for a decoder exception: PIL says "truncated" in several spellings."""
    msg = str(exc)
    low = msg.lower()
    if isinstance(exc, EOFError) or "truncat" in low or "broken" in low or "premature end" in low:
        return "truncated"
    return f"corrupt ({type(exc).__name__}: {msg})"


def _decode_chunk(paths: list[str], max_pixels: int) -> list[tuple[np.ndarray | None, str | None, bool]]:
    return [_decode(p, max_pixels) for p in paths]


def decode_files(root: Path, tree: Tree, opts: ReadOptions) -> ImageSet:
    """Decode ``tree.files`` (relative to ``root``) into one ImageSet under the module policies.

    Raises EmptyDatasetError when nothing is readable, with the count and first reasons.
    """
    rels = tree.files
    total = len(rels)
    base = str(root)
    chunks = [[os.path.join(base, r) for r in rels[i : i + _CHUNK]] for i in range(0, total, _CHUNK)]
    if opts.progress is not None:
        opts.progress(0, total)
    results: list[tuple[np.ndarray | None, str | None, bool]] = []
    with warnings.catch_warnings():
        # Our own max_pixels check (before decoding) is the guard; PIL's warning would be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=min(_WORKERS, max(1, len(chunks)))) as pool:
            for part in pool.map(_decode_chunk, chunks, [opts.max_pixels] * len(chunks)):
                results.extend(part)
                if opts.progress is not None:
                    opts.progress(len(results), total)

    ids, arrays, unreadable, n_alpha = [], [], list(tree.unreadable), 0
    for rel, (arr, reason, alpha) in zip(rels, results):
        if arr is None:
            unreadable.append(Unreadable(rel, reason or "unreadable"))
        else:
            ids.append(rel)
            arrays.append(arr)
            n_alpha += alpha
    unreadable.sort(key=lambda u: u.path)
    if not arrays:
        raise EmptyDatasetError(_empty_message(root, total, unreadable))

    notes = list(tree.notes)
    size = tuple(opts.size) if opts.size is not None else majority_size([a.shape[:2] for a in arrays])
    colour = any(a.shape[2] == 3 for a in arrays)
    channels = opts.channels or (3 if colour else 1)
    images = _assemble(arrays, size, channels, notes)
    if n_alpha:
        notes.append(f"composited alpha over black in {n_alpha} image(s)")
    return ImageSet(images=images, ids=tuple(ids), unreadable=tuple(unreadable), root=root, notes=tuple(notes))


def _assemble(arrays: list[np.ndarray], size: tuple[int, int], channels: int, notes: list[str]) -> np.ndarray:
    n = len(arrays)
    h, w = size
    if all(a.shape == (h, w, channels) for a in arrays):  # the common case: one stack, no loop
        return np.stack(arrays)
    out = np.empty((n, h, w, channels), np.uint8)
    resized = replicated = grayed = 0
    for i, a in enumerate(arrays):
        if a.shape[:2] != (h, w):
            a = resize_one(a, (h, w))
            resized += 1
        if a.shape[2] == 3 and channels == 1:
            a = rgb_to_gray(a[None])[0]
            grayed += 1
        elif a.shape[2] == 1 and channels == 3:
            replicated += 1
        out[i] = a  # broadcasting replicates a gray H×W×1 into 3 channels
    if resized:
        notes.append(f"resized {resized} of {n} images to {h}×{w}")
    if replicated:
        notes.append(f"replicated {replicated} gray image(s) to 3 channels")
    if grayed:
        notes.append(f"converted {grayed} colour image(s) to gray (ITU-R 601-2 luma)")
    return out


def _empty_message(root: Path, total: int, unreadable: list[Unreadable]) -> str:
    if total == 0 and not unreadable:
        return f"{root}: no files found (hidden names are skipped)"
    first = "; ".join(f"{u.path}: {u.reason}" for u in unreadable[:3])
    return f"{root}: no readable image among {len(unreadable)} unreadable file(s) (first: {first})"


def read_folder(path: str | Path, opts: ReadOptions = ReadOptions()) -> ImageSet:
    """uint8 N×H×W×C from every readable image under ``path`` (unlabeled), ids relative paths."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    return decode_files(root, scan_tree(root, opts.include_hidden), opts)


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
    tree = scan_tree(root, opts.include_hidden)
    found = class_order(
        e.name for e in os.scandir(root)
        if e.is_dir(follow_symlinks=False) and (opts.include_hidden or not e.name.startswith("."))
    )
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
    return ImageSet(s.images, s.ids, labels, s.unreadable, root, tuple(class_names), notes)


def sniff_split_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "train").is_dir() or (path / "labeled").is_dir())


def read_split_folder(path: Path, opts: ReadOptions = ReadOptions()) -> Splits:
    """``train/`` (or ``labeled/``, as ``redteam inject`` writes) and optional ``test/`` of class
    subfolders, plus an optional ``unlabeled/`` pool; test labels follow train's class list."""
    labeled = path / "train" if (path / "train").is_dir() else path / "labeled"
    train = read_labeled_folder(labeled, opts)
    test = read_labeled_folder(path / "test", opts, train.class_names) if (path / "test").is_dir() else None
    pool = read_folder(path / "unlabeled", opts) if (path / "unlabeled").is_dir() else None
    train, test, pool = harmonise([train, test, pool])
    return Splits(train=train, test=test, unlabeled=pool, name=path.name)
