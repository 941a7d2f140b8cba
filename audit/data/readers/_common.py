"""What every reader shares: read options, the memory budget, safe file access, the dtype rule
for array formats, and the one place where an ImageSet is brought to a size and channel count.

Resizing goes through :func:`audit.data.readers.resolution.fit` (area/box or bilinear: linear
maps of the pixels), so an interpolation chain ``x_a = (1-a)·x' + a·x*`` stays (up to uint8
rounding) a chain after it, and the colinearity scan (paper 5.2) still sees it.

**Memory budget** (``max_bytes``, per run, not per image): before a reader allocates pixels it
computes, from headers only, what the result will hold: ``N × H × W × C`` bytes at the working
size plus :data:`SCAN_BYTES_PER_IMAGE` for the state a scan keeps per image (projection, neighbour
lists, scores), plus any temporary copy the format needs (a float array converted to uint8, a
decompressed member). Over the budget, the read stops before allocating with one
:class:`~audit.errors.DataError` line that names the budget and how to raise it. The default,
2 GiB, keeps ``audit scan`` under 4 GB peak RSS on every input of the hostile corpus
(``tests/hostile``; worst cases in ``docs/benchmarks.md``). A read-only memory map of an
``.npy`` is not counted: its pages stay in the kernel's page cache, not in the process.

**Files are opened safely**: ``O_RDONLY | O_NONBLOCK`` and an ``fstat`` check before any read,
so a FIFO, device or socket (given as the pool path itself, or swapped in during the scan) is
refused instead of blocking or streaming forever; sizes are checked before reading.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from audit.data.imageset import ImageSet
from audit.data.readers.resolution import DEFAULT_MAX_SIDE, choose_size, fit_array, majority_size  # noqa: F401
from audit.errors import DataError, invalid_parameter

DEFAULT_MAX_PIXELS = 40_000_000  # per image; well above any real photo, well below a bomb's 10^10
DEFAULT_MAX_BYTES = 2 << 30  # decoded bytes per run; see the module docstring
SCAN_BYTES_PER_IMAGE = 1024  # a scan's per-image state: 64 float32 dims, 16 neighbours × 12 B, scores
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ReadOptions:
    """What a caller may ask of any reader (validated in ``__post_init__``)."""

    size: tuple[int, int] | None = None  # (H, W) every image is resized to; None: see max_side
    channels: int | None = None  # 1 or 3; None: 1 if every image is gray, else 3
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse any single image that decodes to more H·W than this
    progress: Progress | None = None  # called as progress(done, total) while decoding folders
    include_hidden: bool = False  # folders only: read names starting with '.' too
    # folders only: follow directory symlinks (each real directory once) and read symlinks whose
    # target lies outside the root, as a loader using os.walk(followlinks=True) would
    follow_symlinks: bool = False
    max_side: int | None = DEFAULT_MAX_SIDE  # working size: majority size, longer side capped here
    max_bytes: int = DEFAULT_MAX_BYTES  # decoded-memory budget of the whole read (module docstring)
    workers: int | None = None  # folder decode processes; None: one per CPU, 0: in this process

    def __post_init__(self) -> None:
        check_options("ReadOptions", self.size, self.channels, self.max_pixels)
        if self.max_side is not None and not _positive_int(self.max_side):
            raise invalid_parameter("max_side", "ReadOptions", "None or a positive int", self.max_side)
        if not _positive_int(self.max_bytes):
            raise invalid_parameter("max_bytes", "ReadOptions", "a positive int (bytes)", self.max_bytes)
        if self.workers is not None and not (_positive_int(self.workers) or self.workers == 0):
            raise invalid_parameter("workers", "ReadOptions", "None or an int >= 0", self.workers)


def _positive_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0


def check_options(owner: str, size, channels, max_pixels) -> None:
    """Boundary validation for the options every ``load_*`` function takes."""
    if size is not None:
        ok = (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size)
        )
        if not ok:
            raise invalid_parameter("size", owner, "None or a pair of positive ints (H, W)", size)
    if channels is not None and channels not in (1, 3):
        raise invalid_parameter("channels", owner, "None, 1 or 3", channels)
    if not isinstance(max_pixels, (int, np.integer)) or isinstance(max_pixels, bool) or max_pixels <= 0:
        raise invalid_parameter("max_pixels", owner, "a positive int", max_pixels)


def index_ids(n: int, prefix: str = "") -> tuple[str, ...]:
    """``00000``, ``00001``, ... (at least 5 digits, more when n needs them), sortable as strings."""
    width = max(5, len(str(max(n - 1, 0))))
    return tuple(f"{prefix}{i:0{width}d}" for i in range(n))


def to_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    """uint8 from an array format's pixels.

    Rule: uint8 as is; integers must lie in [0, 255]; floats must be finite and either all in
    [0, 1] (scaled by 255) or all in [0, 255] (kept), then rounded half to even. An array whose
    maximum is <= 1 is read as [0, 1]: a [0, 255] image that dark is not a real image.
    Converted in slices along the first axis, so the temporary copies stay small.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.size == 0:
        return arr.astype(np.uint8)
    kind = "int" if np.issubdtype(arr.dtype, np.integer) else "float" if np.issubdtype(arr.dtype, np.floating) else None
    if kind is None:
        raise DataError(f"{where}: pixels of dtype {arr.dtype} are not supported (uint8, integers or floats)")
    step = _slice_rows(arr)
    lo = hi = None
    for s in range(0, len(arr), step):
        part = arr[s : s + step]
        if kind == "float" and not np.isfinite(part).all():
            raise DataError(f"{where}: float pixels contain NaN or infinity")
        plo, phi = part.min(), part.max()
        lo = plo if lo is None else min(lo, plo)
        hi = phi if hi is None else max(hi, phi)
    if kind == "int":
        if int(lo) < 0 or int(hi) > 255:
            raise DataError(f"{where}: integer pixels must lie in [0, 255]; found [{int(lo)}, {int(hi)}]")
        return arr.astype(np.uint8)
    lo, hi = float(lo), float(hi)
    if lo < 0 or hi > 255.0:
        raise DataError(f"{where}: float pixels must lie in [0, 1] or [0, 255]; found [{lo:g}, {hi:g}]")
    scale = 255.0 if hi <= 1.0 else 1.0
    out = np.empty(arr.shape, np.uint8)
    for s in range(0, len(arr), step):
        out[s : s + step] = np.rint(np.asarray(arr[s : s + step], dtype=np.float64) * scale)
    return out


def _slice_rows(arr: np.ndarray) -> int:
    """Rows of ``arr`` per ~32 MB float64 slice (at least 1)."""
    per_row = max(1, int(np.prod(arr.shape[1:], dtype=np.int64)) * 8)
    return max(1, (32 << 20) // per_row)


def resize_one(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 H×W×C -> uint8 size[0]×size[1]×C by the working-resolution map (linear)."""
    return fit_array(image, size)


def gray_to_rgb(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(images, 3, axis=3))


def rgb_to_gray(images: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, the weights PIL's ``convert('L')`` uses, rounded."""
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.rint(images.astype(np.float32) @ w).clip(0, 255).astype(np.uint8)[..., None]


def conform(s: ImageSet, size: tuple[int, int] | None, channels: int | None,
            max_side: int | None = None, max_bytes: int | None = None) -> ImageSet:
    """``s`` with every image at ``size`` (H, W) (or, without ``size``, at its size capped to
    ``max_side`` on the longer side, see :mod:`~audit.data.readers.resolution`) and ``channels``;
    a note and the summary record each change. The result is budget-checked before allocation."""
    images, notes = s.images, list(s.notes)
    summary = dict(s.summary)
    native = tuple(int(v) for v in images.shape[1:3])
    if size is None and max_side is not None and len(images):
        size, _ = choose_size([native], max_side)
    target = native if size is None else (int(size[0]), int(size[1]))
    out_c = images.shape[3] if channels is None else channels
    change = target != native or out_c != images.shape[3]
    if change and max_bytes is not None:
        check_budget(len(images), target[0] * target[1] * out_c, max_bytes, str(s.root or "images"))
    if target != native:
        out = np.empty((len(images), *target, images.shape[3]), np.uint8)
        for i in range(len(images)):
            out[i] = resize_one(np.asarray(images[i]), target)
        images = out
        notes.append(f"resized {len(images)} of {len(images)} images to {target[0]}×{target[1]}")
        summary["resized"] = {"count": len(images), "from": _hw(native), "to": _hw(target)}
    if out_c != images.shape[3]:
        if out_c == 3:
            images = gray_to_rgb(images)
            notes.append("replicated 1 gray channel to 3")
        else:
            images = rgb_to_gray(images)
            notes.append("converted colour to gray (ITU-R 601-2 luma)")
    if images is s.images:
        return s
    summary.update(working_size=_hw(images.shape[1:3]), channels=int(images.shape[3]))
    return replace(s, images=np.ascontiguousarray(images), notes=tuple(notes), summary=summary)


def _hw(hw) -> str:
    return f"{int(hw[0])}x{int(hw[1])}"


def harmonise(sets: list[ImageSet | None]) -> list[ImageSet | None]:
    """Splits of one dataset share one shape: the first set's (H, W), and 3 channels if any set
    has colour."""
    present = [s for s in sets if s is not None]
    if not present:
        return sets
    size = present[0].shape[:2]
    channels = max(s.shape[2] for s in present)
    return [None if s is None else conform(s, size, channels) for s in sets]


# --- the memory budget -------------------------------------------------------------------


def fmt_bytes(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def budget_error(need: int, max_bytes: int, where: str, what: str) -> DataError:
    return DataError(
        f"{where}: {what} needs {fmt_bytes(need)} of memory, over the {fmt_bytes(max_bytes)} budget; "
        f"raise it with --max-memory (max_bytes=) or scan at a smaller --size"
    )


def check_budget(n_images: int, bytes_per_image: int, max_bytes: int, where: str, extra: int = 0,
                 what: str | None = None) -> None:
    """Refuse, before allocating, a read that would hold more than ``max_bytes``: ``n_images``
    images of ``bytes_per_image`` pixels each, the scan's per-image state, and ``extra``
    temporary bytes. Plain Python ints: a header's dimensions never overflow here."""
    need = int(n_images) * (int(bytes_per_image) + SCAN_BYTES_PER_IMAGE) + int(extra)
    if need > max_bytes:
        what = what or f"{int(n_images):,} images of {int(bytes_per_image):,} bytes"
        raise budget_error(need, max_bytes, where, what)


# --- safe file access ----------------------------------------------------------------------

_REASONS = {
    errno.ENOENT: "vanished during read",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENAMETOOLONG: "path too long for the operating system (ENAMETOOLONG)",
    errno.ENOTDIR: "a parent is not a directory any more (changed during the scan)",
    errno.ELOOP: "symlink loop (ELOOP)",
    errno.EIO: "I/O error",
    errno.ENXIO: "not a regular file (no such device)",
}


def os_reason(exc: OSError) -> str:
    """One short, stable reason for an OS error met while walking or reading an entry."""
    return _REASONS.get(exc.errno, f"cannot read ({exc.strerror or type(exc).__name__})")


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """'a FIFO', 'a socket', ... for a non-regular ``st_mode``."""
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


class NotRegularFile(OSError):
    """Raised by :func:`open_regular` for a FIFO, device, socket or directory."""


def open_regular(path, follow: bool = True) -> tuple[int, os.stat_result]:
    """An fd open read-only on a *regular* file, and its stat. ``O_NONBLOCK`` makes opening a
    FIFO return at once (it is then refused by the fstat check), so nothing here can block;
    ``follow=False`` adds ``O_NOFOLLOW`` (an entry swapped for a symlink fails with ELOOP)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"not a regular file ({file_kind(st.st_mode)})")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular(path, limit: int, where: str | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; DataError otherwise (FIFO, device,
    a sparse 15 TiB file, an unreadable path), never a block or an out-of-memory."""
    where = where or str(path)
    try:
        fd, st = open_regular(path)
    except NotRegularFile as exc:
        raise DataError(f"{where}: {exc.strerror}") from None
    except OSError as exc:
        raise DataError(f"{where}: {os_reason(exc)}") from None
    try:
        if st.st_size > limit:
            raise DataError(f"{where}: a file of {fmt_bytes(st.st_size)} is over the {fmt_bytes(limit)} this format "
                            "may take (corrupt, hostile, or raise --max-memory)")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise DataError(f"{where}: {os_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise DataError(f"{where}: the file grew past {fmt_bytes(limit)} while being read")
    return data


def is_regular(path) -> bool:
    """True for a regular file (following symlinks); never opens, so never blocks."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def head(path, n: int) -> bytes:
    """The first ``n`` bytes of a regular file (fewer if it is shorter; empty if it is not a
    regular file or cannot be read): the sniffers use it, so it must never block on a FIFO."""
    try:
        fd, _ = open_regular(path)
    except (OSError, ValueError):
        return b""
    try:
        return os.read(fd, n)
    except OSError:
        return b""
    finally:
        os.close(fd)
