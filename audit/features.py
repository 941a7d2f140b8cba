"""Features for the static scan (paper 5.2): raw pixels and one linear projection of them.

The colinearity test of 5.2 lives in pixel space: ``x_a = (1-a)·x' + a·x*`` rounded to uint8.
A *linear* map keeps colinear points colinear, so candidates are proposed in a low-dimensional
projection and confirmed in full pixel space.

Why PCA rather than a seeded Gaussian projection: the bridge direction ``x* - x'`` is a
difference of two natural images and lies almost entirely in the top principal subspace (64
components keep 88% of Fashion-MNIST's variance), so a bridge's consecutive points stay as close
as they really are, while natural neighbours keep most of their distance. A Gaussian map to 64
dims distorts every distance by about ±18% (sqrt(2/64)) in both directions, which reorders
nearest neighbours and loses recall; it also keeps the isotropic rounding noise at full weight
relative to the signal, where PCA drops ~92% of it. Projection cost is the same.

Shape contract: images uint8 ``N×H×W×C``; pixel rows uint8 ``N×D`` (``D = H·W·C``, a view, no
copy); projected float32 ``N×d``, computed in batches so no float32 ``N×D`` copy is ever held.

Memory at scale (1M 32×32×3 images = 3.07 GB of uint8): the rows may be a read-only memory map
of an ``.npy`` (see ``audit.data.readers.arrays``). One streaming pass computes the projection
and each row's pixel std together; after each batch the pass drops the mapped pages it touched
(:func:`release_pages`), so the process never holds the whole pool resident: the kernel keeps
the file in its page cache, and later random reads (colinearity confirmation) fault in only
the rows they need.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from audit.errors import invalid_parameter

PCA_FULL_EIGH_MAX_DIM = 4096  # above this, a D×D covariance is too big: use randomized SVD
_BATCH_BYTES = 32 << 20  # float32 bytes converted per projection batch: 2.7k rows of 32×32×3


@dataclass(frozen=True, eq=False)
class Projection:
    """``y = (x - mean) @ components``: mean float32 ``D``, components float32 ``D×d`` with
    orthonormal columns (so projected distances never exceed pixel distances)."""

    mean: np.ndarray
    components: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.components.shape[1])

    @property
    def input_dim(self) -> int:
        return int(self.components.shape[0])

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """uint8 or float ``N×D`` → float32 ``N×d``, in batches of float32 conversion."""
        return self.transform_with_std(rows)[0]

    def transform_with_std(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(projected float32 N×d, per-row pixel std float32 N)`` in one pass over the rows:
        at 1M images each pass over the pixels costs seconds of disk or page-cache reads."""
        n = len(rows)
        out = np.empty((n, self.dim), dtype=np.float32)
        std = np.empty(n, dtype=np.float32)
        step = batch_rows(self.input_dim)
        for s in range(0, n, step):
            x = np.asarray(rows[s : s + step]).astype(np.float32)  # a copy: float input is never modified
            std[s : s + step] = x.std(axis=1)
            x -= self.mean
            out[s : s + step] = x @ self.components
            release_pages(rows)
        return out, std


def fit_projection(rows: np.ndarray, dim: int = 64, sample: int = 10_000, seed: int = 0) -> Projection:
    """PCA of a seeded random sample of the pixel rows (uint8 or float ``N×D``).

    ``dim`` is capped at ``min(D, sample size)``; the fit is deterministic for a given seed."""
    if not isinstance(dim, int) or dim < 1:
        raise invalid_parameter("dim", "fit_projection", "an int >= 1", dim)
    x = np.asarray(rows[sample_rows(len(rows), sample, seed)])
    release_pages(rows)
    return fit_projection_on(x, dim=dim, seed=seed)


def sample_rows(n: int, sample: int, seed: int) -> np.ndarray:
    """int64 sorted indices of the seeded sample :func:`fit_projection` fits on: a sharded scan
    (``audit.engines``) fetches exactly these rows from its workers and fits the same PCA."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, sample), replace=False))


def fit_projection_on(x: np.ndarray, dim: int = 64, seed: int = 0) -> Projection:
    """The PCA of :func:`fit_projection` on its already drawn sample (``S×D``, any real dtype).

    The sample is taken as float32 first, whatever it came as (pixel values are exact in
    float32), so a sharded scan that gathers the sample as float64 fits the very same PCA."""
    x = np.asarray(x, dtype=np.float32)  # never modified
    d_in = x.shape[1]
    mean = x.mean(axis=0, dtype=np.float64)
    k = min(dim, d_in, len(x))
    if d_in <= PCA_FULL_EIGH_MAX_DIM:
        from scipy.linalg import eigh
        from threadpoolctl import threadpool_limits

        # float32 covariance and eigh: half the time of float64 at D = 3072 (2.9 s -> 1.6 s CPU
        # for 10k×3072 on 2 cores) with the top-64 eigenvectors equal to 2e-7; no float64 copy
        # of the sample (63 MB at 10k × 784)
        xc = x - mean.astype(np.float32)
        cov = xc.T @ xc
        del xc
        # only the top k eigenpairs, one BLAS thread: threaded LAPACK spins on a busy 2-core
        # machine (measured 0.13 s single-threaded vs 1-5 s threaded for D = 784)
        with threadpool_limits(limits=1, user_api="blas"):
            _, vecs = eigh(cov, subset_by_index=[d_in - k, d_in - 1])
        comps = vecs[:, ::-1]
    else:
        from sklearn.utils.extmath import randomized_svd

        _, _, vt = randomized_svd(x.astype(np.float64) - mean, n_components=k, random_state=seed)
        comps = vt.T
    return Projection(mean=mean.astype(np.float32), components=np.ascontiguousarray(comps, dtype=np.float32))


@dataclass(frozen=True, eq=False)
class Features:
    """Built once per scan and handed to every detector.

    ``rows``: uint8 ``N×D`` pixel rows (a view of the ImageSet, or a memory-mapped store);
    ``projected``: float32 ``N×d``; ``projection``: the map between them; ``row_std``: float32
    ``N`` pixel std per row (blank-image test), or None to compute it on demand."""

    rows: np.ndarray
    projected: np.ndarray
    projection: Projection
    row_std: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def pixel_std(self) -> np.ndarray:
        """float32 ``N``: each row's pixel std (from the projection pass when it was built)."""
        return self.row_std if self.row_std is not None else row_std(self.rows)

    @cached_property
    def sqnorm(self) -> np.ndarray:
        """float64 ``N``: squared norms of the projected rows, so a line scan over every point
        is two matrix-vector products instead of an ``N×d`` difference array (256 MB at 1M)."""
        out = np.empty(len(self.projected), np.float64)
        for s in range(0, len(out), 65536):
            p = self.projected[s : s + 65536]
            out[s : s + 65536] = np.einsum("ij,ij->i", p, p, dtype=np.float64)
        return out

    def full(self, index: np.ndarray) -> np.ndarray:
        """float32 pixel rows (values in [0, 255]) for the given indices: reads only those rows."""
        return np.asarray(self.rows[np.asarray(index, dtype=np.int64)], dtype=np.float32)


def pixel_rows(images: np.ndarray) -> np.ndarray:
    """uint8 ``N×H×W×C`` → uint8 ``N×D`` without copying when the input is contiguous."""
    return images.reshape(len(images), -1)


def build_features(images: np.ndarray, dim: int = 64, sample: int = 10_000, seed: int = 0) -> Features:
    """Pixel rows + fitted PCA projection + projected rows (+ row std, same pass), for uint8
    ``N×H×W×C`` images (an in-memory array or a read-only memory map)."""
    rows = pixel_rows(images)
    proj = fit_projection(rows, dim=dim, sample=sample, seed=seed)
    projected, std = proj.transform_with_std(rows)
    return Features(rows=rows, projected=projected, projection=proj, row_std=std)


def batch_rows(d: int) -> int:
    """Rows per streaming batch so one float32 batch is ~32 MB (at least 256 rows)."""
    return max(256, _BATCH_BYTES // (4 * max(int(d), 1)))


def row_std(rows) -> np.ndarray:
    """float32 ``N`` pixel std of uint8 ``N×D`` rows, in float32 batches: ``rows.std(axis=1)``
    on the whole array would make a float64 ``N×D`` copy (1.6 GB per 64k rows of 32×32×3)."""
    n = len(rows)
    out = np.empty(n, np.float32)
    step = batch_rows(rows.shape[1])
    for s in range(0, n, step):
        out[s : s + step] = np.asarray(rows[s : s + step], dtype=np.float32).std(axis=1)
        release_pages(rows)
    return out


def release_pages(arr) -> None:
    """Drop the resident pages of the read-only memory map behind ``arr`` (no-op otherwise).

    A streaming pass over a memory-mapped pool would otherwise leave every page it read mapped
    into the process, so resident memory (and max RSS) grows to the file size. The data stays in
    the kernel's page cache; touching a row again costs a minor fault, not a disk read."""
    base = arr
    while base is not None:
        m = getattr(base, "_mmap", None)  # np.memmap keeps its mmap.mmap here
        if isinstance(m, mmap.mmap):
            if getattr(base, "mode", "r") == "c":  # copy-on-write: dropping pages would lose edits
                return
            if hasattr(m, "madvise") and hasattr(mmap, "MADV_DONTNEED") and not m.closed:
                try:
                    m.madvise(mmap.MADV_DONTNEED)
                except (OSError, ValueError):  # a platform that refuses: only memory is at stake
                    pass
            return
        base = getattr(base, "base", None)
