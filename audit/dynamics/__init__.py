"""Training-dynamics audit (paper 5.3): record every unlabeled example's prediction during SSL
training, score how each example's prediction follows others', flag outliers, group them into
attack instances.

Flow: ``Recorder`` / ``RecorderObserver`` (recorder.py) -> ``load_predictions`` (predictions.py)
-> ``SCORES`` (influence.py, flipchain.py; knn.py does the search) -> ``score_predictions``
(scoring.py: flagging rule) -> attack instances (instances.py) -> ``AuditResult``.
"""

from audit.dynamics.config import DynamicsConfig, ScoreOutput
from audit.dynamics.predictions import Predictions, check_ids, load_predictions, validate_predictions
from audit.dynamics.recorder import Recorder, RecorderObserver
from audit.dynamics.scoring import SCORES, flag_outliers, score_predictions

__all__ = [
    "DynamicsConfig", "Predictions", "Recorder", "RecorderObserver", "SCORES", "ScoreOutput",
    "check_ids", "flag_outliers", "load_predictions", "score_predictions", "validate_predictions",
]
