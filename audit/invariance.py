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
from threadpoolctl import threadpool_limits

from audit.features import batch_rows, release_pages
from audit.threads import MAX_THREADS, cpu_count, in_threads

_SCALE = 64.0  # the std every image is brought to: uint8-like units, so distances read as pixels
_FLAT = 1.0  # a std below this is a blank image: divided by this instead (no amplified noise)
_WORKERS = -1  # scipy.fft threads: all cores (float32 transforms stay float32, unlike numpy.fft)
_SPECTRA_BYTES = 16 << 20  # one chunk array of pair spectra, summed over the threads (see aligned_distance)
_REFINE = 0.25  # aligned distances below this × sqrt(H·W) (RMS 0.25 on the std-64 scale): measured again in float64


def standardise(rows: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """float32 ``N×C×H×W``: each image minus its mean, times ``64 / max(std, 1)``."""
    h, w, c = shape
    x = np.array(rows, dtype=np.float32).reshape(len(rows), -1)  # a contiguous copy, changed in place
    x -= x.mean(axis=1, keepdims=True)
    std = np.sqrt(np.einsum("ij,ij->i", x, x) / max(x.shape[1], 1))[:, None]
    x *= _SCALE / np.maximum(std, _FLAT)
    return x.reshape(len(rows), h, w, c).transpose(0, 3, 1, 2)


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
    shift (each coordinate within ``±max_shift``, and less than the image's side), ``sqrt(H·W ·
    mean squared difference on the overlap)``: the (luminance) pixel distance when the best shift
    is 0.

    Colour images are compared on their luminance: a shift moves every channel alike, and one
    channel keeps a colour pool's cost at a gray one's. All shifts at once: the overlap sums of
    ``A·B`` are one zero-padded cross-correlation per pair (one inverse transform); the overlap
    sums of ``A²`` and ``B²`` are box sums per image (two matrix products over a chunk's images),
    never per pair.
    Pairs are taken in an order that keeps linked images together (reverse Cuthill-McKee of the
    pair graph: a chunk's pairs share their images, and each distinct image of a chunk is
    standardised and transformed once), chunks in threads, each with one BLAS thread. 60k
    Fashion-MNIST path links (103k pairs, 2 cores): 0.8 s wall, against 1.8 s with three
    spectra per pair in file order."""
    h, w, _ = shape
    m = int(max_shift)
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    out = np.empty(len(a), np.float32)
    if len(a) == 0:
        return out
    hp, wp = h + m, w + m  # linear (not circular) correlation for every shift up to m
    kw = {"s": (hp, wp), "workers": 1}
    uy = np.r_[0 : m + 1, -m:0]
    ux = uy[np.abs(uy) < w]
    uy = uy[np.abs(uy) < h]  # a shift of a whole side leaves no overlap
    dy, dx = uy % hp, ux % wp  # shift u at offset u (mod the padded size) of the correlation

    def window(u: np.ndarray, n: int, sign: int) -> np.ndarray:
        # row (or column) mask of each shift's overlap, in the first image (+1) or the second (-1)
        lo, hi = np.maximum(0, sign * u), np.minimum(n, n + sign * u)
        i = np.arange(n)
        return ((i >= lo[:, None]) & (i < hi[:, None])).astype(np.float64)

    ya, yb, xa, xb = window(uy, h, 1), window(uy, h, -1), window(ux, w, 1).T, window(ux, w, -1).T
    count = ya.sum(axis=1)[:, None] * xa.sum(axis=0)[None, :]

    def one(sel: np.ndarray, dtype: type) -> None:
        nodes, inverse = np.unique(np.concatenate([a[sel], b[sel]]), return_inverse=True)
        x = _luminance(standardise(rows[nodes], shape)).astype(dtype, copy=False)
        ea, eb = _energies(x, ya, xa, dtype), _energies(x, yb, xb, dtype)  # on each shift's overlap
        fx = sfft.rfft2(x, **kw)
        ia, ib = inverse[: len(sel)], inverse[len(sel) :]
        prod, other = fx[ia], fx[ib]  # gathered copies: conjugated and multiplied in place
        prod *= np.conj(other, out=other)
        cross = sfft.irfft2(prod, overwrite_x=True, **kw)[:, dy][:, :, dx]
        sq = (ea[ia] + eb[ib] - 2.0 * cross) / count
        out[sel] = np.sqrt(np.maximum(sq.reshape(len(sq), -1).min(axis=1), 0.0) * (h * w))
        release_pages(rows)  # random reads of a memory-mapped pool must not leave it all resident

    threads = min(cpu_count(), MAX_THREADS)

    def run(order: np.ndarray, dtype: type) -> None:
        # chunks in threads (each writes its own rows of out), each transform in one thread: a
        # chunk's batch is too small to split well. A chunk holds about eight arrays of one
        # spectrum per pair: pairs per chunk are capped so that each array stays within
        # _SPECTRA_BYTES over all threads, whatever the image size (28×28: ~1,800 pairs)
        per_pair = hp * (wp // 2 + 1) * np.dtype(dtype).itemsize * 2
        step = int(np.clip(_SPECTRA_BYTES // (threads * per_pair), 16, chunk))
        chunks = [order[s : s + step] for s in range(0, len(order), step)]
        if len(chunks) == 1 or threads == 1:  # serial (small calls: growth, diameters): BLAS keeps its threads
            for sel in chunks:
                one(sel, dtype)
            return
        with threadpool_limits(limits=1, user_api="blas"):  # the chunks are the parallelism
            in_threads(lambda sel: one(sel, dtype), chunks, threads)

    run(_local_order(a, b, chunk), np.float32)
    # A² + B² - 2AB cancels on (shifted) copies, leaving float32 noise of ~1 (the energies are
    # 64²·H·W): pairs that close are measured again in float64, so copies read as copies
    close = np.flatnonzero(out < _REFINE * np.sqrt(h * w))
    if len(close):
        run(close, np.float64)
    return out


def _energies(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, dtype: type) -> np.ndarray:
    """N×Sy×Sx sums of ``x²`` (N×H×W) over each shift's overlap, ``rows @ x² @ cols`` for every
    image as two matrix products over the whole batch (stacked per-image products cost 2x)."""
    n, h, w = x.shape
    x2 = np.square(x, dtype=dtype)
    by_col = (x2.reshape(n * h, w) @ cols.astype(dtype)).reshape(n, h, -1)  # N×H×Sx
    both = by_col.transpose(0, 2, 1).reshape(-1, h) @ rows.T.astype(dtype)  # (N·Sx)×Sy
    return both.reshape(n, cols.shape[1], rows.shape[0]).transpose(0, 2, 1)


def _local_order(a: np.ndarray, b: np.ndarray, chunk: int) -> np.ndarray:
    """Pair order in which consecutive pairs share images: by the reverse Cuthill-McKee position
    of their earlier image (a bandwidth-reducing order of the graph of the pairs' images). One
    chunk's worth of pairs is taken as given."""
    if len(a) <= chunk:
        return np.arange(len(a))
    from scipy import sparse
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inverse[: len(a)], inverse[len(a) :]
    n = len(nodes)
    g = sparse.coo_matrix((np.ones(len(a), np.int8), (ia, ib)), shape=(n, n)).tocsr()
    pos = np.empty(n, np.int64)
    pos[reverse_cuthill_mckee((g + g.T).tocsr(), symmetric_mode=True)] = np.arange(n)
    return np.argsort(np.minimum(pos[ia], pos[ib]), kind="stable")


def _luminance(x: np.ndarray) -> np.ndarray:
    """N×H×W from standardised N×C×H×W: ITU-R 601 luma for colour, the channel itself for gray."""
    if x.shape[1] == 1:
        return x[:, 0]
    return np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), x, axes=([0], [1]))
