"""Figures of the dynamics report, as PNG bytes for ``audit.report.write_html``'s hooks.

* :func:`score_histogram`: paper Figure 7, the frequency of the score over the unlabeled pool
  with the flagged region shaded (and, when ground truth is given, poison drawn apart);
* :func:`instance_heatmap`: paper Figure 5, each member's probability of the instance's final
  class at every record, members in the order they flipped (the staircase of a bridge).

Matplotlib is used through its object API with the Agg canvas (``Figure`` + ``FigureCanvasAgg``)
rather than ``pyplot``/``matplotlib.use``: no global backend switch, no figure registry to leak,
safe in a library imported by a notebook.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

DPI = 100


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def score_histogram(suspicion: np.ndarray, threshold: float, *, score: str = "dynamics",
                    positive: np.ndarray | None = None, bins: int = 60) -> bytes:
    """Histogram of the per-image suspicion (float N, log scale, higher = more suspicious) with
    the region above ``threshold`` shaded as flagged. ``positive`` (bool N, e.g. poison from a
    manifest) is stacked in another colour. Non-finite values are left out (and counted)."""
    from matplotlib.figure import Figure

    s = np.asarray(suspicion, dtype=np.float64)
    finite = np.isfinite(s)
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    vals = s[finite]
    if len(vals):
        hi = max(vals.max(), threshold if np.isfinite(threshold) else vals.max())
        lo = vals.min()
        edges = np.linspace(lo, hi + 1e-9 + 1e-6 * abs(hi), bins + 1)
        if positive is not None:
            pos = np.asarray(positive, bool)[finite]
            ax.hist([vals[~pos], vals[pos]], bins=edges, stacked=True, color=["#607d8b", "#c62828"],
                    label=[f"clean ({int((~pos).sum())})", f"poison ({int(pos.sum())})"])
        else:
            ax.hist(vals, bins=edges, color="#607d8b", label=f"unlabeled images ({len(vals)})")
        if np.isfinite(threshold):
            ax.axvspan(threshold, max(hi, threshold) + (edges[1] - edges[0]), color="#c62828", alpha=0.12,
                       label=f"flagged ({int((vals > threshold).sum())})")
            ax.axvline(threshold, color="#c62828", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel(f"{score} suspicion (log scale; higher = more suspicious)")
    ax.set_ylabel("images")
    if (~finite).any():
        ax.set_title(f"{int((~finite).sum())} images without a finite score not shown", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    return _png(fig)


def instance_heatmap(trajectory: np.ndarray, steps: Sequence[float], *, final_class: int | str,
                     labels: Sequence[str] | None = None, max_rows: int = 80, order: str = "flip order") -> bytes:
    """Heatmap of ``trajectory`` (members × records, probability of ``final_class``, rows in
    ``order``) against the training step of each record; ``labels`` name the rows. A str
    ``final_class`` is the class's name."""
    from matplotlib.figure import Figure

    t = np.asarray(trajectory, dtype=np.float64)[:max_rows]
    m, k = t.shape
    fig = Figure(figsize=(7, 1.2 + 0.16 * m))
    ax = fig.add_subplot()
    st = np.asarray(steps, dtype=np.float64)
    extent = (st[0], st[-1], m - 0.5, -0.5) if k > 1 and st[-1] > st[0] else None
    im = ax.imshow(t, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest", extent=extent)
    ax.set_xlabel("training step" if extent else "record")
    ax.set_ylabel(f"member ({order})")
    if labels is not None and m <= 30:
        ax.set_yticks(range(m))
        ax.set_yticklabels([str(x)[:18] for x in list(labels)[:m]], fontsize=6)
    what = final_class if isinstance(final_class, str) else f"class {final_class}"
    fig.colorbar(im, ax=ax, label=f"P({what})", fraction=0.04)
    return _png(fig)
