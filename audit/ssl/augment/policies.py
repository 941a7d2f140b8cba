"""Weak and strong augmentation of FixMatch (Sohn et al., 2020), batched on tensors.

Both take float32 ``B×C×H×W`` in [0, 1] on any device and return a new tensor of the same
shape, dtype and device, in [0, 1]. Every random choice is made per sample (kornia's
``RandAugment`` draws one op sequence per call, which would give a whole batch the same ops)
and drawn from the optional ``torch.Generator``: the same seed gives the same output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audit.errors import invalid_parameter
from audit.ssl.augment.ops import OPS, affine_theta, apply_round
from audit.ssl.augment.tensor import Draw, check_images
from audit.validate import check_float, check_int

MAX_OPS = 10  # more rounds than this only turns every image into noise


def _pixels(pad: float, size: int) -> int:
    return min(int(round(pad * size)), size - 1)  # reflect padding needs pad < size


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Index into a side of length ``n`` as reflect padding (edge not repeated) reads it."""
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def _translate_flip(x: torch.Tensor, flip: torch.Tensor, offset: torch.Tensor, pad: float) -> torch.Tensor:
    """Reflect-pad by ``pad``·size, crop back at per-sample ``offset`` (int64 ``B×2``, rows and
    columns in [0, 2·pad_pixels]) and mirror the columns where ``flip`` (bool ``B``).

    One gather for the whole batch: the padding is never materialised, each output pixel's
    source index is computed (reflection and flip folded in), on the CPU, from ``B×H`` row and
    ``B×W`` column indices."""
    b, c, h, w = x.shape
    ph, pw = _pixels(pad, h), _pixels(pad, w)
    if ph == 0 and pw == 0 and not bool(flip.any()):
        return x.clone()
    ar = torch.arange(w)
    rows = _reflect(offset[:, :1] - ph + torch.arange(h), h)  # B×H
    cols = _reflect(offset[:, 1:] - pw + torch.where(flip.view(-1, 1), (w - 1) - ar, ar), w)  # B×W
    index = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).to(x.device)
    return torch.gather(x.reshape(b, c, h * w), 2, index.expand(b, c, h * w)).view(b, c, h, w)


def _draw_weak(draw: Draw, b: int, h: int, w: int, flip: bool, pad: float) -> tuple[torch.Tensor, torch.Tensor]:
    flips = (draw.uniform(b) < 0.5) & flip  # drawn even when flip=False: the stream stays aligned
    u = draw.uniform(b, 2)
    span = torch.tensor([2 * _pixels(pad, h) + 1, 2 * _pixels(pad, w) + 1])
    offset = torch.minimum((u * span).long(), span - 1)
    return flips, offset


@dataclass(frozen=True)
class Weak:
    """Random horizontal flip + random translation (reflect-pad, random crop back), per sample.

    ``x``: float32 ``B×C×H×W`` in [0, 1], any device → same shape/dtype/device, in [0, 1].
    """

    flip: bool = True  # False for digit-like data, where a mirror image changes the class
    pad: float = 0.125  # translate by up to 12.5% of the side (4 px at 32), FixMatch's weak aug

    def __post_init__(self) -> None:
        if not isinstance(self.flip, bool):
            raise invalid_parameter("flip", "Weak", "a bool", self.flip)
        check_float("Weak", "pad", self.pad, 0.0, 0.5, high_open=True)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = check_images(x, "Weak").shape
        flips, offset = _draw_weak(Draw(generator), b, h, w, self.flip, self.pad)
        return _translate_flip(x, flips, offset, self.pad)


@dataclass(frozen=True)
class StrongParams:
    """Every random choice of one :class:`Strong` call (CPU tensors), for logging and tests."""

    flip: torch.Tensor  # bool B
    offset: torch.Tensor  # int64 B×2, crop offset (rows, columns) into the padded image
    ops: torch.Tensor  # int64 B×n_ops, indices into audit.ssl.augment.ops.OPS, applied in order
    level: torch.Tensor  # float32 B×n_ops in [0, 1], 1 = strongest
    sign: torch.Tensor  # float32 B×n_ops of ±1, direction of the symmetric ops
    cutout_size: torch.Tensor  # float32 B, side as a fraction of the image side
    cutout_center: torch.Tensor  # float32 B×2 in [0, 1), (row, column) as fractions


@dataclass(frozen=True)
class Strong:
    """Weak augmentation, then RandAugment with ``n_ops`` ops drawn per sample from
    :data:`~audit.ssl.augment.ops.OPS` (with replacement), then Cutout filled with ``fill``.

    ``x``: float32 ``B×C×H×W`` in [0, 1], any device → same shape/dtype/device, in [0, 1].
    """

    n_ops: int = 2  # FixMatch's RandAugment applies two ops per image
    magnitude: int | None = None  # 0..10; None: a uniform random level per op (FixMatch's RA variant)
    cutout: float = 0.5  # Cutout side uniform in [0, cutout]·side, as in FixMatch; 0 disables it
    flip: bool = True  # as Weak.flip
    pad: float = 0.125  # as Weak.pad
    fill: float = 0.5  # grey for pixels moved in by Rotate/Shear/Translate and for Cutout (PIL's 128)

    def __post_init__(self) -> None:
        check_int("Strong", "n_ops", self.n_ops, 0, MAX_OPS)
        m = self.magnitude
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= 10):
            raise invalid_parameter("magnitude", "Strong", "None or an int in [0, 10]", m)
        check_float("Strong", "cutout", self.cutout, 0.0, 1.0)
        if not isinstance(self.flip, bool):
            raise invalid_parameter("flip", "Strong", "a bool", self.flip)
        check_float("Strong", "pad", self.pad, 0.0, 0.5, high_open=True)
        check_float("Strong", "fill", self.fill, 0.0, 1.0)

    def sample(self, batch: int, height: int, width: int, generator: torch.Generator | None = None) -> StrongParams:
        """Draw the parameters of one call for ``batch`` images of ``height``×``width``."""
        draw = Draw(generator)
        flips, offset = _draw_weak(draw, batch, height, width, self.flip, self.pad)
        ops = draw.integers(len(OPS), batch, self.n_ops)
        level = draw.uniform(batch, self.n_ops)
        if self.magnitude is not None:
            level = torch.full_like(level, self.magnitude / 10.0)
        sign = torch.where(draw.uniform(batch, self.n_ops) < 0.5, -1.0, 1.0)
        # Cutout draws come last and always happen: cutout=0 vs 0.5 differ only in the patch.
        cutout_size = draw.uniform(batch) * self.cutout
        cutout_center = draw.uniform(batch, 2)
        return StrongParams(flips, offset, ops, level, sign, cutout_size, cutout_center)

    @torch.no_grad()
    def apply(self, x: torch.Tensor, params: StrongParams) -> torch.Tensor:
        """Apply drawn ``params`` to float32 ``B×C×H×W`` in [0, 1]."""
        b, _, h, w = check_images(x, "Strong").shape
        out = _translate_flip(x, params.flip, params.offset, self.pad)
        where = torch.arange(b)  # out[j] is image where[j]: apply_round sorts by op
        n_ops = params.ops.shape[1]
        # The warp matrices of every round in one call (its fixed cost is most of its time).
        theta = affine_theta(params.ops.reshape(-1), params.level.reshape(-1), params.sign.reshape(-1),
                             h, w).view(b, n_ops, 2, 3)
        for r in range(n_ops):
            out, order = apply_round(out, params.ops[where, r], params.level[where, r],
                                     params.sign[where, r], self.fill, theta[where, r])
            where = where[order]
        out = _cutout(out, params.cutout_size[where], params.cutout_center[where], self.fill)
        if n_ops:
            out = out.index_select(0, torch.argsort(where).to(out.device))
        return out

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = check_images(x, "Strong").shape
        return self.apply(x, self.sample(b, h, w, generator))


def _cutout(x: torch.Tensor, size: torch.Tensor, center: torch.Tensor, fill: float) -> torch.Tensor:
    """Set a ``size``·H × ``size``·W patch centred at ``center``·(H, W) (clipped at the border)
    to ``fill``, per sample; ``x`` is modified in place and returned."""
    b, _, h, w = x.shape
    side_h = torch.round(size * h).long()
    side_w = torch.round(size * w).long()
    top = (center[:, 0] * h).long() - side_h // 2
    left = (center[:, 1] * w).long() - side_w // 2
    rows = torch.arange(h)
    cols = torch.arange(w)
    in_rows = (rows >= top[:, None]) & (rows < (top + side_h)[:, None])  # B×H
    in_cols = (cols >= left[:, None]) & (cols < (left + side_w)[:, None])  # B×W
    # A 0/1 float patch from an outer product, then x·(1 − patch) + fill·patch: exact (x·1 + 0 and
    # x·0 + fill) and a few times faster on CPU than a boolean mask with masked_fill_ or lerp_.
    patch = (in_rows.to(x.dtype)[:, None, :, None] * in_cols.to(x.dtype)[:, None, None, :]).to(x.device)
    x.mul_(1.0 - patch)
    return x.add_(patch * fill) if fill else x
