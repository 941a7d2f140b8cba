"""The CLIs exit without the interpreter's teardown (audit.cli.quick_exit): statuses, reports and
piped output must come out exactly as with a normal exit, and a thread still running must not be
cut off."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image

AUDIT = [sys.executable, "-c", "from audit.cli import main; main()"]


def _pool(folder, n=40):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_statuses_reports_and_piped_output_survive_the_quick_exit(tmp_path):
    pool = _pool(tmp_path / "pool")
    report = tmp_path / "r.json"
    ok = subprocess.run([*AUDIT, "scan", str(pool), "--json", str(report), "--fail-on", "never"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(report.read_text())["n_images"] == 40  # written, closed, complete
    assert ok.stdout.strip()  # the console summary came through the pipe
    bad = subprocess.run([*AUDIT, "scan", str(tmp_path / "missing")], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "no such file" in bad.stderr
    usage = subprocess.run([*AUDIT, "scan", str(pool), "--jsn", "x"], capture_output=True, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("error: No such option")


def test_a_running_thread_gets_the_normal_exit(tmp_path):
    """With a second thread alive, quick_exit falls back to sys.exit, which waits for it."""
    out = tmp_path / "late.txt"
    code = textwrap.dedent(f"""
        import threading, time
        from audit.cli import quick_exit
        def late():
            time.sleep(0.3)
            open({str(out)!r}, "w").write("done")
        threading.Thread(target=late).start()
        quick_exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3 and out.read_text() == "done"


def test_exit_handlers_run_and_buffered_output_is_flushed(tmp_path):
    out = tmp_path / "handler.txt"
    code = textwrap.dedent(f"""
        import atexit, sys
        from audit.cli import quick_exit
        atexit.register(lambda: open({str(out)!r}, "w").write("ran"))
        sys.stdout.write("x" * 100_000)  # more than a pipe holds: must be flushed, not dropped
        quick_exit(None)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and len(proc.stdout) == 100_000 and out.read_text() == "ran"
