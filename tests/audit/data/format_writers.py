"""Writers of every format in its real on-disk layout, so each reader is tested on files shaped
exactly like the ones users have (CIFAR, SVHN and STL-10 cannot be downloaded here). Imported by
the tests as a plain module (the test tree has no __init__ files)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def colour32(gray: np.ndarray) -> np.ndarray:
    """Real-image-derived colour: uint8 N×32×32×3 with three different channels."""
    g = np.pad(gray[..., 0], ((0, 0), (2, 2), (2, 2)))
    return np.ascontiguousarray(np.stack([g, g[:, ::-1], 255 - g], axis=-1))


def write_png(path: Path, image: np.ndarray, mode: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    Image.fromarray(arr, mode=mode).save(path, **kw) if mode else Image.fromarray(arr).save(path, **kw)
    return path


def write_idx(path: Path, arr: np.ndarray) -> Path:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray, key: str = "labels") -> Path:
    """The real layout: dict with bytes keys, data uint8 N×3072 in CHW order, labels a list."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    d = {b"batch_label": b"testing batch 1 of 1", key.encode(): [int(v) for v in labels],
         b"data": data, b"filenames": [f"img_{i}.png".encode() for i in range(len(images))]}
    if key == "fine_labels":
        d[b"coarse_labels"] = [int(v) // 5 for v in labels]
    path.write_bytes(pickle.dumps(d, protocol=2))
    return path


def write_svhn(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    from scipy.io import savemat

    y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]  # SVHN stores digit 0 as 10
    savemat(str(path), {"X": images.transpose(1, 2, 3, 0), "y": y})
    return path


def write_stl10(path: Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """*_X.bin: per image 3×96×96 column-major (the inverse of transpose(0, 3, 2, 1))."""
    path.write_bytes(np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes())
    if labels is not None:
        path.with_name(path.name.replace("_X.bin", "_y.bin")).write_bytes((labels + 1).astype(np.uint8).tobytes())
    return path


def upscale96(images32: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images32.repeat(3, axis=1).repeat(3, axis=2))
