"""What a reviewer needs from the reports: overlapping findings linked, full ids, paths to copy,
stored vs new images of an --against scan, class names, evidence in words, the source image,
and progress lines a CI log can read."""

from __future__ import annotations

import html
import io
import json
import re

import numpy as np
from rich.console import Console

from audit.data.imageset import ImageSet
from audit.findings import AuditResult, Finding, Member, Severity
from audit.report import render_html
from audit.report.context import Scope, build_context
from audit.report.explain import explain
from audit.report.json import json_document
from audit.report.progress import Progress


def _bridge_and_cluster(n: int = 6) -> AuditResult:
    ids = tuple(f"u{i}.png" for i in range(n)) + ("other.png",)
    bridge = Finding("bridge", Severity.ERROR, 9.0, tuple(Member(ids[i], i, alpha=i / (n - 1)) for i in range(n)),
                     "chain", evidence={"source_labeled_id": "Sneaker/x.png", "source_class": 7,
                                        "length_px": 1000.0, "max_residual_px": 5.0, "max_residual_ratio": 0.5})
    cluster = Finding("cluster", Severity.WARNING, 1.0, tuple(Member(i, k) for k, i in enumerate(ids)), "cluster",
                      evidence={"size": n + 1, "mean_edge": 3.0, "tight_threshold": 9.0, "size_threshold": 5.0})
    return AuditResult("scan", "pool", ids, (cluster, bridge))


def test_overlaps_are_linked_both_ways_in_json_and_html():
    res = _bridge_and_cluster()
    ctx = build_context(res)
    cluster, bridge = res.findings
    assert [t for t, _, _ in ctx.overlap_lines(cluster)] == ["6 of 7 members also in bridge #1"]
    assert [t for t, _, _ in ctx.overlap_lines(bridge)] == ["6 of 6 members also in cluster #2"]
    doc = json_document(res)
    by_kind = {f["kind"]: f for f in doc["findings"]}
    assert by_kind["cluster"]["overlaps"] == [{"id": bridge.key, "kind": "bridge", "shared": 6}]
    assert by_kind["bridge"]["id"] == bridge.key and re.fullmatch(r"bridge-[0-9a-f]{10}", bridge.key)
    page = render_html(res)
    assert f'<section class="finding sev-error" id="f-{bridge.key}">' in page
    assert f'<a href="#f-{bridge.key}">6 of 7 members also in bridge #1</a>' in page
    assert f'<a href="#f-{cluster.key}">6 of 6 members also in cluster #2</a>' in page


def test_finding_ids_are_stable_and_order_free():
    a = Finding("bridge", Severity.ERROR, 1.0, (Member("x", 0), Member("y", 1)), "s")
    b = Finding("bridge", Severity.ERROR, 2.0, (Member("y", 5), Member("x", 9)), "other summary")
    c = Finding("cluster", Severity.ERROR, 1.0, (Member("x", 0), Member("y", 1)), "s")
    assert a.key == b.key != c.key


def test_full_ids_and_copy_paths_per_finding_and_for_the_report():
    long_id = "deep/" * 12 + "a very long file name that a thumbnail caption cuts.png"
    ids = (long_id, "b.png", "c\nd.png", "e.png")
    f = Finding("bridge", Severity.ERROR, 1.0, tuple(Member(i, k) for k, i in enumerate(ids[:3])), "s")
    page = render_html(AuditResult("scan", "pool", ids, (f,)))
    assert page.count(f"<td>{html.escape(long_id)}</td>") == 1  # the member table holds the full id
    areas = re.findall(r'<textarea class="paths" readonly rows="\d+">(.*?)</textarea>', page, re.S)
    assert len(areas) == 2  # the whole report's flagged files, and the finding's
    want = [html.escape(long_id), "b.png", "c\\x0ad.png"]  # one name per line, each escaped on its own
    assert sorted(areas[0].split("\n")) == sorted(want) and areas[1].split("\n") == want
    assert "1 names hold control or non-UTF-8 characters" in page
    assert "<script" not in page.lower()


def test_against_reports_mark_stored_and_new_and_name_the_batch():
    ids = ("s0.png", "s1.png", "s2.png", "n0.png", "n1.png")  # the store's 3, then the batch's 2 new ones
    f = Finding("bridge", Severity.ERROR, 1.0, tuple(Member(i, k) for k, i in enumerate(("s1.png", "n0.png", "n1.png"))), "s")
    note = "1 of the batch's images are already in the store (same ids, same pixels): scanned as the stored images"
    res = AuditResult("scan", "store/", ids, (f,), notes=(note,))
    scope = Scope.against(res, ("s2.png", "n0.png", "n1.png"), "incoming/", "store/")
    assert scope.new_ids == {"n0.png", "n1.png"} and scope.n_batch == 3
    ctx = build_context(res, scope=scope)
    doc = json_document(res, context=ctx)
    assert doc["batch"] == {"root": "incoming/", "n_images": 3, "n_new": 2, "n_already_stored": 1}
    assert doc["store"] == {"path": "store/", "n_images": 3}
    assert doc["flagged_new"] == ["n0.png", "n1.png"] and doc["flagged_stored"] == ["s1.png"]
    assert [m["stored"] for m in doc["findings"][0]["members"]] == [True, False, False]
    page = render_html(res, context=ctx, title="audit scan: incoming/ against store/")
    assert "<b>batch</b>: incoming/ (3 images: 2 new, 1 already stored)" in page
    assert "<b>store</b>: store/ (3 stored images)" in page and "<b>scanned</b>" not in page
    assert page.count('<span class="badge b-stored">stored</span>') == 1
    assert page.count('<span class="badge b-new">new</span>') == 2
    areas = re.findall(r'<textarea class="paths" readonly rows="\d+">(.*?)</textarea>', page, re.S)
    assert areas[0] == "n0.png\nn1.png" and areas[1] == "s1.png"  # batch files to copy; stored apart


def test_class_names_and_readable_evidence():
    res = _bridge_and_cluster()
    cluster, bridge = res.findings
    names = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    ctx = build_context(res, class_names=names)
    why = explain(bridge, ctx)
    assert "from labeled image Sneaker/x.png (Sneaker), copied into the pool as u0.png, to u5.png" in why.sentence
    assert ("farthest any image is from the line", "5.0, 0.5% of that distance") in why.rows
    page = render_html(res, context=ctx)
    assert "class 7" not in page and "(Sneaker)" in page
    assert "<details><summary>Raw evidence (as in the JSON report)</summary>" in page  # raw numbers folded
    dyn = Finding("dynamics", Severity.ERROR, 3.0, tuple(Member(f"u{i}.png", i) for i in range(3)), "s",
                  evidence={"final_class": 8, "flip_steps": [None, 40.0, 80.0], "final_classes": [8, 8, 2],
                            "trajectory": [[0.1, 0.9]] * 3, "steps": [1, 2]})
    why = explain(dyn, build_context(AuditResult("dynamics", "pool", res.ids[:3], (dyn,)), class_names=names))
    assert why.sentence.startswith("3 images were predicted as Bag one after another during training between steps 40 and 80")
    assert why.member_columns["switched at step"] == {"u0.png": "never", "u1.png": "40", "u2.png": "80"}
    assert why.member_columns["class at the end"]["u2.png"] == "Pullover"
    page = render_html(AuditResult("dynamics", "pool", res.ids[:3], (dyn,)),
                       context=build_context(AuditResult("dynamics", "pool", res.ids[:3], (dyn,)), class_names=names))
    assert "null" not in page.split("Raw evidence")[0]  # no raw arrays of nulls before the folded block
    assert "<td>never</td>" in page and "<td>Bag</td>" in page


def test_the_labeled_source_image_is_shown(fashion200):
    res = _bridge_and_cluster()
    pool = ImageSet(np.ascontiguousarray(fashion200.images[:7]), res.ids)
    labeled = ImageSet(np.ascontiguousarray(fashion200.images[7:9]), ("Sneaker/x.png", "Bag/y.png"),
                       labels=np.array([7, 8]), class_names=tuple(f"c{i}" for i in range(10)))
    page = render_html(res, pool, context=build_context(res, labeled=labeled))
    src = page.split('class="thumb role-source srcbox"')[1].split("</figure>")[0]
    assert '<img src="data:image/png;base64,' in src and "labeled x'</span>" in src and "Sneaker/x.png" in src
    assert "(c7)" in page  # the labeled set's class names


def test_html_caps_keep_the_far_end_of_a_chain(fashion200):
    ids = tuple(f"m{i:03d}.png" for i in range(80))
    f = Finding("bridge", Severity.ERROR, 1.0, tuple(Member(i, k, role="target" if k == 79 else None)
                                                   for k, i in enumerate(ids)), "s")
    page = render_html(AuditResult("scan", "p", ids, (f,)), max_thumbs=60)
    strip = page.split('<div class="strip">')[1].split("</div>\n")[0]
    assert strip.count("<figure") == 60 and "+20 more" in strip and 'title="m079.png"' in strip


# --- progress --------------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_in_a_log_prints_plain_periodic_lines():
    buf = io.StringIO()
    con = Console(file=buf, width=100, color_system=None)  # not a terminal: a CI log
    clock = _Clock()
    with Progress(con, every=10, clock=clock) as progress:
        for step in range(0, 101):
            clock.t = step * 0.5  # 0.5 s per step: 50 s in all
            progress("train", step, 100, f"loss {1 / (step + 1):.3f}")
        progress("quick", 0, 1)
        progress("quick", 1, 1)  # under a second: no line
    lines = buf.getvalue().splitlines()
    assert lines[0] == "train: 20/100 (20%), 10 s, about 40 s left; loss 0.048"
    assert len(lines) == 5 and lines[-1] == "train: 100/100 done in 50.0 s; loss 0.010"
    assert not any("quick" in line for line in lines) and "\x1b" not in buf.getvalue()


def test_a_stage_that_ended_runs_again_with_its_own_lines():
    """The bench's one trial bar, trial after trial: each run of the stage is timed and logged."""
    buf = io.StringIO()
    clock = _Clock()
    with Progress(Console(file=buf, width=100, color_system=None), every=10, clock=clock) as progress:
        for trial, t0 in enumerate((0.0, 100.0)):
            for step in range(11):
                clock.t = t0 + 2 * step
                progress("trial", step, 10, f"[trial {trial}]")
    lines = buf.getvalue().splitlines()
    assert lines == ["trial: 5/10 (50%), 10 s, about 10 s left; [trial 0]", "trial: 10/10 done in 20.0 s; [trial 0]",
                     "trial: 5/10 (50%), 10 s, about 10 s left; [trial 1]", "trial: 10/10 done in 20.0 s; [trial 1]"]
    bar = io.StringIO()  # on a terminal the bar shows stats as text too: a label or path is never markup
    with Progress(Console(file=bar, width=100, force_terminal=True, color_system=None)) as progress:
        progress("trial", 3, 10, "[bold]x[/bold] [trial 0]")
    assert "3/10 [bold]x[/bold] [trial 0]" in bar.getvalue()


def test_progress_quiet_and_log_consoles_do_not_wrap(monkeypatch):
    buf = io.StringIO()
    with Progress(Console(file=buf, quiet=True)) as progress:
        progress("read", 1, 1)
    assert buf.getvalue() == ""
    from audit.report import progress as mod

    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    con = mod.console()
    assert not con.is_terminal and con.width == mod.LOG_WIDTH
    con.print("x" * 300 + " " + "a/" * 50 + "name.png", highlight=False, markup=False)
    assert len(out.getvalue().splitlines()) == 1


def test_json_overlaps_and_ids_round_trip():
    doc = json.loads(json.dumps(_bridge_and_cluster().to_json()))
    assert {f["id"].split("-")[0] for f in doc["findings"]} == {"bridge", "cluster"}
    assert all(len(f["overlaps"]) == 1 for f in doc["findings"])


def test_dynamics_roles_are_worded_by_how_they_were_placed():
    members = (Member("a.png", 0, role="source"), Member("b.png", 1), Member("c.png", 2, role="target"))
    flip = Finding("dynamics", Severity.ERROR, 1.0, members, "s", evidence={"final_class": 1})
    line = Finding("dynamics", Severity.ERROR, 1.0, members, "s",
                   evidence={"final_class": 1, "order": "pixel line", "source_labeled_id": "1/x.png"})
    ctx = build_context(AuditResult("dynamics", "p", ("a.png", "b.png", "c.png"), (flip, line)))
    assert "In flip order: first a.png, last c.png." in explain(flip, ctx).sentence
    assert "likely target" not in explain(flip, ctx).sentence
    assert ("Along their pixel line they run from a.png (next to labeled image 1/x.png) to c.png, the likely "
            "target x*.") in explain(line, ctx).sentence
