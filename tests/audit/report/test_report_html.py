"""HTML report: self-contained, hostile names escaped, α values, endpoint badges, caps, figures."""

from __future__ import annotations

import base64
import re

import pytest

from audit.errors import InvalidParameterError
from audit.findings import AuditResult, Finding, Member, Severity
from audit.report import render_html, write_html
from audit.report.thumbs import thumbnail_png


def test_html_is_self_contained(result, images, tmp_path):
    page = write_html(result, images, tmp_path / "r.html", fail_on="error").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert "http://" not in page.replace("&quot;http://evil&quot;", "")  # only the escaped hostile id
    srcs = re.findall(r'<img src="([^"]*)"', page)
    assert len(srcs) == 9 and all(s.startswith("data:image/png;base64,") for s in srcs)  # 9 members with pixels
    assert "GATE FAILED" in page


def test_html_escapes_hostile_names(result, images):
    page = render_html(result, images)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.png" in page
    assert "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page  # evidence is data too
    # unreadable list; a newline from the data is shown as an escape, never written raw
    assert "truncated\\x0afile" in page and "truncated\nfile" not in page and "broken, file.png" in page


def test_html_shows_alpha_badges_in_chain_order(result, images):
    page = render_html(result, images)
    alphas = re.findall(r"α=([0-9.]+)", page)
    assert alphas == ["0.000", "0.250", "0.500", "0.750", "1.000"]
    assert 'class="badge b-source">source<' in page and 'class="badge b-target">target<' in page
    assert page.index('class="badge b-source"') < page.index('class="badge b-target"')
    # errors before warnings; info groups collapsed in <details> further down
    assert page.index("#1 bridge") < page.index("#2 cluster") < page.index("<details><summary>Show 1 info")
    assert page.index("<details><summary>Show 1 info") < page.index("2 near-identical images")


def test_thumbnails_nearest_neighbour_upscale(images):
    from io import BytesIO

    import numpy as np
    from PIL import Image

    img = Image.open(BytesIO(thumbnail_png(images.images[0])))
    assert img.size == (84, 84)
    big = np.asarray(img)
    assert np.array_equal(big[::3, ::3], images.images[0][..., 0])  # exact pixels, no blur
    assert Image.open(BytesIO(thumbnail_png(np.zeros((8, 8, 3), np.uint8)))).size == (88, 88)
    assert Image.open(BytesIO(thumbnail_png(np.zeros((512, 256, 3), np.uint8)))).size == (64, 128)


def test_html_caps_thumbnails_and_findings(images):
    members = tuple(Member(images.ids[i % 10], i % 10) for i in range(75))
    findings = tuple(Finding("cluster", Severity.WARNING, 1.0 - i / 10, members, f"group {i}") for i in range(4))
    result = AuditResult(tool="scan", root="r", ids=images.ids, findings=findings)
    page = render_html(result, images, max_findings=3, max_thumbs=60)
    assert page.count("<figure class=\"thumb") == 3 * 60
    assert "+15 more members not shown" in page and "+1 more findings" in page
    assert "group 3" not in page


def test_html_missing_previews_and_extra_figures(result):
    png = thumbnail_png(__import__("numpy").zeros((4, 4, 1), "uint8"))
    page = render_html(result, None, extra_figures={"influence <histogram>": png},
                       finding_figures={2: {"chain residuals": png}})
    assert page.count("no preview") == 9
    assert "influence &lt;histogram&gt;" in page and "chain residuals" in page
    assert base64.b64encode(png).decode() in page
    assert page.index("chain residuals") > page.index("#1 bridge")
    with pytest.raises(InvalidParameterError, match="PNG bytes"):
        render_html(result, None, extra_figures={"x": b"<svg onload=alert(1)>"})
