"""report.html of redteam bench: written beside report.md from the same data, the same headings,
paragraphs and tables cell for cell, the plots inside as PNG data URIs, hostile text escaped, a
well-formed page, written like every other output (never through a link)."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from audit.errors import OutputError
from audit.ssl.config import TrainConfig
from redteam.bench import BenchConfig, TrialResult, expand
from redteam.bench.metrics import DetectionMetrics
from redteam.bench.propagation import Propagation
from redteam.bench.report import write_report

SCRIPT = "<script>alert(1)</script>"
TRAIN = TrainConfig(model="cnn", model_options={"widths": [8, 16]}, steps=12, batch_size=16, mu=2, flip=False,
                    observe_every=3, device="cpu")
# a dataset path and a preset are free text: both are printed in the report's first lines
CONFIG = BenchConfig(dataset=f"data/{SCRIPT}|x", algos=("fixmatch",), attacks=("linear",), ratios=(0.02, 0.05),
                     trials=2, train=TRAIN, preset="tiny <b>&")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "input", "link", "wbr"}


def _metrics(poisoned: bool, auroc: float) -> DetectionMetrics:
    return DetectionMetrics(n_poison=28 if poisoned else 0, n_clean=1397, auroc=auroc if poisoned else None,
                            ap=auroc - 0.2 if poisoned else None,
                            tpr_at_fpr={"0.001": 0.5 if poisoned else None, "0.01": 0.75 if poisoned else None},
                            review_cost=40 if poisoned else None, flagged_poison=27 if poisoned else 0,
                            flagged_clean=1, poison_scores=[2.0 + i / 28 for i in range(28)] if poisoned else [],
                            clean_quantiles=[i / 100 for i in range(101)])


def _result(spec, i: int) -> TrialResult:
    s = spec.to_json()
    steps = (3, 6, 9, 12)
    prop = Propagation(steps=steps, target_prob=(0.1, 0.2, 0.4, 0.6), line_front=(0.2, 0.3, 0.3, 0.3),
                       hard_from=(0.9, 0.9, 0.95, 0.95),
                       front=None if spec.is_control else (0.3, 0.5, 0.8, 1.0 if i % 2 else 0.6),
                       clean_boundary=None if spec.is_control else (0.2, 0.3, 0.3, 0.3))
    dets = {name: _metrics(not spec.is_control, 0.9 + 0.01 * i) for name in ("scan:bridge", "dynamics:chain")}
    return TrialResult(key=spec.key, spec=s, status="ok",
                       target={"test_id": "test/7", "true_label": 1, "target_label": 3, "source_id": "train/9"},
                       n_poison=0 if spec.is_control else 28, pool_size=1397, success=bool(i % 2),
                       target_prob=0.5, test_acc=0.8 + 0.01 * i, detectors=dets, propagation=prop)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """A bench folder as run_bench leaves it: finished trials, a failed one, and a failed one whose
    key, cell and error are hostile (a stored trial JSON is data: edited, or from another version)."""
    results = [_result(s, i) for i, s in enumerate(expand(CONFIG))]
    results[-2] = replace(results[-2], status="failed", detectors={}, propagation=None, error="MemoryError: out")
    bad = results[-1]
    results[-1] = replace(bad, key=f"{SCRIPT}key", status="failed", detectors={}, propagation=None,
                          spec={**bad.spec, "attack": f"lin{SCRIPT}", "density": "<i>1.5-x"},
                          error=f"RuntimeError: {SCRIPT} | a pipe & more\n  File \"x.py\", line 1")
    path = tmp_path_factory.mktemp("bench")
    write_report(CONFIG, results, path)
    return path


class _Page(HTMLParser):
    """Tags checked as they come (every end tag closes the innermost open element), plus what the
    tests read: tables as rows of cell texts, h2 texts, paragraph texts, image sources."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.errors: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.h2: list[str] = []
        self.paragraphs: list[str] = []
        self.imgs: list[dict] = []
        self.tags: list[str] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag in VOID:
            return
        self.open.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        if tag in ("td", "th", "h2", "p"):
            self._text = []

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.open[-1] if self.open else 'nothing'}>")
            return
        self.open.pop()
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._text))
        elif tag == "h2":
            self.h2.append("".join(self._text))
        elif tag == "p":
            self.paragraphs.append("".join(self._text))

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _md_text(s: str) -> str:
    """What a Markdown line or cell reads as: code spans without their backticks, \\| as |."""
    return s.replace("\\|", "|").replace("`", "")


def _md_tables(md: str) -> list[list[list[str]]]:
    tables, current = [], None
    for line in md.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            if not re.fullmatch(r"\|(---\|)+", line):
                cells = re.split(r"(?<!\\)\|", line)[1:-1]
                current.append([_md_text(c.strip()) for c in cells])
        else:
            current = None
    return tables


def test_html_is_written_beside_report_md_with_the_same_tables(out):
    md, page = (out / "report.md").read_text(encoding="utf-8"), _parse((out / "report.html").read_text("utf-8"))
    tables = _md_tables(md)
    assert len(tables) == 8 and page.tables == tables  # every table, header and row, cell for cell
    success = tables[0]  # paper Table 1: every row of it, Wilson intervals and the failure count included
    assert success[0][:2] == ["algorithm", "clean control (x* → y* without poison)"]
    html_success = page.tables[0]
    for row in success[1:]:
        assert row in html_success
    assert "1/1 (21–100%) + 1 failed" in html_success[1]
    headings = [_md_text(line[3:]) for line in md.splitlines() if line.startswith("## ")]
    assert page.h2 == headings and "Plots" in headings
    for para in (_md_text(line) for line in md.splitlines() if line and line[0] not in "#|!"):
        assert para in page.paragraphs


def test_hostile_names_and_errors_are_escaped(out):
    text = (out / "report.html").read_text(encoding="utf-8")
    page = _parse(text)
    assert "script" not in page.tags and "b" not in page.tags and "i" not in page.tags
    assert SCRIPT not in text and "<b>&" not in text
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 4  # dataset, key, attack, error
    failed = next(t for t in page.tables if t[0][0] == "trial" and t[0][1] == "cell")
    assert failed[2] == [f"{SCRIPT}key", f"fixmatch · lin{SCRIPT} 5% <i>1.5-x · trial 1",
                         f"RuntimeError: {SCRIPT} | a pipe & more"]
    assert "<title>redteam bench: tiny &lt;b&gt;&amp;</title>" in text


def test_plots_are_embedded_as_png_data(out):
    md = (out / "report.md").read_text(encoding="utf-8")
    page = _parse((out / "report.html").read_text(encoding="utf-8"))
    linked = re.findall(r"^!\[([^\]]+)\]", md, flags=re.M)
    assert len(linked) >= 3 and "success_vs_ratio.png" in linked
    assert [img["alt"] for img in page.imgs] == linked
    for img in page.imgs:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        data = base64.b64decode(img["src"][len(prefix):], validate=True)
        assert data.startswith(PNG_MAGIC) and data == (out / img["alt"]).read_bytes()


def test_the_page_is_well_formed_and_self_contained(out):
    text = (out / "report.html").read_text(encoding="utf-8")
    page = _parse(text)
    assert page.errors == [] and page.open == []
    assert text.startswith("<!DOCTYPE html>") and {"html", "head", "body", "style", "nav"} <= set(page.tags)
    assert not re.search(r"(src|href)=\"(?!data:|#)", text)  # nothing outside the file


def test_html_is_written_like_the_other_outputs(out, tmp_path):
    """Never written through a link (it could point at an input): refused, the target untouched."""
    (tmp_path / "trials").mkdir()
    victim = tmp_path / "input.png"
    victim.write_bytes(b"data")
    (tmp_path / "report.html").symlink_to(victim)
    results = [_result(s, i) for i, s in enumerate(expand(CONFIG))]
    with pytest.raises(OutputError, match="report.html is a symbolic link"):
        write_report(CONFIG, results, tmp_path)
    assert victim.read_bytes() == b"data"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
