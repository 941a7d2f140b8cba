"""CSV report: one row per scanned image, cleanlab's column convention.

Columns: ``id``, then for every kind (kinds of ``result.scores`` in order, then kinds that only
appear in findings): ``is_<kind>_issue`` (``True`` when the image is a member of any finding of
that kind, whatever its severity: a near-duplicate group at ``info`` still marks its members) and
``<kind>_score`` (the detector's per-image score, higher = more suspicious; empty where NaN or
where the detector has no per-image score).

Ids are shown as in every human-facing report (``audit.report.text.printable``): control and bidi
characters, and the undecodable bytes of non-UTF-8 names, as visible escapes (``\\x0d``,
``\\u202e``, ``\\udcff``), so a carriage return in a name can never start a row a spreadsheet would
read. The exact ids are in the JSON report.

Formula injection: spreadsheet programs execute cells that start with ``=``, ``+``, ``-``, ``@``
(and tab / carriage return), some after leading spaces or at the start of a line inside the
cell. Scraped file names are attacker-controlled, so such an id is written with a leading ``'``
(OWASP's recommendation); strip one leading ``'`` to recover the shown id. Numeric columns are
ours and are never altered.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

from audit.atomic import write_atomic
from audit.findings import AuditResult
from audit.report.text import printable

# = + - @ at the start, after leading whitespace, or at the start of a line inside the cell; or a
# cell that starts with a tab / line break
_FORMULA = re.compile(r"(?:^|[\r\n])\s*[=+\-@]|^[\t\r\n]")


def safe_cell(text: str) -> str:
    """Neutralise a spreadsheet formula: prefix ``'`` when a line of ``text`` starts (after
    whitespace) with = + - @, or ``text`` starts with tab / CR / LF."""
    return "'" + text if _FORMULA.search(text) else text


def csv_kinds(result: AuditResult) -> list[str]:
    kinds = list(result.scores)
    for f in result.findings:
        if f.kind not in kinds:
            kinds.append(f.kind)
    return kinds


def rows(result: AuditResult) -> list[dict]:
    """The per-image table as a list of dicts (pandas: ``pd.DataFrame(rows(result))``): ``id``
    (exact), then per kind ``is_<kind>_issue`` (bool) and ``<kind>_score`` (float, None where NaN
    or absent), in the CSV's column order."""
    kinds = csv_kinds(result)
    members: dict[str, set[str]] = {k: set() for k in kinds}
    for f in result.findings:
        members[f.kind].update(m.id for m in f.members)
    out = []
    for row, image_id in enumerate(result.ids):
        cells: dict = {"id": image_id}
        for k in kinds:
            cells[f"is_{k}_issue"] = image_id in members[k]
            cells[f"{k}_score"] = _score(result, k, row)
        out.append(cells)
    return out


def dumps(result: AuditResult) -> str:
    table = rows(result)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id"] + [c for k in csv_kinds(result) for c in (f"is_{k}_issue", f"{k}_score")])
    for cells in table:
        w.writerow([safe_cell(printable(cells.pop("id")))]
                   + ["" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v) for v in cells.values()])
    return buf.getvalue()


def write_csv(result: AuditResult, path: str | Path) -> Path:
    """Write the per-image CSV to ``path`` atomically; returns the path written."""
    return write_atomic(path, dumps(result))


def _score(result: AuditResult, kind: str, row: int) -> float | None:
    arr = result.scores.get(kind)
    if arr is None or row >= len(arr):
        return None
    x = float(arr[row])
    return None if math.isnan(x) or math.isinf(x) else x
