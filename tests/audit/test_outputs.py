"""The output policy shared by every command (audit/outputs.py): outputs never land on, in or
around an input, never replace a non-regular file, never collide, and an unwritable folder is
found before any work. Each case checks the input is untouched (bytes and mtime)."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from audit.errors import OutputError
from audit.outputs import FILE, FOLDER, REPLACED, Output, check_outputs, prepare_outputs


def _state(path):
    """sha256 + mtime_ns + inode of every file under ``path`` (or of ``path`` itself)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns, p.stat().st_ino) for p in files}


@pytest.fixture()
def pool(tmp_path):
    d = tmp_path / "pool"
    (d / "sub").mkdir(parents=True)
    (d / "a.png").write_bytes(b"png-a")
    (d / "sub" / "b.png").write_bytes(b"png-b")
    return d


@pytest.mark.parametrize(
    "make, kind, words",
    [
        (lambda t, p: p / "r.json", FILE, "is inside the scanned folder"),
        (lambda t, p: p / "sub" / "deeper" / "r.json", FILE, "is inside the scanned folder"),
        (lambda t, p: p / "a.png", FILE, "is inside the scanned folder"),
        (lambda t, p: p, FOLDER, "is the scanned folder"),
        (lambda t, p: t, REPLACED, "contains the scanned folder"),
        (lambda t, p: t, FOLDER, "contains the scanned folder"),
        (lambda t, p: p / "run", FOLDER, "is inside the scanned folder"),
    ],
    ids=["report-in-pool", "report-deep", "report-on-image", "out-is-pool", "store-around-pool",
         "run-around-pool", "run-in-pool"],
)
def test_outputs_in_or_around_an_input_are_refused(tmp_path, pool, make, kind, words):
    before = _state(pool)
    target = make(tmp_path, pool)
    with pytest.raises(OutputError, match=words):
        check_outputs([Output("--x", target, kind)], {"scanned folder": pool})
    assert _state(pool) == before and not (pool / "sub" / "deeper").exists()


def test_an_input_file_counts_and_links_are_followed(tmp_path):
    data = tmp_path / "in.npz"
    data.write_bytes(b"PK\x03\x04 not really")
    before = _state(data)
    with pytest.raises(OutputError, match=r"--json .*in\.npz is the scanned file .*in\.npz"):
        check_outputs([Output("--json", data)], {"scanned file": data})
    link = tmp_path / "link.json"
    link.symlink_to(data)
    with pytest.raises(OutputError, match="is the scanned file"):
        check_outputs([Output("--json", link)], {"scanned file": data})
    hard = tmp_path / "hard.json"
    os.link(data, hard)  # same inode, another name: path comparison alone would miss it
    with pytest.raises(OutputError, match="is the scanned file"):
        check_outputs([Output("--json", hard)], {"scanned file": data})
    alias = tmp_path / "alias"
    alias.symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(OutputError, match="is the scanned file"):
        check_outputs([Output("--json", alias / "in.npz")], {"scanned file": data})
    assert _state(data) == before


def test_every_named_input_is_checked(tmp_path, pool):
    labeled = tmp_path / "labeled"
    labeled.mkdir()
    with pytest.raises(OutputError, match=r"--html .*labeled/x\.html is inside --labeled "):
        check_outputs([Output("--json", tmp_path / "ok.json"), Output("--html", labeled / "x.html")],
                      {"scanned folder": pool, "--labeled": labeled, "--against": None})
    check_outputs([Output("--json", tmp_path / "ok.json"), None], {"scanned folder": pool, "--labeled": None})


@pytest.mark.parametrize("kind", ["device", "fifo", "socket", "directory", "symlink"])
def test_a_report_never_replaces_what_is_not_a_regular_file(tmp_path, kind):
    import socket

    target = tmp_path / "r.json"
    if kind == "device":
        try:
            os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
        except OSError as exc:
            pytest.skip(f"cannot create a device node here ({exc})")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(target))
        s.close()
    elif kind == "directory":
        target.mkdir()
    else:
        target.symlink_to(tmp_path / "elsewhere.json")
    before = os.lstat(target)
    words = {"device": "is a character device, not a regular file", "fifo": "is a FIFO",
             "socket": "is a socket", "directory": "is a directory; give a file name",
             "symlink": "is a symbolic link, not a regular file"}[kind]
    with pytest.raises(OutputError, match=words):
        check_outputs([Output("--json", target)], {})
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)


def test_dev_null_and_dev_full_are_refused_before_anything_is_written():
    for dev in ("/dev/null", "/dev/full"):
        if not os.path.exists(dev):
            continue
        with pytest.raises(OutputError, match=f"--json {dev} is a character device, not a regular file"):
            check_outputs([Output("--json", __import__("pathlib").Path(dev))], {})
        assert stat.S_ISCHR(os.lstat(dev).st_mode)


def test_folders_must_be_folders_and_a_replaced_folder_no_link(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a regular file, not a directory"):
        check_outputs([Output("--out", tmp_path / "file", FOLDER)], {})
    with pytest.raises(OutputError, match="is a regular file; it must be a new or existing directory"):
        check_outputs([Output("--save-index", tmp_path / "file", REPLACED)], {})
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "runlink").symlink_to(real, target_is_directory=True)
    check_outputs([Output("--out", tmp_path / "runlink", FOLDER)], {})  # a run folder on another disk: fine
    with pytest.raises(OutputError, match="is a symbolic link; it must be"):
        check_outputs([Output("--out", tmp_path / "runlink", REPLACED)], {})
    with pytest.raises(OutputError, match=r"cannot create it, .*file is not a directory"):
        check_outputs([Output("--json", tmp_path / "file" / "sub" / "r.json")], {})


def test_two_outputs_on_one_path_are_refused(tmp_path):
    with pytest.raises(OutputError, match="--html and --json both write"):
        check_outputs([Output("--json", tmp_path / "r"), Output("--html", tmp_path / "." / "r")], {})


def test_an_unwritable_folder_is_found_before_any_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        probe = ro / "probe"
        try:
            probe.write_text("x")
            probe.unlink()
            writable = True
        except PermissionError:
            writable = False
        if writable:  # root ignores modes: use a folder the kernel refuses even to root, if any
            ro = next((p for p in map(__import__("pathlib").Path, ("/sys", "/proc/sys")) if _refuses(p)), None)
            if ro is None:
                pytest.skip("no read-only folder available to this user")
        with pytest.raises(OutputError, match=r"--json .*r\.json: cannot write in .* \((Permission denied|Read-only file system)"):
            check_outputs([Output("--json", ro / "sub" / "r.json")], {})
        assert not (ro / "sub").exists()
    finally:
        (tmp_path / "ro").chmod(0o755)


def _refuses(folder) -> bool:
    try:
        fd = os.open(folder / ".audit-write-test", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return True
    os.close(fd)
    os.unlink(folder / ".audit-write-test")
    return False


def test_the_probe_leaves_nothing_and_stale_temporaries_of_these_outputs_go(tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = tmp_path / f".r.json.{proc.pid}.0.tmp"
    other = tmp_path / f".other.json.{proc.pid}.0.tmp"
    stale.write_text("half a report")
    other.write_text("not ours to judge")
    prepare_outputs([Output("--json", tmp_path / "r.json")], {})
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name]
