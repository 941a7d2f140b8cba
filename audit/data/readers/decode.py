"""One image file -> one uint8 thumbnail at the working size, or a reason it could not be read.

This module is what the decode processes run (it imports numpy and PIL only). It never raises
for a bad file: every failure is a reason. Policies (each a choice; the reason is given):

- **Formats by content**: PNG, JPEG, BMP, WebP, GIF, TIFF and PPM/PGM (what torchvision's
  ``ImageFolder`` reads, so what a trainer may train on), whatever the extension. A text file
  named ``x.png`` is ``not an image``. Restricting PIL's plugins keeps exotic decoders away from
  hostile files.
- **Bombs and huge files**: the header is read first; an image that would decode to more than
  ``max_pixels`` pixels is ``too large`` before any pixel is decoded (a JPEG is counted at the
  DCT scale it is decoded at, see ``resolution``), and so is a file larger than
  :func:`file_limit` (a sparse 15 TiB file is refused from its ``fstat``, never read).
- **Modes**: ``1``/``L`` and palettes whose colours are all gray are gray; ``RGB``, other
  palettes, ``CMYK`` and ``YCbCr`` (PIL's conversion, no colour management) and ``RGBX`` are
  colour. 16-bit gray (``I;16*``: PNG and TIFF state the depth) is scaled to 8 bits by
  ``round(v/257)``, a linear map; 32-bit ``I`` and float ``F`` are refused as ``unsupported mode``
  (the file does not state their range), as are ``LAB``/``HSV``.
- **Alpha** (``RGBA``, ``LA``, ``PA``, palettes with transparency) is composited over mid-gray
  (:data:`BACKGROUND` = 128). Over black (the old policy) black line art on transparency became
  blank, and ~1,000 openclipart images fell into one blank cluster; over white the same happens
  to white line art; gray keeps both visible at half contrast. Compositing over *any* fixed
  background ``b`` gives ``c·α + b·(1-α)``: affine in the premultiplied colour ``c·α`` and in
  ``α``, so images blended in premultiplied space (or opaque ones, whatever they blend) stay on
  their line. It is computed on the thumbnail: the image is premultiplied, resized (a linear map
  of premultiplied colour and alpha alike), then composited, which equals compositing first up
  to rounding. A loader that drops alpha (PIL ``convert('RGB')``) trains on the colour stored
  under transparent pixels, which this scan does not see: see the report's notes.
- **First frame** of animated GIF/PNG/WebP and multi-page TIFF (what PIL-based loaders return);
  counted in the summary.
- **EXIF orientation is not applied**: PIL-based loaders (torchvision's default) train on the
  stored pixel array, and a bridge is made of stored pixels; applying it would also rotate some
  members of a bridge and not others if only some carry the tag. Counted in the summary.
- **Read-only**: files are opened ``O_RDONLY | O_NONBLOCK`` after the walk saw them as regular
  files, with ``O_NOFOLLOW`` unless the walk reached them through a symlink, and ``fstat``-checked
  before reading, so nothing can block, and an entry swapped for a symlink or a FIFO during the
  scan is refused.
"""

from __future__ import annotations

import errno
import io
import os
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from audit.data.readers._common import NotRegularFile, fmt_bytes, open_regular, os_reason
from audit.data.readers.resolution import draft_for, fit, prereduce

FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "GIF", "TIFF", "PPM")
# to tell "truncated" from "not an image" ("BM", "P5"/"P6" are too short to trust)
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"II*\x00", b"MM\x00*")
BACKGROUND = 128  # alpha is composited over this gray (module docstring)
_SMALL_FILE = 1 << 20  # read in one call below this; larger files are streamed from the fd
_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La", "RGBa": "RGBa", "La": "La", "PA": "RGBa"}
_TO_RGB = {"CMYK", "YCbCr", "RGBX"}

# info flags of one decoded image (bit set)
ALPHA, RESIZED, UPSCALED, DRAFT, ANIMATED, EXIF_ROTATED, SIXTEEN_BIT, CMYK, PALETTE_GRAY, TRANSPARENT = (
    1 << i for i in range(10))


def file_limit(max_pixels: int) -> int:
    """The largest file an image of ``max_pixels`` can plausibly need: 8 bytes a pixel (an
    uncompressed 32-bit BMP is 4) plus 16 MiB of metadata."""
    return 8 * int(max_pixels) + (16 << 20)


def open_image(path: str, follow: bool, max_pixels: int) -> tuple[Image.Image | None, str | None]:
    """(PIL image with its header read, None) or (None, reason)."""
    try:
        fd, st = open_regular(path, follow)
    except NotRegularFile as exc:
        return None, str(exc.strerror)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:  # ELOOP from O_NOFOLLOW: it became a symlink
            return None, "changed into a symlink during the scan"
        return None, os_reason(exc)
    try:
        if st.st_size == 0:
            return None, "empty file"
        if st.st_size > file_limit(max_pixels):
            return None, f"too large (a file of {fmt_bytes(st.st_size)}; limit {fmt_bytes(file_limit(max_pixels))})"
        if st.st_size <= _SMALL_FILE:
            data = os.read(fd, st.st_size + 1)
            src = io.BytesIO(data)
            start = data[:12]
        else:
            src = os.fdopen(os.dup(fd), "rb")
            start = src.read(12)
            src.seek(0)
    except OSError as exc:
        return None, os_reason(exc)
    finally:
        os.close(fd)
    return open_stream(src, start)


def open_stream(src, start: bytes) -> tuple[Image.Image | None, str | None]:
    """:func:`open_image` once the bytes are at hand: ``src`` a seekable binary stream at
    offset 0 (the file's, or an object's in a bucket, :mod:`audit.data.remote`), ``start`` its
    first 12 bytes. The size limits are the caller's to check first."""
    if not start:
        return None, "empty file"
    try:
        return Image.open(src, formats=FORMATS), None
    except Image.DecompressionBombError:
        return None, "too large (PIL decompression-bomb limit)"
    except UnidentifiedImageError:
        if start.startswith(_MAGIC) and not (start.startswith(b"RIFF") and start[8:12] != b"WEBP"):
            return None, "truncated (header incomplete or corrupt)"
        return None, "not an image"
    except Exception as exc:  # a plugin bug on hostile bytes must not end the scan
        return None, failure(exc)


def header_size(path: str, follow: bool, max_pixels: int) -> tuple[int, int] | None:
    """(H, W) from the header alone, or None when the file is not a readable image."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im, _ = open_image(path, follow, max_pixels)
    if im is None:
        return None
    w, h = im.size
    return (h, w) if w > 0 and h > 0 else None


def decode_one(path: str, follow: bool, size: tuple[int, int], max_pixels: int):
    """``(array H×W×C uint8, None, flags, (h, w), mode)`` or ``(None, reason, 0, (h, w), mode)``
    where (h, w) and mode are the file's native ones (``(0, 0)`` and '' when unknown)."""
    im, reason = open_image(path, follow, max_pixels)
    return decode_opened(im, reason, size, max_pixels)


def decode_opened(im: Image.Image | None, reason: str | None, size: tuple[int, int], max_pixels: int):
    """:func:`decode_one` for an image :func:`open_stream` opened (or its reason)."""
    if im is None:
        return None, reason, 0, (0, 0), ""
    native, mode = (im.size[1], im.size[0]), im.mode
    try:
        if native[0] == 0 or native[1] == 0:
            return None, "empty image (0 pixels)", 0, native, mode
        flags = DRAFT if draft_for(im, size) else 0
        w, h = im.size
        if w * h > max_pixels:
            return None, f"too large ({native[1]}×{native[0]} pixels; limit {max_pixels})", 0, native, mode
        im.load()
        arr, f = _thumbnail(im, size, (native[1], native[0]))
        flags |= f
        if "exif" in im.info and im.getexif().get(0x0112, 1) not in (1, None):
            flags |= EXIF_ROTATED
        if getattr(im, "is_animated", False):
            flags |= ANIMATED
        return arr, None, flags, native, mode
    except ValueError as exc:
        if str(exc).startswith("unsupported mode"):
            return None, str(exc), 0, native, mode
        return None, f"corrupt ({exc})", 0, native, mode
    except MemoryError:
        return None, "too large (out of memory while decoding)", 0, native, mode
    except Exception as exc:
        return None, failure(exc), 0, native, mode


def _thumbnail(im: Image.Image, size: tuple[int, int], src: tuple[int, int]) -> tuple[np.ndarray, int]:
    """uint8 H×W×1 or H×W×3 at ``size`` from a file of size ``src`` (w, h), and the flags;
    ValueError('unsupported mode …')."""
    mode, flags = im.mode, 0
    if mode == "P":  # gray if the thumbnail's colours are all gray (checked below)
        flags |= PALETTE_GRAY
        im, mode = (im.convert("RGBA"), "RGBA") if "transparency" in im.info else (im.convert("RGB"), "RGB")
    elif mode.startswith("I;16"):
        a = np.asarray(im).astype(np.uint32)
        im, mode = Image.fromarray(((a + 128) // 257).astype(np.uint8), mode="L"), "L"
        flags |= SIXTEEN_BIT
    elif mode == "1":
        im, mode = im.convert("L"), "L"
    elif mode in _TO_RGB:
        flags |= CMYK if mode == "CMYK" else 0
        im, mode = im.convert("RGB"), "RGB"
    if mode in _PREMULTIPLIED:
        pm = im.convert(_PREMULTIPLIED[mode]) if im.mode != _PREMULTIPLIED[mode] else im
        thumb = np.asarray(fit(prereduce(pm, size, src), size))
        arr = _composite(thumb)
        flags |= ALPHA | (TRANSPARENT if not thumb[:, :, -1].any() else 0)
    elif mode in ("L", "RGB"):
        out = fit(prereduce(im, size, src), size)
        arr = np.frombuffer(raw_bytes(out), np.uint8).reshape(out.size[1], out.size[0], 1 if mode == "L" else 3)
    else:
        raise ValueError(f"unsupported mode {mode}")
    if flags & PALETTE_GRAY:
        if (arr[:, :, 0] == arr[:, :, 1]).all() and (arr[:, :, 1] == arr[:, :, 2]).all():
            arr = arr[:, :, :1]
        else:
            flags &= ~PALETTE_GRAY
    return np.ascontiguousarray(arr), flags | _resize_flags(src, size)


def raw_bytes(im: Image.Image) -> bytes:
    """``im.tobytes()`` for mode L or RGB, with an output buffer of the image's own size: tobytes
    asks PIL's raw encoder for 64 KiB a call, most of its cost on a thumbnail (4.9 -> 3.0 µs on
    28×28). Falls back to tobytes whenever PIL answers otherwise."""
    w, h = im.size
    size = w * h * (3 if im.mode == "RGB" else 1)
    try:
        enc = Image._getencoder(im.mode, "raw", im.mode)
        enc.setimage(im.im, (0, 0, w, h))
        _, status, data = enc.encode(size + 64)
        enc.cleanup()
    except Exception:  # a Pillow without this internal: the public way
        return im.tobytes()
    return data if status == 1 and len(data) == size else im.tobytes()


def _resize_flags(src: tuple[int, int], size: tuple[int, int]) -> int:
    h, w = size
    if src == (w, h):
        return 0
    return RESIZED | (UPSCALED if src[0] < w or src[1] < h else 0)


def _composite(pm: np.ndarray) -> np.ndarray:
    """Premultiplied H×W×(C+1), alpha last -> H×W×C over :data:`BACKGROUND`:
    ``c·α + b·(1-α)``, rounded."""
    a = pm[:, :, -1:].astype(np.uint16)
    bg = (BACKGROUND * (255 - a) + 127) // 255
    return np.minimum(pm[:, :, :-1].astype(np.uint16) + bg, 255).astype(np.uint8)


def failure(exc: Exception) -> str:
    """The reason for a decoder exception: PIL says "truncated" in several spellings."""
    msg = str(exc)
    low = msg.lower()
    if isinstance(exc, EOFError) or "truncat" in low or "broken" in low or "premature end" in low:
        return "truncated"
    return f"corrupt ({type(exc).__name__}: {msg[:200]})"


def decode_chunk(paths: list[str], follow: list[bool], size: tuple[int, int], max_pixels: int):
    """Decode a chunk: ``(pixels, channels, metas)`` where ``pixels`` is every decoded image
    raveled into one uint8 array (one buffer to send back from a process), ``channels`` each
    image's C (0 when unreadable), and metas ``(reason, flags, (h, w), mode)`` per file."""
    return pack_decoded(decode_one(p, f, size, max_pixels) for p, f in zip(paths, follow))


def pack_decoded(results):
    """``(pixels, channels, metas)`` of :func:`decode_chunk` from ``decode_one``-shaped results
    ``(array or None, reason, flags, native, mode)``, consumed here (files or objects alike)."""
    arrays, channels, metas = [], [], []
    with warnings.catch_warnings():
        # our own max_pixels check (before decoding) is the guard; PIL's warnings would be noise
        warnings.simplefilter("ignore")
        for arr, reason, flags, native, mode in results:
            if arr is not None:
                arrays.append(arr.reshape(-1))
            channels.append(0 if arr is None else arr.shape[2])
            metas.append((reason, flags, native, mode))
    pixels = np.concatenate(arrays) if arrays else np.zeros(0, np.uint8)
    return pixels, channels, metas
