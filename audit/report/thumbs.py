"""Thumbnails for the HTML report: uint8 H×W×C images -> PNG bytes / data URIs.

Small images are upscaled with nearest neighbour (28×28 -> 84×84) so a reviewer sees the real
pixels, not a blur; large ones are shrunk to fit ``max_side``. Pillow only, no rich/typer.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image

from audit.errors import invalid_parameter

MIN_SIDE = 84  # 28 px MNIST-like images become 3× (84 px): big enough to judge, still small
MAX_SIDE = 128  # larger images are shrunk so 60 thumbnails stay a few hundred kB
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def thumbnail_png(image: np.ndarray, *, min_side: int = MIN_SIDE, max_side: int = MAX_SIDE) -> bytes:
    """PNG bytes of one uint8 ``H×W×C`` (C 1 or 3) or ``H×W`` image, resized for review."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise invalid_parameter("image", "thumbnail_png", "a uint8 H×W×C array", f"{arr.dtype} {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    img = Image.fromarray(np.ascontiguousarray(arr))
    h, w = arr.shape[:2]
    longest = max(h, w)
    if longest < min_side:
        k = math.ceil(min_side / longest)
        img = img.resize((w * k, h * k), Image.NEAREST)
    elif longest > max_side:
        s = max_side / longest
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for bytes that are a PNG (checked: no other content type is
    ever embedded in a report)."""
    if not isinstance(png, (bytes, bytearray)) or not bytes(png).startswith(PNG_MAGIC):
        raise invalid_parameter("figure", "the HTML report", "PNG bytes", type(png).__name__)
    return "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")
