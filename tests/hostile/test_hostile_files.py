"""Hostile data files as the pool path (issue #12): every one ends in a one-line AuditError (or
loads, for the controls), never another exception, never a hang, never code run, and memory stays
within the budget although the bombs claim gigabytes (tracemalloc sees numpy's allocations)."""

from __future__ import annotations

import signal
import tracemalloc

import pytest
from hostile_files import BUDGET, build_files

from audit.data import load_dataset, load_images
from audit.errors import AuditError

SLACK = 16 << 20  # interpreter and decoder bookkeeping beside the pixels


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_files")
    marker = root / "PWNED"
    return root / "files", marker, build_files(root, marker)


def _timeout(signum, frame):
    raise TimeoutError("a read blocked")


def _outcome(fn, path) -> tuple[str, int]:
    """('ok' | error text, peak traced bytes); any exception but AuditError fails the test."""
    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(20)
    tracemalloc.start()
    try:
        fn(path, max_bytes=BUDGET) if fn is load_images else fn(path)
        result = "ok"
    except AuditError as exc:
        result = str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return result, peak


def test_every_hostile_file_ends_in_one_clear_line_within_the_budget(files):
    d, marker, expected = files
    assert len(expected) >= 40
    wrong = {}
    for name, want in sorted(expected.items()):
        got, peak = _outcome(load_images, d / name)
        ok = got == "ok" if want == "ok" else (got != "ok" and want in got and "\n" not in got)
        if not ok or peak > BUDGET + SLACK:
            wrong[name] = (want, got[:300], f"peak {peak >> 20} MiB")
    assert wrong == {}
    assert not marker.exists()  # no pickle ran code


def test_split_readers_refuse_the_same_files(files):
    d, marker, expected = files
    for name in ("encrypted.npz", "deflate64.npz", "object.npz", "claims_2p80.npz"):
        got, _ = _outcome(load_dataset, d / name)
        assert got != "ok" and expected[name] in got, (name, got)


def test_budget_error_names_the_budget_and_how_to_raise_it(files):
    d, _, _ = files
    with pytest.raises(AuditError) as err:
        load_images(d / "claims_2m_images.npz", max_bytes=BUDGET)
    msg = str(err.value)
    assert "64.0 MiB budget" in msg and "--max-memory" in msg and "GiB" in msg
