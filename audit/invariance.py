"""A view of the pixels that an adaptive attacker cannot walk past with photometric jitter or small
translations (paper 5.2: "if the adversary inserted examples that applied color-jitter, or small
translations, this defense would no longer be able to identify" them).

Two pieces, both computed from the uint8 pixel rows the scan already holds:

* :func:`invariant_rows`: each image standardised (mean 0, std 64: brightness and contrast, an
  affine change of intensity, cancel), then the magnitude of its 2-D Fourier transform. A
  circular shift only changes the phase, and a shift that keeps the content inside the frame is
  a circular shift of the standardised image (the uniform background wraps around), so such
  images have identical magnitudes. (Zero padding would break this: standardising turns a black
  background into a non-zero constant, and a zero frame would not move with the content.) The
  map is 1-Lipschitz
  (Parseval: ``||F(x)| - |F(y)|| <= |x - y|``), so images close in pixels stay at least as close
  here. Neighbours found in this space are *candidates*: magnitudes forget where things are, so
  unrelated images can look alike.
* :func:`aligned_distance`: the candidates' real distance, the smallest RMS difference of the two
  standardised images (their luminance) over every relative shift up to ``max_shift`` pixels in
  each direction (on the overlap of the two frames, scaled to the full image), computed for all
  shifts at once by Fourier cross-correlation. Two members of a bridge whose points were each shifted by up to
  ``s`` pixels differ by a relative shift of up to ``2s``: pass ``max_shift = 2s``.

Shape contract: rows uint8 ``N×D`` with ``D = H·W·C``; invariant rows float32
``N×(C·Hp·(Wp//2+1))``; distances float32 per pair.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from audit.features import batch_rows, release_pages

_SCALE = 64.0  # the std every image is brought to: uint8-like units, so distances read as pixels
_FLAT = 1.0  # a std below this is a blank image: divided by this instead (no amplified noise)
_WORKERS = -1  # scipy.fft threads: all cores (float32 transforms stay float32, unlike numpy.fft)


def standardise(rows: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """float32 ``N×C×H×W``: each image minus its mean, times ``64 / max(std, 1)``."""
    h, w, c = shape
    x = np.asarray(rows, dtype=np.float32).reshape(len(rows), h, w, c).transpose(0, 3, 1, 2)
    x = x - x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    return x * (_SCALE / np.maximum(std, _FLAT))


def invariant_rows(rows: np.ndarray, shape: tuple[int, int, int], pad: int = 0) -> np.ndarray:
    """float32 |FFT| of the standardised images (zero-padded by ``pad`` on each side, see the
    module docstring for why the scan uses none), flattened."""
    h, w, _ = shape
    out = []
    step = batch_rows(int(np.prod(shape)) * 4)
    for s in range(0, len(rows), step):
        x = standardise(rows[s : s + step], shape)
        f = np.abs(sfft.rfft2(x, s=(h + 2 * pad, w + 2 * pad), workers=_WORKERS))
        f /= np.sqrt(h * w)  # Parseval: distances between magnitudes never exceed pixel distances
        out.append(f.reshape(len(f), -1))
        release_pages(rows)
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out)


def aligned_distance(rows: np.ndarray, shape: tuple[int, int, int], a: np.ndarray, b: np.ndarray,
                     max_shift: int, chunk: int = 2048) -> np.ndarray:
    """float32 distance between standardised images ``a[i]`` and ``b[i]`` at their best relative
    shift (each coordinate within ``±max_shift``), ``sqrt(H·W · mean squared difference on the
    overlap)``: the (luminance) pixel distance when the best shift is 0.

    Colour images are compared on their luminance: a shift moves every channel alike, and one
    channel keeps a colour pool's cost at a gray one's. All shifts at once: with zero-padded
    transforms, the overlap sums of ``A²``, ``B²`` and ``A·B`` and the overlap size are
    cross-correlations. Pairs are taken in order of their first image, and each distinct image
    of a chunk is transformed once."""
    h, w, c = shape
    m = int(max_shift)
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    out = np.empty(len(a), np.float32)
    hp, wp = h + m, w + m  # linear (not circular) correlation for every shift up to m
    kw = {"s": (hp, wp), "workers": _WORKERS}
    f1 = sfft.rfft2(np.ones((h, w), np.float32), **kw)
    dy = np.r_[0 : m + 1, hp - m : hp]  # shift offsets in the correlation output, -m..m wrapped
    dx = np.r_[0 : m + 1, wp - m : wp]
    count = np.maximum(sfft.irfft2(f1 * np.conj(f1), **kw)[np.ix_(dy, dx)], 1.0)
    order = np.argsort(a, kind="stable")
    for s in range(0, len(a), chunk):
        sel = order[s : s + chunk]
        nodes, inverse = np.unique(np.concatenate([a[sel], b[sel]]), return_inverse=True)
        x = _luminance(standardise(rows[nodes], shape))
        fx, fx2 = sfft.rfft2(x, **kw), sfft.rfft2(x * x, **kw)
        ia, ib = inverse[: len(sel)], inverse[len(sel) :]
        # overlap sums of A² + B² - 2AB for every shift, one inverse transform per pair
        spec = fx2[ia] * np.conj(f1) + f1 * np.conj(fx2[ib]) - 2.0 * fx[ia] * np.conj(fx[ib])
        sq = sfft.irfft2(spec, **kw)[:, dy][:, :, dx] / count
        out[sel] = np.sqrt(np.maximum(sq.reshape(len(sq), -1).min(axis=1), 0.0) * (h * w))
        release_pages(rows)  # random reads of a memory-mapped pool must not leave it all resident
    return out


def _luminance(x: np.ndarray) -> np.ndarray:
    """N×H×W from standardised N×C×H×W: ITU-R 601 luma for colour, the channel itself for gray."""
    if x.shape[1] == 1:
        return x[:, 0]
    return np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), x, axes=([0], [1]))
