"""Names are data: control characters, ANSI sequences, bidi overrides and non-UTF-8 bytes in ids
reach every human-facing report as visible escapes (never raw), the JSON keeps the exact id, and
what the reader skipped and noted is shown."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest
from rich.console import Console

from audit.data.imageset import ImageSet, Unreadable
from audit.findings import AuditResult, Finding, Member, Severity
from audit.report import github_annotations, render_console, render_html, write_csv, write_html, write_json
from audit.report.csv import safe_cell
from audit.report.text import printable

CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
FORGED = "x.png\n\x1b[32mgate passed (fail on: error)\x1b[0m"  # prints a fake verdict line
BIDI = "report\u202egnp.exe"  # displays as "reportexe.png"
RAW = os.fsdecode(b"caf\xe9-\xff.png")  # a Latin-1 file name: not UTF-8, surrogateescape'd
C1 = "csi\x9b31m-del\x7f-nul\x00.png"
IDS = (f"{CLEAR}a.png", FORGED, BIDI, RAW, C1, "plain.png")
RAW_BYTES = {"\x1b", "\u202e", "\x9b", "\x7f", "\x00", "\udce9", "\udcff"}


@pytest.fixture()
def hostile(fashion200) -> tuple[AuditResult, ImageSet]:
    members = tuple(Member(i, k, alpha=k / 5) for k, i in enumerate(IDS))
    finding = Finding("bridge", Severity.ERROR, 0.9, members, f"6 images interpolate between {IDS[0]} and {IDS[1]}",
                      evidence={"endpoint": IDS[2]})
    result = AuditResult(
        tool="scan", root=f"pool{CLEAR}", ids=IDS, findings=(finding,),
        unreadable=(Unreadable(f"bad{CLEAR}.png", f"truncated\n{FORGED}"),),
        scores={"bridge": np.linspace(0, 1, len(IDS))},
        skipped=(Unreadable(".hidden/x.png", "hidden entry"), Unreadable(f"link{RAW}", "directory symlink"),
                 Unreadable(".a.png", "hidden entry"), Unreadable(".b.png", "hidden entry")),
        notes=("resized 12 of 300 images to 28×28", f"converted {RAW} from CMYK"),
        inputs={"sizes": {"28x28": 288, "32x32": 12}, "resized": 0, "working_size": [28, 28]},
    )
    images = ImageSet(images=np.ascontiguousarray(fashion200.images[: len(IDS)]), ids=IDS)
    return result, images


def _console(result, **kw) -> str:
    buf = io.StringIO()
    render_console(result, Console(file=buf, width=300, color_system=None), **kw)
    return buf.getvalue()


def test_printable_escapes_exactly_the_unsafe_characters():
    assert printable(FORGED) == "x.png\\x0a\\x1b[32mgate passed (fail on: error)\\x1b[0m"
    assert printable(BIDI) == "report\\u202egnp.exe"
    assert printable(RAW) == "caf\\udce9-\\udcff.png"
    assert printable(C1) == "csi\\x9b31m-del\\x7f-nul\\x00.png"
    assert printable("\u2066\u2069\u200b\u200f\u2028\ufeff\u061c") == "\\u2066\\u2069\\u200b\\u200f\\u2028\\ufeff\\u061c"
    kept = "Ünïcødé 名前 😀 café [red]x[/red] 100% a\\x1b"  # letters, emoji, markup, a literal backslash
    assert printable(kept) == kept


def test_console_cannot_be_cleared_or_forged(hostile):
    result, _ = hostile
    out = _console(result, fail_on="error")
    assert not RAW_BYTES & set(out), "a raw control, bidi or surrogate character reached the terminal"
    assert "\\x1b[2J\\x1b[Ha.png" in out and "report\\u202egnp.exe" in out and "caf\\udce9-\\udcff.png" in out
    lines = out.splitlines()
    assert not any(line.lstrip().startswith("gate passed") for line in lines)  # only the real verdict, failed
    assert "GATE FAILED" in out


def test_console_shows_skipped_notes_and_input(hostile):
    result, _ = hostile
    out = _console(result)
    assert "6 images scanned, 1 unreadable, 4 skipped, 1 findings" in out
    assert "skipped: .hidden/x.png: hidden entry" in out
    assert "skipped: link" + "caf\\udce9-\\udcff.png: directory symlink" in out
    assert "... and 1 more skipped entries" in out and ".b.png" not in out  # a few examples, then a count
    assert "note: resized 12 of 300 images to 28×28" in out and "note: converted caf\\udce9" in out
    assert "input: sizes: 28x28 288, 32x32 12; working_size: 28, 28" in out  # zero counts left out
    long = AuditResult(tool="scan", root="p", ids=("a",), findings=(), inputs={f"k{i}": "v" * 30 for i in range(20)})
    line = next(line for line in _console(long).splitlines() if "input:" in line)
    assert line.endswith("; … (all in the JSON report)") and len(line) < 300
    clean = AuditResult(tool="scan", root="p", ids=("a",), findings=())
    assert "skipped" not in _console(clean) and "note:" not in _console(clean)


def test_github_annotations_escape_and_count_what_was_skipped(hostile):
    result, _ = hostile
    out = github_annotations(result, file_root="pool")
    assert not RAW_BYTES & set(out)
    lines = out.splitlines()
    assert len(lines) == 3  # the finding, the unreadable file, the skipped notice: one line each
    assert "\\x1b[2J\\x1b[Ha.png" in lines[0] and "title=bridge" in lines[0]
    assert lines[2].startswith("::notice title=skipped entries::4 entries skipped on purpose (not scanned): "
                               ".hidden/x.png (hidden entry); link")
    assert lines[2].endswith("; +1 more. See the JSON report.")


def test_html_writes_any_name_and_shows_it_escaped(hostile, tmp_path):
    result, images = hostile
    path = write_html(result, images, tmp_path / "r.html", fail_on="error")  # raised UnicodeEncodeError before
    page = path.read_text(encoding="utf-8")
    assert not RAW_BYTES & set(page)
    assert "report\\u202egnp.exe" in page and "caf\\udce9-\\udcff.png" in page
    assert page.count('<img src="data:image/png') == len(IDS)  # every thumbnail still found by its exact id
    assert "<b>skipped</b>: 4" in page and "Skipped on purpose (not scanned) (4)" in page
    assert "<li>resized 12 of 300 images to 28×28</li>" in page
    assert "<dt>sizes</dt><dd>{&quot;28x28&quot;: 288, &quot;32x32&quot;: 12}</dd>" in page
    assert render_html(AuditResult(tool="scan", root="p", ids=(), findings=())).count("Skipped on purpose") == 0


def test_csv_shows_names_escaped_and_guards_formulas(hostile, tmp_path):
    result, _ = hostile
    text = write_csv(result, tmp_path / "r.csv").read_text(encoding="utf-8")
    assert not RAW_BYTES & set(text) and "\r" not in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + len(IDS)  # no name can start a row of its own
    assert [r[0] for r in rows[1:]] == [printable(i) for i in IDS]
    for bad in (" =1+1", "\u3000@SUM(A1)", "x\r=HYPERLINK(\"http://evil\")", "x\n-1", "\r=1"):
        assert safe_cell(bad) == "'" + bad, bad
    for fine in ("a-b.png", "ok=1", "x@y.png"):
        assert safe_cell(fine) == fine


def test_json_keeps_exact_ids_and_non_utf8_names_round_trip(hostile, tmp_path):
    result, _ = hostile
    path = write_json(result, tmp_path / "r.json")
    raw = path.read_bytes()
    assert raw.isascii() and b"\\udce9" in raw and b"\\u001b[2J" in raw  # escapes, never raw bytes
    doc = json.loads(raw)
    assert tuple(m["id"] for m in doc["findings"][0]["members"]) == IDS
    assert os.fsencode(doc["findings"][0]["members"][3]["id"]) == b"caf\xe9-\xff.png"  # the original bytes
    assert doc["n_skipped"] == 4 and doc["skipped"][1] == {"path": f"link{RAW}", "reason": "directory symlink"}
    assert doc["notes"] == list(result.notes) and doc["input"]["sizes"] == {"28x28": 288, "32x32": 12}
