"""FixMatch's RandAugment op list, batched: every op takes a group of images and one strength
per image.

Images are float32 ``B×C×H×W`` in [0, 1]; ``level`` is float32 ``B`` in [0, 1] (0 = weakest,
1 = strongest distortion); ``sign`` is float32 ``B`` of ±1 for the ops whose range is
symmetric. The ranges are those of FixMatch (Sohn et al., 2020, Table 12), as implemented by
USB's RandAugment; level → value is linear:

    op            value                        at level 0 → level 1
    AutoContrast  —                            (no magnitude)
    Brightness    blend factor with black      0.95 → 0.05
    Color         blend factor with grey       0.95 → 0.05   (identity when C = 1)
    Contrast      blend factor with mean grey  0.95 → 0.05
    Equalize      —                            (no magnitude)
    Identity      —                            (no magnitude)
    Posterize     bits kept                    8 → 4
    Rotate        degrees                      0 → ±30
    Sharpness     blend factor with smoothed   0.95 → 0.05
    ShearX/Y      shear coefficient            0 → ±0.3
    Solarize      threshold (invert above)     1 → 0
    TranslateX/Y  fraction of width/height     0 → ±0.3

The geometric ops (Rotate, Shear*, Translate*) of one round are one per-sample affine matrix
each and one ``grid_sample`` for all of them; pixels moved in from outside take ``fill``.
Shears are about the image centre (PIL shears about the top-left corner, which also shifts
the content; the centred form keeps the object in view, and the ranges are symmetric anyway).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

OPS: tuple[str, ...] = (
    "AutoContrast", "Brightness", "Color", "Contrast", "Equalize", "Identity", "Posterize",
    "Rotate", "Sharpness", "ShearX", "ShearY", "Solarize", "TranslateX", "TranslateY",
)
GEOMETRIC: frozenset[str] = frozenset({"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"})
MAX_ROTATE = 30.0  # degrees
MAX_SHEAR = 0.3
MAX_TRANSLATE = 0.3  # fraction of the side
MIN_FACTOR, MAX_FACTOR = 0.05, 0.95  # enhancement blend factors (1 would be the identity)

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, PIL's "L" conversion


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def _factor(level: torch.Tensor) -> torch.Tensor:
    return MAX_FACTOR - level * (MAX_FACTOR - MIN_FACTOR)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """``B×1×H×W`` luminance (the image itself when C = 1)."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ImageEnhance: ``degenerate + factor · (x - degenerate)``, clipped to [0, 1]."""
    return (degenerate + _bcast(factor) * (x - degenerate)).clamp_(0.0, 1.0)


def auto_contrast(x, level, sign):
    """Stretch each channel of each image to [0, 1]; constant channels are left unchanged."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    flat = hi <= lo
    scale = torch.where(flat, torch.ones_like(hi), 1.0 / (hi - lo).clamp_min(1e-12))
    return ((x - torch.where(flat, torch.zeros_like(lo), lo)) * scale).clamp_(0.0, 1.0)


def brightness(x, level, sign):
    return _blend(torch.zeros_like(x), x, _factor(level))


def color(x, level, sign):
    if x.shape[1] == 1:  # saturation of a grayscale image is already 0
        return x
    return _blend(_gray(x).expand_as(x), x, _factor(level))


def contrast(x, level, sign):
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(mean.expand_as(x), x, _factor(level))


def equalize(x, level, sign):
    """PIL ``ImageOps.equalize`` per image and channel, exactly on 8-bit levels: a lookup table
    ``(cdf_before(v) + step // 2) // step``, ``step = (pixels − count of the last used level) //
    255``; identity when ``step`` is 0. Values between levels (after a warp or a blend) are
    rounded to the nearest level, as PIL's uint8 pipeline would have stored them.

    All images share one ``bincount`` (each image-channel offset by 256 bins): kornia's
    ``equalize`` gives the same tables but cost more per call on CPU at these batch sizes."""
    b, c, h, w = x.shape
    n = b * c
    v = torch.round(x * 255.0).long().clamp_(0, 255).reshape(n, h * w)
    flat = v + (torch.arange(n, device=x.device) * 256).view(-1, 1)
    hist = torch.bincount(flat.view(-1), minlength=n * 256).view(n, 256)
    levels = torch.arange(256, device=x.device)
    last = torch.where(hist > 0, levels, -1).amax(1, keepdim=True)  # highest level in use
    step = (h * w - hist.gather(1, last)) // 255
    lut = (hist.cumsum(1) - hist + step // 2).div_(step.clamp_min(1), rounding_mode="floor").clamp_(max=255)
    out = lut.to(x.dtype).div_(255.0).view(-1).take(flat).view(b, c, h, w)
    flat_channels = (step == 0).view(b, c, 1, 1)  # PIL leaves these alone: so do we, unrounded
    return torch.where(flat_channels, x, out) if bool(flat_channels.any()) else out


def identity(x, level, sign):
    return x


def posterize(x, level, sign):
    """Keep the top 8 → 4 bits of each 8-bit level (PIL ``ImageOps.posterize``)."""
    step = _bcast(torch.exp2(torch.round(level * 4.0)))  # 2^(8 - bits)
    v = torch.floor(x * 255.0 + 0.5)
    return torch.floor(v / step).mul_(step).div_(255.0)


def sharpness(x, level, sign):
    """Blend with PIL's SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]] / 13, border pixels kept).

    Written with slices (a separable 3×3 box sum plus 4× the centre): the depthwise
    ``conv2d`` of kornia's ``sharpness`` took ~10× longer on CPU at these sizes."""
    if x.shape[2] < 3 or x.shape[3] < 3:
        return x
    rows = x[:, :, :-2] + x[:, :, 1:-1] + x[:, :, 2:]
    box = rows[:, :, :, :-2] + rows[:, :, :, 1:-1] + rows[:, :, :, 2:]
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = (box + 4.0 * x[:, :, 1:-1, 1:-1]) / 13.0
    return _blend(smooth, x, _factor(level))


def solarize(x, level, sign):
    threshold = _bcast(1.0 - level)
    return torch.where(x >= threshold, 1.0 - x, x)


COLOUR_FNS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "AutoContrast": auto_contrast, "Brightness": brightness, "Color": color, "Contrast": contrast,
    "Equalize": equalize, "Identity": identity, "Posterize": posterize, "Sharpness": sharpness,
    "Solarize": solarize,
}


def affine_theta(ops: torch.Tensor, level: torch.Tensor, sign: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``B×2×3`` matrices for ``F.affine_grid`` (output → input, normalised coordinates,
    ``align_corners=False``) for op indices ``ops`` (``B``, each a ``GEOMETRIC`` op)."""
    v = level * sign
    is_op = {name: ops == OPS.index(name) for name in GEOMETRIC}
    zero = torch.zeros_like(v)
    r = torch.deg2rad(MAX_ROTATE * v)
    cos, sin = torch.cos(r), torch.sin(r)
    rot = is_op["Rotate"]
    # Pixel-space maps conjugated by diag(W/2, H/2), so non-square images rotate and shear right.
    a00 = torch.where(rot, cos, 1.0 + zero)
    a01 = torch.where(rot, -sin * height / width, torch.where(is_op["ShearX"], MAX_SHEAR * v * height / width, zero))
    a10 = torch.where(rot, sin * width / height, torch.where(is_op["ShearY"], MAX_SHEAR * v * width / height, zero))
    tx = torch.where(is_op["TranslateX"], 2.0 * MAX_TRANSLATE * v, zero)  # normalised: 2 = a whole side
    ty = torch.where(is_op["TranslateY"], 2.0 * MAX_TRANSLATE * v, zero)
    return torch.stack([torch.stack([a00, a01, tx], 1), torch.stack([a10, a00, ty], 1)], 1)


def warp(x: torch.Tensor, theta: torch.Tensor, fill: float) -> torch.Tensor:
    """Bilinear warp of ``B×C×H×W`` by per-sample ``theta``; outside pixels become ``fill``."""
    b, _, h, w = x.shape
    theta = theta.to(device=x.device, dtype=x.dtype)
    # F.affine_grid's result (align_corners=False), written into the grid's two interleaved
    # planes from broadcast row and column terms. On CPU, affine_grid's batched matmul cost more
    # than the warp itself, and building each plane whole then stacking cost 3× this.
    xs = (torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1
    t = theta.view(b, 6, 1, 1)
    grid = torch.empty(b, h, w, 2, device=x.device, dtype=x.dtype)
    torch.add(t[:, 0] * xs.view(1, 1, w), t[:, 1] * ys.view(1, h, 1) + t[:, 2], out=grid[..., 0])
    torch.add(t[:, 3] * xs.view(1, 1, w), t[:, 4] * ys.view(1, h, 1) + t[:, 5], out=grid[..., 1])
    # grid_sample pads with zeros: shift so that zero means `fill`, then shift back.
    if fill == 0.0:
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    else:
        out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False).add_(fill)
    return out.clamp_(0.0, 1.0)


_GEO_KEY = len(OPS)  # sort key shared by all geometric ops: they form one slice, one warp
_SORT_KEY = torch.tensor([_GEO_KEY if name in GEOMETRIC else k for k, name in enumerate(OPS)])


def apply_round(x: torch.Tensor, ops: torch.Tensor, level: torch.Tensor, sign: torch.Tensor,
                fill: float, theta: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply op ``OPS[ops[i]]`` with strength ``level[i]``, ``sign[i]`` to image ``i``.

    ``x`` float32 ``B×C×H×W`` in [0, 1]; ``ops`` int64 ``B``, ``level`` and ``sign`` float32
    ``B``, all three on the CPU; ``theta``, optional, ``B×2×3``: :func:`affine_theta` of these
    ops, when the caller computed it for several rounds at once. Returns ``(y, order)``: the
    augmented images *sorted by op* (``y[j]`` is image ``order[j]``), so that every op runs
    once, in place, on a contiguous slice; the caller undoes the order once at the end rather
    than once per op.
    """
    key = _SORT_KEY[ops]
    order = torch.argsort(key, stable=True)
    counts = torch.bincount(key, minlength=len(OPS) + 1).tolist()
    y = x.index_select(0, order.to(x.device))
    level, sign, ops = level[order], sign[order], ops[order]
    level_d, sign_d = level.to(x.device), sign.to(x.device)  # one transfer each, not one per op
    start = 0
    for k, count in enumerate(counts):
        end = start + count
        if count and k != OPS.index("Identity"):
            part = y[start:end]
            if k == _GEO_KEY:
                if theta is None:
                    th = affine_theta(ops[start:end], level[start:end], sign[start:end], x.shape[2], x.shape[3])
                else:
                    th = theta[order[start:end]]
                part.copy_(warp(part, th, fill))
            else:
                out = COLOUR_FNS[OPS[k]](part, level_d[start:end], sign_d[start:end])
                if out is not part:
                    part.copy_(out)
        start = end
    return y, order
