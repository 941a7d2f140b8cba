"""The one atomic-write mechanism: whole file or nothing, ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from audit.atomic import atomic_open, write_atomic


def test_write_atomic_bytes_and_text_with_untranslated_newlines(tmp_path):
    write_atomic(tmp_path / "a" / "b.bin", b"\x00\x01")
    write_atomic(tmp_path / "c.csv", "x,y\r\n1,2\r\n")
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.csv").read_bytes() == b"x,y\r\n1,2\r\n"
    mode = stat.S_IMODE(os.stat(tmp_path / "c.csv").st_mode)
    assert mode & 0o044, "readable by others like any ordinary file (not mkstemp's 0600)"


def test_failure_inside_the_block_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as fh:
            fh.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


# --- never replace what is not a regular file; failures name the target ------------------------
import errno  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from audit.atomic import atomic_folder, remove_stale_temps  # noqa: E402
from audit.errors import OutputError  # noqa: E402


def _device_node(path):
    """A character device like /dev/null (1, 3), made in tmp_path: the real one is never risked."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a device node here ({exc})")
    return path


@pytest.mark.parametrize("kind", ["device", "fifo", "directory", "symlink"])
def test_a_target_that_is_not_a_regular_file_is_never_replaced(tmp_path, kind):
    target = tmp_path / "t"
    if kind == "device":
        _device_node(target)
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        (tmp_path / "real.json").write_text("real")
        target.symlink_to(tmp_path / "real.json")
    before = os.lstat(target)
    with pytest.raises(OutputError, match=r"/t is (a character device|a FIFO \(named pipe\)|a directory|a symbolic link), not a regular file"):
        write_atomic(target, "report")
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)
    expected = {"t", "real.json"} if kind == "symlink" else {"t"}
    assert {p.name for p in tmp_path.iterdir()} == expected  # no temp file left either
    if kind == "symlink":
        assert (tmp_path / "real.json").read_text() == "real"


def test_disk_full_on_fsync_is_one_error_naming_the_target_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("audit.atomic.os.fsync", full)
    with pytest.raises(OutputError) as info:
        write_atomic(target, "new")
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_disk_full_while_writing_names_the_target_never_the_temp_file(tmp_path):
    target = tmp_path / "model.pt"
    with pytest.raises(OutputError) as info:
        with atomic_open(target) as fh:
            fh.write(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what a full disk makes write() raise
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert ".tmp" not in str(info.value) and not list(tmp_path.iterdir())


def test_an_error_about_another_file_keeps_its_own_message(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        with atomic_open(tmp_path / "out.bin") as fh:
            fh.write((tmp_path / "missing-input").read_bytes())
    assert not isinstance(info.value, OutputError) and "missing-input" in str(info.value)


def test_a_parent_that_is_a_file_is_reported_on_the_target(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*file/r\.json: ") as info:
        write_atomic(tmp_path / "file" / "r.json", "x")
    assert ".tmp" not in str(info.value)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_processes_are_removed_and_nothing_else(tmp_path):
    dead = _dead_pid()
    names = {
        f".checkpoint.pt.{dead}.0.tmp": "dead: removed",
        f".r.json.{dead}.12.tmp": "dead: removed",
        f".r.json.{os.getpid()}.0.tmp": "this process: kept",
        ".r.json.1.0.tmp": "pid 1 is alive: kept",
        f"r.json.{dead}.0.tmp": "no leading dot: kept",
        f".r.json.{dead}.tmp": "not the pattern: kept",
        "notes.tmp": "kept",
    }
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / f".out.{dead}.3.tmp").mkdir()  # a folder: only with folders=True
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted(n for n, why in names.items() if why.startswith("dead"))
    assert (tmp_path / f".out.{dead}.3.tmp").is_dir()
    assert remove_stale_temps(tmp_path, name="other", folders=True) == []
    assert remove_stale_temps(tmp_path, name="out", folders=True) == [f".out.{dead}.3.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, why in names.items() if "kept" in why)


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(out) as tmp:
            (tmp / "a.png").write_bytes(b"x")
            raise KeyboardInterrupt  # Ctrl-C half-way
    assert list(tmp_path.iterdir()) == []  # no out, no hidden folder
    with atomic_folder(out) as tmp:
        (tmp / "a").write_text("1")
    assert (out / "a").read_text() == "1"
    with pytest.raises(OutputError, match="cannot write .*out: Directory not empty"):
        with atomic_folder(out) as tmp:
            (tmp / "b").write_text("2")
    with atomic_folder(out, replace=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"] and [p.name for p in tmp_path.iterdir()] == ["out"]
