"""``audit scan`` end to end: a folder of real Fashion-MNIST PNGs with a linear bridge written in
(x_a = rint((1-a)·x' + a·x*), paper 3), the gate's exit codes, the reports, and bad inputs that
must give exit 2 and one line naming the problem."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from audit.cli import app

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "fashion-mnist-200.npz"
N_CLEAN = 100
BRIDGE_ALPHAS = np.linspace(0, 1, 10)[1:-1]  # 8 interior points; x' and x* are in the pool too
runner = CliRunner()


def _write_png(path: Path, img: np.ndarray) -> None:
    Image.fromarray(img[..., 0]).save(path)


@pytest.fixture(scope="module")
def pools(tmp_path_factory) -> dict[str, Path]:
    with np.load(FIXTURE) as z:
        images = z["images"]
    # 10 per class from the first 10 of each of the 10 classes: distinct real images
    clean = np.concatenate([images[c * 20 : c * 20 + 10] for c in range(10)])
    root = tmp_path_factory.mktemp("pools")
    labeled = root / "labeled"  # x' (clean[0], class 0) plus two other images per class
    for c in range(10):
        (labeled / str(c)).mkdir(parents=True)
        for k in (15, 16):
            _write_png(labeled / str(c) / f"{k}.png", images[c * 20 + k])
    _write_png(labeled / "0" / "x_prime.png", clean[0])
    plain, poisoned = root / "clean", root / "poisoned"
    plain.mkdir(), poisoned.mkdir()
    for i, img in enumerate(clean):
        _write_png(plain / f"img_{i:03d}.png", img)
        _write_png(poisoned / f"img_{i:03d}.png", img)
    x_src, x_tgt = clean[0].astype(np.float64), clean[75].astype(np.float64)  # t-shirt -> sneaker
    for j, a in enumerate(BRIDGE_ALPHAS):
        x = np.clip(np.rint((1 - a) * x_src + a * x_tgt), 0, 255).astype(np.uint8)
        _write_png(poisoned / f"upload_{j:02d}.png", x)
    return {"clean": plain, "poisoned": poisoned, "labeled": labeled, "root": root}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*"))}


def _invoke(*args: str):
    return runner.invoke(app, ["scan", *map(str, args)])


def test_bridge_fails_the_gate_and_every_report_is_written(pools, tmp_path):
    folder = pools["poisoned"]
    before = _snapshot(folder)
    out = tmp_path / "out"
    res = _invoke(folder, "--json", out / "r.json", "--html", out / "r.html", "--csv", out / "r.csv")
    assert res.exit_code == 1, res.output
    assert "bridge" in res.stdout and "GATE FAILED" in res.stdout
    assert _snapshot(folder) == before  # the scanned folder is only read

    doc = json.loads((out / "r.json").read_text())
    assert doc["gate"] == {"fail_on": "error", "failed": True, "exit_code": 1}
    assert doc["n_images"] == N_CLEAN + len(BRIDGE_ALPHAS)
    bridges = [f for f in doc["findings"] if f["kind"] == "bridge"]
    assert bridges and all(f["severity"] == "error" for f in bridges)
    uploads = {f"upload_{j:02d}.png" for j in range(len(BRIDGE_ALPHAS))}
    found = {m["id"] for f in bridges for m in f["members"]}
    assert len(uploads & found) >= len(uploads) - 1, found  # the chain, give or take one end point
    assert uploads & set(doc["flagged"])

    page = (out / "r.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and "α=" in page and "upload_0" in page
    assert "http://" not in page and "https://" not in page

    rows = list(csv.DictReader((out / "r.csv").open(newline="")))
    assert len(rows) == doc["n_images"] and "is_bridge_issue" in rows[0]
    assert {r["id"] for r in rows if r["is_bridge_issue"] == "True"} == found


def test_fail_on_never_passes_and_json_format_keeps_stdout_clean(pools, tmp_path):
    res = _invoke(pools["poisoned"], "--fail-on", "never", "--format", "json", "--labeled", pools["labeled"],
                  "--html", tmp_path / "r.html")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)  # nothing but the JSON document on stdout
    assert doc["gate"]["failed"] is False and doc["gate"]["fail_on"] == "never"
    bridge = next(f for f in doc["findings"] if f["kind"] == "bridge")
    # with the labeled set the chain is oriented: x' is the source, x* the target
    assert bridge["members"][0]["role"] == "source" and bridge["members"][-1]["role"] == "target"
    assert bridge["members"][0]["alpha"] == 0.0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'class="badge b-source">source<' in page and 'class="badge b-target">target<' in page
    assert "gate passed" in res.stderr


def test_github_format_prints_annotations(pools):
    res = _invoke(pools["poisoned"], "--format", "github", "--quiet")
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert lines and lines[0].startswith("::error file=") and "title=bridge" in lines[0]
    assert all(line.startswith("::") for line in lines)
    assert res.stderr == ""  # --quiet: no progress, no summary


def test_clean_pool_passes_default_gate(pools):
    res = _invoke(pools["clean"], "--quiet", "--format", "json")
    assert res.exit_code == 0, res.output
    assert not [f for f in json.loads(res.stdout)["findings"] if f["severity"] == "error"]


def _garbage(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png at all")
    (folder / "b.jpg").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    return folder


def _one(folder: Path) -> Path:
    folder.mkdir()
    _write_png(folder / "only.png", np.zeros((28, 28, 1), np.uint8))
    return folder


@pytest.mark.parametrize(
    "make, extra, words",
    [
        (lambda p: p / "missing", [], "missing"),
        (lambda p: (p / "empty").mkdir() or p / "empty", [], "empty"),
        (lambda p: _garbage(p / "garbage"), [], "garbage"),
        (lambda p: _one(p / "one"), [], "only 1 readable image; a scan needs at least 3"),
        (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt", [], "notes.txt"),
        (lambda p: _one(p / "d"), ["--update"], "--update needs --against"),
        (lambda p: _one(p / "d"), ["--size", "big"], "--size"),
        (lambda p: _one(p / "d"), ["--save-index", "s", "--against", "s"], "--save-index cannot be combined"),
        (lambda p: _one(p / "d"), ["--against", "nostore"], "--against nostore: no scan index"),
        (lambda p: _one(p / "d"), ["--labeled", "nolab"], "--labeled nolab: not a directory"),
        (lambda p: _one(p / "d"), ["--html", "d/report.html"], "is inside the scanned folder"),
    ],
    ids=["missing", "empty", "unreadable-only", "one-image", "text-file", "update-alone", "bad-size", "save+against",
         "no-store", "no-labeled", "report-inside"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, make, extra, words):
    monkeypatch.chdir(tmp_path)  # relative paths in `extra` land in tmp_path
    target = make(tmp_path)
    res = _invoke(target, *extra)
    assert res.exit_code == 2, res.output
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), res.stderr
    assert words in err[0] and "internal error" not in err[0]
    assert "Traceback" not in res.output


def test_bad_fail_on_is_a_usage_error(pools):
    res = _invoke(pools["clean"], "--fail-on", "sometimes")
    assert res.exit_code == 2
    assert "sometimes" in res.output and "Traceback" not in res.output


def test_save_index_then_scan_batch_against_it(pools, tmp_path):
    store = tmp_path / "store"
    res = _invoke(pools["clean"], "--save-index", store, "--quiet")
    assert res.exit_code == 0, res.output
    assert store.exists()
    batch = tmp_path / "batch"
    batch.mkdir()
    for p in sorted(pools["poisoned"].glob("upload_*.png")):
        batch.joinpath(p.name).write_bytes(p.read_bytes())
    res = _invoke(batch, "--against", store, "--format", "json", "--quiet", "--html", tmp_path / "r.html")
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    bridge = next(f for f in doc["findings"] if f["kind"] == "bridge")
    assert {"img_000.png", "img_075.png"} & {m["id"] for m in bridge["members"]}  # stored endpoints
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "no preview" not in page  # stored members get thumbnails from the store's pixel rows
    before = _snapshot(store)
    res = _invoke(batch, "--against", store, "--update")
    assert res.exit_code == 1 and "not added to" in res.stderr
    assert _snapshot(store) == before  # a batch that fails the gate never joins the store
    res = _invoke(batch, "--against", store, "--update", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert f"added {len(BRIDGE_ALPHAS)} images to" in res.stderr
    assert _snapshot(store) != before  # --update grew the store


def test_tuning_defaults_match_scan_config():
    from audit.scan import ScanConfig
    from audit.scan.cli import DEFAULT_DETECTORS, DEFAULT_DIM, DEFAULT_K

    cfg = ScanConfig()
    assert (DEFAULT_DIM, DEFAULT_K, DEFAULT_DETECTORS) == (cfg.projection_dim, cfg.k, ",".join(cfg.detectors))


def test_unknown_detector_names_the_valid_ones(pools):
    res = _invoke(pools["clean"], "--detectors", "bridge,colinear")
    assert res.exit_code == 2
    assert "Unknown detector 'colinear'. Available: bridge, path, cluster, near_duplicate" in res.stderr


# --- the output policy, before any work (#12) ----------------------------------------------------
import errno  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402


def _state(path: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under ``path`` (or of the file itself)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files}


@pytest.fixture()
def no_scan(monkeypatch):
    """Reading any image fails the test: the policy must refuse before the scan starts."""
    def refuse(*a, **k):
        raise AssertionError("the scan started before the outputs were checked")

    monkeypatch.setattr("audit.data.load.load_images", refuse)


def _npz(tmp_path: Path) -> Path:
    from audit.data.imageset import ImageSet
    from audit.data.write import write_npz

    with np.load(FIXTURE) as z:
        images = z["images"][:40]
    return write_npz(ImageSet(images=images, ids=tuple(f"{i:03d}" for i in range(40))), tmp_path / "in.npz")


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    return lines[0]


def test_a_report_onto_the_scanned_file_is_refused_and_the_file_kept(tmp_path, no_scan):
    data = _npz(tmp_path)
    before = _state(data)
    line = _one_error_line(_invoke(data, "--json", data))
    assert line == f"error: --json {data} is the scanned file {data}, which is only read; write it elsewhere"
    link = tmp_path / "alias.json"
    link.symlink_to(data)
    assert "is the scanned file" in _one_error_line(_invoke(data, "--html", link))
    assert _state(data) == before


def test_outputs_in_the_labeled_folder_or_around_the_pool_are_refused(pools, tmp_path, no_scan):
    labeled_before, pool_before = _state(pools["labeled"]), _state(pools["clean"])
    line = _one_error_line(_invoke(pools["clean"], "--labeled", pools["labeled"], "--csv", pools["labeled"] / "x.csv"))
    assert "--csv" in line and "is inside --labeled" in line
    line = _one_error_line(_invoke(pools["clean"], "--labeled", pools["labeled"], "--html", pools["labeled"]))
    assert "--html" in line and "is --labeled" in line
    assert _state(pools["labeled"]) == labeled_before and _state(pools["clean"]) == pool_before


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_a_report_never_replaces_a_device_fifo_or_folder(pools, tmp_path, no_scan, kind):
    target = tmp_path / "r.json"
    if kind == "device":
        try:
            os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
        except OSError as exc:
            pytest.skip(f"cannot create a device node here ({exc})")
    elif kind == "fifo":
        os.mkfifo(target)  # writing to it would block forever
    else:
        target.mkdir()
    before = os.lstat(target)
    line = _one_error_line(_invoke(pools["clean"], "--json", target))
    assert f"--json {target} is a" in line and ("not a regular file" in line or "give a file name" in line)
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode, after.st_rdev) == (before.st_ino, before.st_mode, before.st_rdev)


def test_dev_null_is_refused_not_replaced(pools, no_scan):
    line = _one_error_line(_invoke(pools["clean"], "--json", "/dev/null"))
    assert line.startswith("error: --json /dev/null is a character device, not a regular file")
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_an_unwritable_report_folder_is_found_before_the_scan(pools, tmp_path, no_scan):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root: use a folder the kernel refuses even to root
            ro = Path("/sys")
            try:
                os.close(os.open(ro / ".audit-probe", os.O_CREAT | os.O_WRONLY | os.O_EXCL))
                os.unlink(ro / ".audit-probe")
                pytest.skip("no read-only folder available to this user")
            except OSError:
                pass
        line = _one_error_line(_invoke(pools["clean"], "--html", ro / "reports" / "r.html"))
        assert f"--html {ro / 'reports' / 'r.html'}: cannot write in {ro}" in line
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_disk_full_is_one_line_naming_the_report(pools, tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("audit.atomic.os.fsync", full)
    out = tmp_path / "r.json"
    line = _one_error_line(_invoke(pools["clean"], "--json", out, "--quiet"))
    assert line == f"error: cannot write {out}: No space left on device"
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def test_option_errors_are_one_line_and_help_stays_rich(pools):
    res = _invoke(pools["clean"], "--fail-on", "sometimes")
    line = _one_error_line(res)
    assert line.startswith("error: Invalid value for '--fail-on'") and "'sometimes'" in line
    assert line.endswith(" scan --help')")  # "(see 'audit scan --help')"; CliRunner names the program "root"
    assert "No such option: --jsn" in _one_error_line(_invoke(pools["clean"], "--jsn", "x"))
    res = runner.invoke(app, ["scan", "--help"])
    assert res.exit_code == 0 and " scan [OPTIONS]" in res.stdout and "╭" in res.stdout  # rich panels
    assert "--include-hidden" in res.stdout


# --- hostile names and what the reader skipped -------------------------------------------------
ESC_NAME = "\x1b[2J\x1b[Hclear.png"
FORGED_NAME = "x\ngate passed (fail on: error)\n.png"
BIDI_NAME = "poster\u202egnp.exe.png"


@pytest.fixture()
def hostile_pool(tmp_path) -> Path:
    with np.load(FIXTURE) as z:
        images = z["images"]
    folder = tmp_path / "hostile"
    folder.mkdir()
    for i in range(30):
        _write_png(folder / f"img_{i:03d}.png", images[2 * i])
    for k, name in enumerate((ESC_NAME, FORGED_NAME, BIDI_NAME, os.fsdecode(b"caf\xe9-\xff.png"), ".hidden.png")):
        # a name that is not UTF-8 (Latin-1 bytes) is written through its surrogateescape str
        Image.fromarray(images[100 + 3 * k][..., 0]).save(folder / name, format="PNG")
    return folder


def test_hostile_names_are_scanned_and_shown_escaped_everywhere(hostile_pool, tmp_path):
    before = _state(hostile_pool)
    out = tmp_path / "out"
    res = _invoke(hostile_pool, "--json", out / "r.json", "--html", out / "r.html", "--csv", out / "r.csv")
    assert res.exit_code == 0, res.output
    for text in (res.stdout, res.stderr):
        assert not {"\x1b", "\u202e", "\udce9", "\udcff"} & set(text)
        assert not any(line.startswith("gate passed") and "x.png" in line for line in text.splitlines())
    assert res.stdout.count("gate passed") == 1  # the real verdict only
    raw_id = os.fsdecode(b"caf\xe9-\xff.png")
    shown = ["\\x1b[2J\\x1b[Hclear.png", "x\\x0agate passed (fail on: error)\\x0a.png", "poster\\u202egnp.exe.png",
             "caf\\udce9-\\udcff.png"]
    rows = list(csv.reader((out / "r.csv").open(newline="", encoding="utf-8")))
    assert set(shown) <= {r[0] for r in rows[1:]}  # every hostile name scanned, shown escaped
    assert len(rows) == 1 + 34  # 30 + 4 hostile names, one row each; the hidden file skipped
    page = (out / "r.html").read_text(encoding="utf-8")  # written: no UnicodeEncodeError
    assert "<b>images</b>: 34" in page
    doc = json.loads((out / "r.json").read_text())
    assert doc["n_images"] == 34 and doc["root"] == str(hostile_pool)
    n_skipped = doc["n_skipped"]  # the hidden file, once the reader lists what it skips
    assert (f"{n_skipped} skipped" in res.stdout) == (n_skipped > 0)
    # the JSON keeps exact ids: a near-duplicate or other finding quoting them round-trips
    ids_in_json = {m["id"] for f in doc["findings"] for m in f["members"]} | {u["path"] for u in doc["skipped"]}
    assert not ids_in_json - ({ESC_NAME, FORGED_NAME, BIDI_NAME, raw_id, ".hidden.png"}
                              | {f"img_{i:03d}.png" for i in range(30)})
    assert _state(hostile_pool) == before


def test_include_hidden_and_follow_symlinks_read_what_is_otherwise_skipped(hostile_pool, tmp_path):
    with np.load(FIXTURE) as z:
        images = z["images"]
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(2):
        _write_png(outside / f"o{i}.png", images[150 + i])
    (hostile_pool / "linked").symlink_to(outside, target_is_directory=True)

    def scan_json(*flags):
        res = _invoke(hostile_pool, "--format", "json", "--quiet", *flags)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    plain, hidden, linked = scan_json(), scan_json("--include-hidden"), scan_json("--follow-symlinks")
    assert plain["n_images"] == 34  # 30 + the three hostile names + the non-UTF-8 one
    assert hidden["n_images"] == 35 and linked["n_images"] == 36
    skipped = {u["path"] for u in plain["skipped"]}
    assert {".hidden.png", "linked"} <= skipped  # listed, not silently dropped
    assert ".hidden.png" not in {u["path"] for u in hidden["skipped"]}


# --- CI formats, the step summary, --against reports, logs (#15) -------------------------------
def test_junit_and_sarif_formats_on_stdout(pools):
    from junitparser import JUnitXml

    res = _invoke(pools["poisoned"], "--format", "junit", "--quiet")
    assert res.exit_code == 1 and res.stderr == ""
    xml = JUnitXml.fromstring(res.stdout)
    cases = [c for s in xml for c in s]
    failed = [c for c in cases if not c.is_passed]
    assert failed and all(c.classname in ("audit.scan.bridge", "audit.scan.path") for c in failed)
    assert {c.name for c in cases} >= {"cluster: no findings"}  # every detector that ran is a case
    res = _invoke(pools["poisoned"], "--format", "sarif", "--fail-on", "never")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)  # nothing but the SARIF log on stdout; the summary went to stderr
    assert "gate passed" in res.stderr
    run = doc["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["bridge", "path", "cluster", "near_duplicate"]
    bridge = next(r for r in run["results"] if r["ruleId"] == "bridge")
    uri = bridge["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.startswith(str(pools["poisoned"]).lstrip("/")) or uri.startswith(str(pools["poisoned"]))
    assert bridge["level"] == "error"


def test_step_summary_goes_to_github_and_to_summary_file(pools, tmp_path, monkeypatch):
    gh = tmp_path / "step_summary.md"
    gh.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(gh))
    res = _invoke(pools["poisoned"], "--summary", tmp_path / "s.md", "--html", tmp_path / "r.html", "--quiet")
    assert res.exit_code == 1
    mine = (tmp_path / "s.md").read_text()
    assert gh.read_text() == "earlier step\n" + mine  # appended, as every step does
    assert "**GATE FAILED** (fail on: error)" in mine and "| bridge |" in mine and "r\\.html" in mine
    assert "upload\\_0" in mine or "upload_0" in mine
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pools["poisoned"] / "summary.md"))
    line = _one_error_line(_invoke(pools["poisoned"]))  # an output inside the scanned folder: refused first
    assert "$GITHUB_STEP_SUMMARY" in line and "inside the scanned folder" in line


def test_against_report_heading_and_stored_new_marks(pools, tmp_path):
    store = tmp_path / "store"
    assert _invoke(pools["clean"], "--save-index", store, "--quiet").exit_code == 0
    batch = tmp_path / "batch"
    batch.mkdir()
    for p in sorted(pools["poisoned"].glob("upload_*.png")):
        batch.joinpath(p.name).write_bytes(p.read_bytes())
    res = _invoke(batch, "--against", store, "--json", tmp_path / "r.json", "--html", tmp_path / "r.html")
    assert res.exit_code == 1
    assert f"audit scan: {batch} against {store}" in res.stdout.replace("\n", " ")
    assert "8 batch images (8 new) scanned with 100 stored" in res.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["batch"] == {"root": str(batch), "n_images": 8, "n_new": 8, "n_already_stored": 0}
    assert doc["store"] == {"path": str(store), "n_images": 100}
    uploads = {f"upload_{j:02d}.png" for j in range(8)}
    assert set(doc["flagged_new"]) <= uploads and set(doc["flagged_stored"]).isdisjoint(uploads)
    assert set(doc["flagged_new"]) | set(doc["flagged_stored"]) == set(doc["flagged"])
    for f in doc["findings"]:
        assert all(m["stored"] == (m["id"] not in uploads) for m in f["members"])
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"<title>audit scan: {batch} against {store}</title>" in page
    assert f"<b>batch</b>: {batch} (8 images: 8 new, 0 already stored)" in page
    assert f"<b>store</b>: {store} (100 stored images)" in page and "<b>scanned</b>:" not in page
    assert 'class="badge b-new">new<' in page and 'class="badge b-stored">stored<' in page
    # a rerun of an accepted batch: every image is stored now, none new
    assert _invoke(batch, "--against", store, "--update", "--fail-on", "never", "--quiet").exit_code == 0
    res = _invoke(batch, "--against", store, "--format", "json", "--fail-on", "never", "--quiet")
    doc = json.loads(res.stdout)
    assert doc["batch"]["n_new"] == 0 and doc["batch"]["n_already_stored"] == 8 and doc["flagged_new"] == []


def test_labeled_source_shown_with_class_names_and_overlaps_linked(pools, tmp_path):
    res = _invoke(pools["poisoned"], "--labeled", pools["labeled"], "--html", tmp_path / "r.html",
                  "--json", tmp_path / "r.json", "--fail-on", "never", "--quiet")
    assert res.exit_code == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    src = page.split('class="thumb role-source srcbox"')[1].split("</figure>")[0]
    assert "data:image/png;base64," in src and "0/x_prime.png" in src
    assert "labeled image 0/x_prime.png (0)" in page  # the labeled folder's class name
    doc = json.loads((tmp_path / "r.json").read_text())
    keys = {f["id"] for f in doc["findings"]}
    for f in doc["findings"]:
        assert all(o["id"] in keys and o["id"] != f["id"] and o["shared"] > 0 for o in f["overlaps"])
        for o in f["overlaps"]:
            assert f'<a href="#f-{o["id"]}">' in page


def test_piped_output_never_wraps_names(tmp_path):
    with np.load(FIXTURE) as z:
        images = z["images"]
    folder = tmp_path / "long"
    folder.mkdir()
    name = "a-very-long-scraped-file-name-" + "x" * 120 + ".png"
    for i in range(20):
        _write_png(folder / f"img_{i:02d}.png", images[3 * i])
    _write_png(folder / name, images[0])
    _write_png(folder / "copy.png", images[0])  # a near-duplicate pair: the long name is in the table
    res = _invoke(folder, "--fail-on", "never")
    assert res.exit_code == 0
    assert any(name in line for line in res.stdout.splitlines())  # whole, on one line (CliRunner is not a TTY)


# --- detector options and your own feature space (#14) -------------------------------------------


@pytest.mark.parametrize("item, message", [
    ("path.min_size=2", "'min_size' parameter of PathConfig must be an int >= 3"),
    ("pathmin_size=8", "must be DETECTOR.KEY=VALUE"),
    ("nosuch.k=1", "Unknown detector 'nosuch'. Available: bridge, path"),
    ("path.nosuch=1", "Unknown parameter 'nosuch' of detector 'path'. Valid: views, k_link"),
    ("bridge.rel_tol=wide", "'rel_tol' parameter of detector 'bridge' must be a float"),
])
def test_detector_options_are_checked_before_any_work(pools, item, message):
    res = _invoke(str(pools["clean"]), "--set", item)
    assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_detector_options_reach_the_detector(pools, tmp_path):
    out = tmp_path / "r.json"
    res = _invoke(str(pools["clean"]), "--set", "path.min_size=9", "--set", 'path.views=["pixels"]',
                  "--json", str(out), "--fail-on", "never")
    assert res.exit_code == 0, res.stderr
    opts = json.loads(out.read_text())["params"]["options"]["path"]
    assert opts["min_size"] == 9 and opts["views"] == ["pixels"]


def test_features_file_gives_the_path_detector_its_space(pools, tmp_path):
    from audit.data.load import load_images

    pool = load_images(pools["poisoned"])
    rows = pool.images.reshape(len(pool), -1)[:, ::7].astype(np.float32)  # any per-image vector
    np.savez(tmp_path / "emb.npz", features=rows[::-1], ids=np.array(pool.ids[::-1]))  # order is by id
    out = tmp_path / "r.json"
    res = _invoke(str(pools["poisoned"]), "--features", str(tmp_path / "emb.npz"), "--json", str(out),
                  "--fail-on", "never")
    assert res.exit_code == 0, res.stderr
    stats = json.loads(out.read_text())["params"]["stats"]["path"]
    assert stats["features"] != "unavailable" and stats["features"]["links"] > 0
    bad = _invoke(str(pools["poisoned"]), "--features", str(tmp_path / "nope.npz"))
    assert bad.exit_code == 2 and "no such file" in bad.stderr


def test_features_cannot_be_combined_with_against(pools, tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((3, 2)))
    res = _invoke(str(pools["clean"]), "--against", str(tmp_path / "store"), "--features", str(tmp_path / "e.npy"))
    assert res.exit_code == 2 and "--features cannot be combined with --against" in res.stderr
