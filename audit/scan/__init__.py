"""Static inspection of an unlabeled pool (paper 5.2): interpolation chains, tight clusters,
near duplicates. Entry points: :func:`scan` and, for ingestion, :func:`scan_against`."""

__all__ = ["ScanConfig", "scan", "save_index", "scan_against"]
_HOME = {"ScanConfig": "pipeline", "scan": "pipeline", "save_index": "store", "scan_against": "store"}


def __getattr__(name: str):
    """Imported on first use: the CLI modules import this package, and ``audit --help`` should not
    wait for the detectors' scipy and faiss."""
    if name not in _HOME:
        raise AttributeError(f"module 'audit.scan' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"audit.scan.{_HOME[name]}"), name)
    globals()[name] = value
    return value
