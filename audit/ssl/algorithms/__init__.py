"""SSL algorithms, one file each; the file name, registry key and ``--algo`` value are one word.

Filled by explicit imports (no folder scanning). To add one, see docs/algorithms.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.registry import Registry

if TYPE_CHECKING:
    from audit.ssl.algorithms.base import Algorithm, Batch, StepOutput  # noqa: F401

# Each class is imported at its first ALGORITHMS.get: `audit --help` lists the names without torch.
ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")
ALGORITHMS.register_lazy("fixmatch", "audit.ssl.algorithms.fixmatch:FixMatch")
ALGORITHMS.register_lazy("uda", "audit.ssl.algorithms.uda:UDA")
ALGORITHMS.register_lazy("mixmatch", "audit.ssl.algorithms.mixmatch:MixMatch")
ALGORITHMS.register_lazy("vat", "audit.ssl.algorithms.vat:VAT")
ALGORITHMS.register_lazy("meanteacher", "audit.ssl.algorithms.meanteacher:MeanTeacher")
ALGORITHMS.register_lazy("pseudolabel", "audit.ssl.algorithms.pseudolabel:PseudoLabel")
ALGORITHMS.register_lazy("pimodel", "audit.ssl.algorithms.pimodel:PiModel")

__all__ = ["ALGORITHMS", "Algorithm", "Batch", "StepOutput"]


def __getattr__(name: str):
    """``Algorithm``, ``Batch``, ``StepOutput`` from ``base.py`` (torch), on first use."""
    if name in ("Algorithm", "Batch", "StepOutput"):
        from audit.ssl.algorithms import base

        return getattr(base, name)
    raise AttributeError(f"module 'audit.ssl.algorithms' has no attribute {name!r}")
