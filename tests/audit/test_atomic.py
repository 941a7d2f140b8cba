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
