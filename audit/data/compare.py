"""Checks a user expects when a labeled set is scanned with a pool: do they look alike?

A bridge starts at a labeled image x' and its members share x''s native size (paper 3); the scan
brings the labeled set to the pool's working size, and matches x' to a bridge's end only when
x' went through the same map as the bridge (same native size, see ``readers.resolution``). A
labeled set of another native size or colour mode is therefore worth a warning: its images are
resized or converted by a map the pool's images did not go through.
"""

from __future__ import annotations

from audit.data.imageset import ImageSet


def _major(s: ImageSet) -> str | None:
    sizes = s.summary.get("native_sizes") or []
    return sizes[0]["size"] if sizes else None


def _colour(s: ImageSet) -> str | None:
    mix = s.summary.get("native_colour")
    if not mix:
        return None
    gray, colour = mix.get("gray", 0), mix.get("colour", 0)
    return "gray" if colour == 0 else "colour" if gray == 0 else "mixed"


def compare_labeled(pool: ImageSet, labeled: ImageSet) -> tuple[str, ...]:
    """Warnings (one line each) when ``labeled``'s native size or colour differs from ``pool``'s;
    empty when they agree or a set carries no summary (e.g. built in memory)."""
    out = []
    p, q = _major(pool), _major(labeled)
    if p and q and p != q:
        work = "×".join(str(v) for v in pool.shape[:2])
        out.append(f"the labeled images are natively {q.replace('x', '×')} (most common), the pool's "
                   f"{p.replace('x', '×')}: both are brought to {work} by different maps, so a bridge's source is "
                   "matched only if the attacker resized it the same way")
    pc, qc = _colour(pool), _colour(labeled)
    if pc and qc and pc != qc and "mixed" not in (pc, qc):
        out.append(f"the labeled images are {qc}, the pool's {pc}: "
                   + ("gray labeled images are replicated to 3 channels" if qc == "gray" else
                      "colour labeled images are converted to gray (luma)"))
    return tuple(out)
