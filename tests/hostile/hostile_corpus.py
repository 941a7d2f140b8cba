"""A seeded hostile folder corpus (issue #12): good images among everything a scraped or shared
folder can hold that should never stop, hang or fool a scan.

``build_pool(root, seed, scale)`` writes ``root/pool`` (and ``root/outside``, a folder a symlink
points into) and returns a :class:`Manifest` of what a reader must do with each entry:

- ``good``: read (real Fashion-MNIST images in PNG/JPEG/BMP/WebP/GIF/TIFF/PPM, many modes, and
  hostile *names*: ANSI escapes, newlines, carriage returns, formula starts, non-UTF-8 bytes,
  right-to-left overrides, 255-byte names).
- ``bad``: listed as unreadable, with a reason containing the given text (corrupted and truncated
  images of every format, bombs whose headers claim 10^10 pixels, a 15 TiB sparse file, empty
  files, a pickle that runs code if loaded, FIFOs, a socket, symlinks to devices, broken links,
  link loops, nesting deeper than PATH_MAX, a directory named ``x.png``).
- ``maybe``: either read or unreadable (bytes flipped inside image data: some still decode);
  never a crash.
- ``skipped``: listed in ``skipped`` with the reason text (hidden names, directory symlinks, a
  symlink out of the root).

Every entry is made from the seed, so a failure reproduces. ``scale`` multiplies the number of
corrupted variants (``scale=8`` gives about 1,500 entries, the size of the issue's corpus).
"""

from __future__ import annotations

import io
import os
import socket
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "fashion-mnist-200.npz"
MARKER_NAME = "PWNED"  # a pickle in the corpus would create this file if anything unpickled it


@dataclass
class Manifest:
    good: list[str] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)  # id -> text the reason must contain
    maybe: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    marker: Path | None = None  # must never exist


def real_images() -> np.ndarray:
    with np.load(FIXTURE) as z:
        return z["images"][..., 0].copy()  # uint8 200×28×28


def encode(im: np.ndarray, fmt: str, mode: str | None = None, **kw) -> bytes:
    buf = io.BytesIO()
    pil = Image.fromarray(im)
    if mode:
        pil = pil.convert(mode)
    pil.save(buf, fmt, **kw)
    return buf.getvalue()


def _colour(g: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.stack([g, g[::-1], 255 - g], axis=-1))


GOOD_FORMATS = [  # (extension, PIL format, mode, options)
    ("png", "PNG", None, {}), ("png", "PNG", "P", {}), ("png", "PNG", "1", {}), ("png", "PNG", "LA", {}),
    ("jpg", "JPEG", None, {"quality": 95}), ("bmp", "BMP", None, {}), ("webp", "WEBP", None, {"lossless": True}),
    ("gif", "GIF", None, {}), ("tif", "TIFF", None, {}), ("pgm", "PPM", None, {}), ("png", "PNG", "I;16", {}),
]
HOSTILE_NAMES = [
    "\x1b[2J\x1b[H\x1b]0;pwned\x07clear.png", "line\nbreak gate passed (fail on: error).png", "car\rriage.png",
    "=HYPERLINK(\"evil.example\",\"y\").png", "+cmd|' /C calc'!A0.png", "-2+3.png", "@SUM(A1).png", "\u202egnp.exe.png",
    "tab\there.png", "space name .png", "x" * 251 + ".png", "-rf.png", "del\x7f.png",
    "caf\u00e9.png", "cafe\u0301.png",  # NFC and NFD spellings: two different files, two ids
]
NON_UTF8 = [b"\xff\xfe.png", b"latin1-\xe9t\xe9.png", b"\xc3\x28.png"]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _png_header(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(
        b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _bombs() -> dict[str, bytes]:
    """Headers that claim far more pixels than the data: refused from the header."""
    big_gif = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b"," + struct.pack(
        "<HHHH", 0, 0, 65535, 65535) + b"\x00\x02\x02\x4c\x01\x00;"
    jpeg = encode(np.zeros((16, 16), np.uint8), "JPEG")
    i = jpeg.index(b"\xff\xc0")  # SOF0: precision, height, width
    big_jpeg = jpeg[: i + 5] + struct.pack(">HH", 65000, 65000) + jpeg[i + 9 :]
    bmp = bytearray(encode(np.zeros((4, 4), np.uint8), "BMP"))
    bmp[18:26] = struct.pack("<ii", 100_000, 100_000)
    zbomb = zlib.compress(b"\x00" * (7001 * 7000), 9)  # a real 7000×7000 PNG of zeros (49 Mpx), ~50 kB
    real_bomb = _png_header(7000, 7000).replace(zlib.compress(b"\x00" * 64), zbomb)
    return {"bomb_header.png": _png_header(100_000, 100_000), "bomb_gif.gif": big_gif,
            "bomb_jpeg.jpg": big_jpeg, "bomb_bmp.bmp": bytes(bmp), "bomb_zlib.png": _fix_crc(real_bomb)}


def _fix_crc(png: bytes) -> bytes:
    out, pos = bytearray(png[:8]), 8
    while pos < len(png):
        n = struct.unpack(">I", png[pos : pos + 4])[0]
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + n]
        out += struct.pack(">I", n) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        pos += 12 + n
    return bytes(out)


def _evil_pickle(marker: Path) -> bytes:
    """A protocol-2 pickle that creates ``marker`` when loaded (os.system), shaped like CIFAR."""
    cmd = f"touch {marker}".encode()
    return (b"\x80\x02cposix\nsystem\nq\x00X" + struct.pack("<I", len(cmd)) + cmd + b"\x85q\x01Rq\x02.")


def build_pool(root: Path, seed: int = 0, scale: int = 1) -> Manifest:
    rng = np.random.default_rng(seed)
    pool, outside = root / "pool", root / "outside"
    pool.mkdir(parents=True)
    outside.mkdir()
    m = Manifest(marker=root / MARKER_NAME)
    imgs = real_images()
    k = 0
    # good images: every format and mode, in nested folders
    for rep in range(2 * scale):
        for ext, fmt, mode, kw in GOOD_FORMATS:
            g = imgs[k % len(imgs)]
            k += 1
            arr = g.astype(np.uint16) * 257 if mode == "I;16" else g
            rel = f"good/{fmt.lower()}{rep}/{k:04d}_{(mode or 'x').replace(';', '')}.{ext}"
            _write(pool / rel, encode(arr, fmt, None if mode == "I;16" else mode, **kw))
            m.good.append(rel)
        rel = f"good/colour{rep}.png"
        _write(pool / rel, encode(_colour(imgs[k % len(imgs)]), "PNG"))
        m.good.append(rel)
    for name in HOSTILE_NAMES:
        _write(pool / "names" / name, encode(imgs[k % len(imgs)], "PNG"))
        k += 1
        m.good.append(f"names/{name}")
    for raw in NON_UTF8:
        d = os.path.join(os.fsencode(pool), b"names")
        with open(os.path.join(d, raw), "wb") as fh:
            fh.write(encode(imgs[k % len(imgs)], "PNG"))
        k += 1
        m.good.append("names/" + os.fsdecode(raw))
    # corrupted images of every format: truncations, garbage after the magic, flipped bytes
    for rep in range(6 * scale):
        for ext, fmt, mode, kw in GOOD_FORMATS[:10]:
            data = encode(_colour(imgs[k % len(imgs)]) if fmt in ("JPEG", "WEBP") else imgs[k % len(imgs)], fmt,
                          mode, **kw)
            k += 1
            cut = int(rng.integers(1, max(2, len(data) // 2)))
            _write(pool / "corrupt" / f"trunc_{rep}_{k}.{ext}", data[:cut])
            m.maybe.append(f"corrupt/trunc_{rep}_{k}.{ext}")  # a GIF/BMP cut late may still decode
            junk = data[:8] + rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
            _write(pool / "corrupt" / f"junk_{rep}_{k}.{ext}", junk)
            m.maybe.append(f"corrupt/junk_{rep}_{k}.{ext}")
            flip = bytearray(data)
            for pos in rng.integers(len(data) // 4, len(data), 6):
                flip[pos] ^= int(rng.integers(1, 256))
            _write(pool / "corrupt" / f"flip_{rep}_{k}.{ext}", bytes(flip))
            m.maybe.append(f"corrupt/flip_{rep}_{k}.{ext}")
    # hostile entries with a known outcome
    for name, data in _bombs().items():
        _write(pool / "bombs" / name, data)
        m.bad[f"bombs/{name}"] = "too large"
    _write(pool / "empty.png", b"")
    m.bad["empty.png"] = "empty file"
    _write(pool / "text.png", b"hello, I am text\n")
    m.bad["text.png"] = "not an image"
    _write(pool / "evil.pkl", _evil_pickle(m.marker))
    m.bad["evil.pkl"] = "not an image"
    with open(pool / "huge.png", "wb") as fh:  # a sparse 15 TiB file that starts like a PNG
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.truncate(15 << 40)
    m.bad["huge.png"] = "too large"
    os.mkfifo(pool / "fifo.png")
    m.bad["fifo.png"] = "FIFO"
    (pool / "dir.png").mkdir()  # an empty directory with an image's name: nothing to read
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(pool / "sock.png"))
        m.bad["sock.png"] = "socket"
    except OSError:  # a path too long for AF_UNIX: the corpus goes on without a socket
        pass
    finally:
        sock.close()
    for dev in ("zero", "urandom", "null"):
        os.symlink(f"/dev/{dev}", pool / f"dev_{dev}.png")
        m.bad[f"dev_{dev}.png"] = "character device"
    os.symlink(pool / "nowhere.png", pool / "broken.png")
    m.bad["broken.png"] = "broken symlink"
    os.symlink(pool / "loop_b.png", pool / "loop_a.png")
    os.symlink(pool / "loop_a.png", pool / "loop_b.png")
    m.bad["loop_a.png"] = m.bad["loop_b.png"] = "symlink loop"
    os.symlink("self.png", pool / "self.png")
    m.bad["self.png"] = "symlink loop"
    # skipped on purpose
    _write(pool / ".hidden.png", encode(imgs[0], "PNG"))
    _write(pool / ".git" / "objects" / "x.png", encode(imgs[1], "PNG"))
    m.skipped[".hidden.png"] = m.skipped[".git"] = "hidden"
    os.symlink(pool / "good", pool / "dirlink")
    os.symlink(pool, pool / "good" / "png0" / "up")
    m.skipped["dirlink"] = m.skipped["good/png0/up"] = "directory symlink"
    _write(outside / "private.png", encode(imgs[2], "PNG"))
    os.symlink(outside / "private.png", pool / "outside_link.png")
    m.skipped["outside_link.png"] = "outside the scanned folder"
    os.symlink(pool / "good" / "png0" / os.listdir(pool / "good" / "png0")[0], pool / "inside_link.png")
    m.good.append("inside_link.png")
    m.bad.update(_deep(pool, imgs[3]))
    return m


def _deep(pool: Path, image: np.ndarray) -> dict[str, str]:
    """Folders nested past PATH_MAX (4096 bytes), made with directory fds, an image at the bottom."""
    name, levels = "d" * 200, 22  # 22 × 201 bytes > 4096
    fd = os.open(pool, os.O_RDONLY | os.O_DIRECTORY)
    rel = []
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            rel.append(name)
        out = os.open("deep.png", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, encode(image, "PNG"))
        os.close(out)
    finally:
        os.close(fd)
    # the first folder whose absolute path passes PATH_MAX cannot be listed by path
    base = len(os.fsencode(pool))
    depth = next(i for i in range(1, levels + 1) if base + i * (len(name) + 1) >= 4096)
    return {"/".join(rel[:depth]): "too long"}
