"""The scan-detector registry: one file per detector, registered here by explicit import
(STYLE.md 3). The registry order is the order detectors run in (a later detector sees the
earlier ones' findings: near duplicates inside a bridge are not reported twice).

``DETECTORS.get("bridge")`` gives the detector class; an unknown name raises
``Unknown detector 'brige'. Available: bridge, ...``. See ``base.py`` for the contract and
docs/detectors.md for how to add one.
"""

from __future__ import annotations

from audit.registry import Registry
from audit.scan.detectors.base import Detector, DetectorOutput, LabeledRows, ScanInputs
from audit.scan.detectors.bridge import Bridge
from audit.scan.detectors.cluster import ClusterDetector
from audit.scan.detectors.near_duplicate import NearDuplicate
from audit.scan.detectors.path import Path

DETECTORS: Registry[type[Detector]] = Registry("detector")
DETECTORS.register(Bridge.name, Bridge)  # 5.2, error
DETECTORS.register(Path.name, Path)  # adaptive bridges (beyond 5.2), error
DETECTORS.register(ClusterDetector.name, ClusterDetector)  # 5.2, warning
DETECTORS.register(NearDuplicate.name, NearDuplicate)  # 5.2 Figure 8, info

DEFAULT_DETECTORS = ("bridge", "path", "cluster", "near_duplicate")

__all__ = ["DETECTORS", "DEFAULT_DETECTORS", "Detector", "DetectorOutput", "LabeledRows", "ScanInputs"]
