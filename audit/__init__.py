"""audit: inspect unlabeled image pools for semi-supervised poisoning (Carlini, "Poisoning the
Unlabeled Dataset of Semi-Supervised Learning", sections 5.2 and 5.3).

Data flow: files -> ImageSet (audit.data) -> features -> neighbours (audit.neighbors)
-> detectors (audit.scan, audit.dynamics) -> findings (audit.findings) -> reports (audit.report).
"""

__version__ = "0.1.0"
