"""Pools in object storage (``s3://``, ``gs://``, ``az://``, ... any fsspec protocol), listed and
read object by object: nothing is copied to local disk, and no object is held whole when it is
large (PIL reads a large one through a seekable fsspec file, range request by range request).

The local reader's hostile-input rules hold here, each for the same reason
(:mod:`audit.data.readers.walk`, :mod:`audit.data.readers.decode`):

- **Hidden names** (any path component starting with '.') are skipped and listed, unless
  ``include_hidden``; a hidden "folder" (prefix) is listed once.
- **Sizes before bytes**: the listing gives every object's size; an empty object is ``empty
  file``, one larger than :func:`~audit.data.readers.decode.file_limit` is ``too large`` before
  a byte of it is read. The decoded-memory budget is checked from headers before decoding.
- **Decoding** goes through the same code as a local file (formats by content, decompression
  bombs refused from the header, alpha, modes): :func:`audit.data.readers.decode.open_stream`.
- **Every failure is an entry**: an object that vanishes, is refused (permission) or cannot be
  fetched is unreadable with a reason; the listing itself failing is one clear DataError.

``file://`` URLs are plain local paths: they go through the local reader itself (symlink and
special-file rules included). ids are the object keys relative to the pool's prefix, sorted.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.data.imageset import Unreadable
from audit.data.readers import decode as D
from audit.data.readers._common import fmt_bytes
from audit.errors import DataError

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")
_SMALL = 1 << 20  # objects up to this size are fetched in one request; larger ones are streamed
FETCH_BYTES = 64 << 20  # small objects fetched together (concurrently), then decoded, then released
FETCH_OBJECTS = 1024
HIDDEN = "hidden name (starts with '.'; read with --include-hidden)"


def is_url(path: Any) -> bool:
    """True for ``scheme://...`` (a Windows drive ``C:\\`` is not a URL)."""
    return isinstance(path, str) and _URL.match(path) is not None


def local_path(url: str) -> str | None:
    """The local path of a ``file://`` URL, None for any other scheme."""
    if url.startswith("file://"):
        return url[len("file://") :] or "/"
    return None


def filesystem(url: str) -> tuple[Any, str]:
    """``(fsspec filesystem, path inside it)`` for a URL; DataError when the protocol's package is
    missing (with the extra that installs it) or the URL is malformed."""
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with torch
        raise DataError(f"{url}: reading URLs needs fsspec (pip install 'ssl-poison-audit[s3]')") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise DataError(f"{url}: this protocol needs a package that is not installed ({one_line(exc)}); for "
                        "s3:// install 'ssl-poison-audit[s3]', for gs:// gcsfs") from None
    except (ValueError, OSError) as exc:
        raise DataError(f"{url}: cannot open this URL ({one_line(exc)})") from None
    return fs, path.rstrip("/")


@dataclass
class Listing:
    """What a listing found: relative keys (sorted) with their sizes, and what it skipped."""

    files: list[str] = field(default_factory=list)
    sizes: list[int | None] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    skipped: list[Unreadable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def list_pool(fs: Any, root: str, url: str, include_hidden: bool = False) -> Listing:
    """Every object under ``root`` (a prefix) under the module's policies."""
    try:
        found = fs.find(root, detail=True, withdirs=False)
    except FileNotFoundError:
        raise DataError(f"{url}: no such bucket or prefix") from None
    except Exception as exc:  # credentials, network, a bucket that refuses listing
        raise DataError(f"{url}: cannot list it ({one_line(exc)})") from None
    out = Listing()
    hidden_seen: set[str] = set()
    prefix = root + "/" if root else ""
    for path in sorted(found):
        info = found[path]
        if not path.startswith(prefix) or info.get("type", "file") != "file":
            continue
        rel = path[len(prefix) :]
        parts = rel.split("/")
        hid = next((i for i, p in enumerate(parts) if p.startswith(".")), None)
        if hid is not None and not include_hidden:
            top = "/".join(parts[: hid + 1])
            if top not in hidden_seen:
                hidden_seen.add(top)
                out.skipped.append(Unreadable(top, HIDDEN))
            continue
        out.files.append(rel)
        size = info.get("size")
        out.sizes.append(None if size is None else int(size))
    if not out.files and not out.skipped and fs.isfile(root):
        raise DataError(f"{url} is a single object; pass the prefix (folder) that holds the pool")
    if out.skipped:
        out.notes.append(f"skipped {len(out.skipped)} hidden entries (names starting with '.'; --include-hidden "
                         "reads them)")
    return out


def _small(size: int | None, max_pixels: int) -> bool:
    """Fetched in one request (and, in a chunk, concurrently with the others): sizes known, small."""
    return size is not None and 0 < size <= min(_SMALL, D.file_limit(max_pixels))


def fetch_small(fs: Any, paths: list[str], sizes: list[int | None], max_pixels: int) -> dict[int, Any]:
    """``{i: bytes or the exception}`` for the small objects of a chunk, fetched in one
    ``cat_ranges`` call: fsspec's async filesystems (s3fs, gcsfs) send those requests
    concurrently, so a chunk costs about one round trip per ``batch_size`` objects instead of one
    per object (object stores answer in tens of milliseconds). Never more than a byte past
    ``_SMALL`` per object, as :func:`open_object` reads it."""
    want = [i for i, z in enumerate(sizes) if _small(z, max_pixels)]
    if not want:
        return {}
    try:
        got = fs.cat_ranges([paths[i] for i in want], [0] * len(want), [_SMALL + 1] * len(want), on_error="return")
    except Exception:  # the batch call itself failed: each object is fetched on its own below
        return {}
    return dict(zip(want, got))


def open_object(fs: Any, path: str, size: int | None, max_pixels: int, fetched: Any = None):
    """``(PIL image with its header read, None)`` or ``(None, reason)``, as
    :func:`audit.data.readers.decode.open_image` for a file. ``fetched``: the object's bytes (or
    the exception fetching them raised) from :func:`fetch_small`."""
    limit = D.file_limit(max_pixels)
    if size == 0:
        return None, "empty file"
    if size is not None and size > limit:
        return None, f"too large (an object of {fmt_bytes(size)}; limit {fmt_bytes(limit)})"
    try:
        if _small(size, max_pixels):
            data = fetched if fetched is not None else fs.cat_file(path, start=0, end=_SMALL + 1)
            if isinstance(data, BaseException):
                raise data
            if len(data) > _SMALL:  # replaced by a larger object since the listing: not what was listed
                return None, "changed during the scan (larger than listed)"
            src, start = io.BytesIO(data), data[:12]
        else:
            src = fs.open(path, "rb", block_size=1 << 20, cache_type="readahead")
            if src.size is not None and src.size > limit:
                return None, f"too large (an object of {fmt_bytes(src.size)}; limit {fmt_bytes(limit)})"
            start = src.read(12)
            src.seek(0)
    except FileNotFoundError:
        return None, "vanished during read"
    except PermissionError:
        return None, "permission denied"
    except Exception as exc:  # a network error, a throttled request: this object, not the scan
        return None, f"unreadable ({one_line(exc)})"
    return D.open_stream(src, start)


def header_sizes(fs: Any, paths: list[str], sizes: list[int | None], max_pixels: int) -> list[tuple[int, int] | None]:
    """(H, W) of each object from its header alone (None: not a readable image); small objects
    fetched together, as :func:`decode_objects` does."""
    out: list[tuple[int, int] | None] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lo, hi in _fetch_groups(sizes):
            fetched = fetch_small(fs, paths[lo:hi], sizes[lo:hi], max_pixels)
            for i in range(lo, hi):
                im, _ = open_object(fs, paths[i], sizes[i], max_pixels, fetched.pop(i - lo, None))
                w, h = im.size if im is not None else (0, 0)
                out.append((h, w) if w > 0 and h > 0 else None)
    return out


def _fetch_groups(sizes: list[int | None]) -> list[tuple[int, int]]:
    """Consecutive ranges of a chunk whose objects add up to at most ``FETCH_BYTES`` (a chunk of
    8192 objects of up to 1 MiB is never held at once)."""
    out, lo, total = [], 0, 0
    for i, z in enumerate(sizes):
        z = z or 0
        if i > lo and (total + z > FETCH_BYTES or i - lo >= FETCH_OBJECTS):
            out.append((lo, i))
            lo, total = i, 0
        total += z
    if lo < len(sizes):
        out.append((lo, len(sizes)))
    return out


def decode_objects(fs: Any, paths: list[str], sizes: list[int | None], size: tuple[int, int], max_pixels: int):
    """:func:`audit.data.readers.decode.decode_chunk` for objects: ``(pixels, channels, metas)``."""

    def results():
        for lo, hi in _fetch_groups(sizes):
            fetched = fetch_small(fs, paths[lo:hi], sizes[lo:hi], max_pixels)
            for i in range(lo, hi):
                im, reason = open_object(fs, paths[i], sizes[i], max_pixels, fetched.pop(i - lo, None))
                yield D.decode_opened(im, reason, size, max_pixels)

    return D.pack_decoded(results())


def one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
