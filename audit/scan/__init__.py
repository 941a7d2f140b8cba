"""Static inspection of an unlabeled pool (paper 5.2): interpolation chains, tight clusters,
near duplicates. Entry points: :func:`scan` and, for ingestion, :func:`scan_against`."""

from audit.scan.pipeline import ScanConfig, scan
from audit.scan.store import save_index, scan_against

__all__ = ["ScanConfig", "scan", "save_index", "scan_against"]
