"""SSL algorithms, one file each; the file name, registry key and ``--algo`` value are one word.

Filled by explicit imports (no folder scanning). To add one, see docs/algorithms.md.
"""

from audit.registry import Registry
from audit.ssl.algorithms.base import Algorithm, Batch, StepOutput
from audit.ssl.algorithms.fixmatch import FixMatch
from audit.ssl.algorithms.meanteacher import MeanTeacher
from audit.ssl.algorithms.mixmatch import MixMatch
from audit.ssl.algorithms.pimodel import PiModel
from audit.ssl.algorithms.pseudolabel import PseudoLabel
from audit.ssl.algorithms.uda import UDA
from audit.ssl.algorithms.vat import VAT

ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")
ALGORITHMS.register("fixmatch", FixMatch)
ALGORITHMS.register("uda", UDA)
ALGORITHMS.register("mixmatch", MixMatch)
ALGORITHMS.register("vat", VAT)
ALGORITHMS.register("meanteacher", MeanTeacher)
ALGORITHMS.register("pseudolabel", PseudoLabel)
ALGORITHMS.register("pimodel", PiModel)

__all__ = ["ALGORITHMS", "Algorithm", "Batch", "StepOutput"]
