"""Writers: an ImageSet back to files (a folder of PNGs, or one ``.npz``).

Contract: every file is written atomically (a temporary file beside the target, then
``os.replace``), so a killed run never leaves a truncated PNG that a later reader would take
for a real image. Bytes are deterministic: PNGs carry no timestamp or text chunk and use a fixed
compression level; the ``.npz`` zip entries carry a fixed date. The same ImageSet therefore
always gives the same bytes (on one zlib version), which is what lets ``redteam inject`` promise
"same seed, same files".

File names come from ``names`` or the ImageSet ids, sanitised to one plain file name: path
separators, ``..`` and leading dots can never place a file outside ``out_dir``.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from audit.atomic import write_atomic
from audit.data.imageset import ImageSet
from audit.errors import invalid_parameter

PNG_COMPRESS_LEVEL = 6  # zlib's default; fixed so the bytes never depend on a library default
NPZ_DATE = (1980, 1, 1, 0, 0, 0)  # the zip format's epoch: no wall-clock time in the file
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, *, default: str = "image") -> str:
    """One file-name component from an arbitrary id: ``train/00012`` -> ``train_00012``,
    ``../../etc/passwd`` -> ``etc_passwd``. Never empty, never starts with a dot, never a path."""
    stem = str(name)
    low = stem.lower()
    for suffix in _IMAGE_SUFFIXES:
        if low.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = _UNSAFE.sub("_", stem)
    stem = re.sub(r"\.{2,}", "_", stem)  # no '..' anywhere, even inside a name
    stem = stem.strip("._") or default
    return stem[:200]  # well under every file system's 255-byte name limit


def png_bytes(image: np.ndarray) -> bytes:
    """Lossless, deterministic PNG of one uint8 ``H×W×C`` image (C=1 -> mode 'L', C=3 -> 'RGB')."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
        raise invalid_parameter("image", "png_bytes", "a uint8 H×W×C array with C in (1, 3)",
                                f"{image.dtype} {image.shape}")
    if image.shape[2] == 1:
        pil = Image.fromarray(np.ascontiguousarray(image[:, :, 0]), mode="L")
    else:
        pil = Image.fromarray(np.ascontiguousarray(image), mode="RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buf.getvalue()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """One file, atomically; no fsync per file (tens of thousands of PNGs), the manifest written
    last is what marks a finished dataset."""
    return write_atomic(path, data, fsync=False)


def class_folders(images: ImageSet) -> list[str]:
    """The ``<class>`` folder of each image for ``by_class`` writing: the class name made safe, or
    the label number when there are no class names."""
    if images.labels is None:
        raise invalid_parameter("by_class", "write_png_folder", "False for an unlabeled ImageSet", True)
    out = []
    for label in images.labels:
        label = int(label)
        if images.class_names is not None and 0 <= label < len(images.class_names):
            out.append(safe_name(images.class_names[label], default=str(label)))
        else:
            out.append(safe_name(str(label)))
    return out


def png_paths(images: ImageSet, *, by_class: bool = False, names: Sequence[str] | None = None) -> list[str]:
    """The paths :func:`write_png_folder` writes, relative to its ``out_dir``, without writing."""
    folders = class_folders(images) if by_class else [""] * len(images)
    return _relative_paths(images, folders, names)


def _relative_paths(images: ImageSet, folders: list[str], names: Sequence[str] | None) -> list[str]:
    """``<folder>/<name>.png`` per image, unique. Explicit ``names`` that collide once made safe are
    an error (the caller meant distinct files); ids that collide only through sanitising
    (``a/b`` and ``a_b``) get ``-1``, ``-2``... in input order, so the result is deterministic."""
    if names is not None:
        names = list(names)
        if len(names) != len(images):
            raise invalid_parameter("names", "write_png_folder", f"a sequence of {len(images)} names",
                                    f"{len(names)} names")
        rel = [f"{d}/{safe_name(n)}.png" if d else f"{safe_name(n)}.png" for d, n in zip(folders, names)]
        if len(set(rel)) != len(rel):
            seen: set[str] = set()
            dup = next(n for n, r in zip(names, rel) if r in seen or seen.add(r))
            raise invalid_parameter("names", "write_png_folder",
                                    "names that stay distinct once made safe file names", dup)
        return rel
    taken: set[str] = set()
    rel = []
    for d, ident in zip(folders, images.ids):
        base = f"{d}/{safe_name(ident)}" if d else safe_name(ident)
        cand, k = base, 1
        while cand in taken:
            cand, k = f"{base}-{k}", k + 1
        taken.add(cand)
        rel.append(cand + ".png")
    return rel


def write_png_folder(
    images: ImageSet,
    out_dir: str | Path,
    *,
    by_class: bool = False,
    names: Sequence[str] | None = None,
) -> list[str]:
    """Write every image of ``images`` (uint8 ``N×H×W×C``) as a PNG under ``out_dir``.

    ``by_class`` puts each image in a ``<class_name>/`` subfolder (``class_names[label]``, or the
    label number). File names come from ``names`` (one per image) or the ids, made safe (see
    :func:`safe_name`) with ``.png`` appended. Returns the written paths relative to ``out_dir``
    with '/' separators, in the order of ``images``. Existing files of the same name are replaced.
    """
    root = Path(out_dir)
    rel = png_paths(images, by_class=by_class, names=names)
    write_pngs(images.images, rel, root)
    return rel


def write_pngs(images: np.ndarray, rel_paths: Sequence[str], out_dir: str | Path) -> None:
    """Write uint8 ``N×H×W×C`` ``images`` to ``out_dir/rel_paths[i]`` (atomic, deterministic).

    Each relative path must stay inside ``out_dir``: no absolute path, no ``..``, no empty part."""
    root = Path(out_dir)
    if len(rel_paths) != len(images):
        raise invalid_parameter("rel_paths", "write_pngs", f"{len(images)} paths", f"{len(rel_paths)} paths")
    for r in rel_paths:
        parts = str(r).split("/")
        if str(r).startswith(("/", "\\")) or any(p in ("", ".", "..") or "\\" in p or ":" in p for p in parts):
            raise invalid_parameter("rel_paths", "write_pngs", "relative paths that stay inside the output folder", r)
    root.mkdir(parents=True, exist_ok=True)
    for d in sorted({r.rsplit("/", 1)[0] for r in rel_paths if "/" in r}):
        (root / d).mkdir(parents=True, exist_ok=True)
    for image, r in zip(images, rel_paths):
        write_bytes_atomic(root / r, png_bytes(image))


def write_npz(images: ImageSet, path: str | Path) -> Path:
    """Write ``images`` to one ``.npz``: keys ``images`` (uint8 N×H×W×C), ``labels`` (int64 N,
    only when labeled) and ``ids`` (unicode N). Atomic, uncompressed, deterministic bytes
    (entries dated 1980-01-01). Readable with ``np.load``. Returns the path."""
    arrays = {"images": np.ascontiguousarray(images.images)}
    if images.labels is not None:
        arrays["labels"] = np.asarray(images.labels, dtype=np.int64)
    arrays["ids"] = np.asarray(images.ids, dtype=str) if len(images) else np.zeros(0, dtype="<U1")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=NPZ_DATE)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(target, buf.getvalue())
