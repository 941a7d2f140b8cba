"""redteam: the attacks of "Poisoning the Unlabeled Dataset of Semi-Supervised Learning"
(sections 3 and 4) and the end-to-end benchmark of the auditor. Imports ``audit``; never the
other way round."""

__version__ = "0.1.0"
