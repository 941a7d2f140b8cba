"""Training-dynamics audit (paper 5.3): record every unlabeled example's prediction during SSL
training, score how each example's prediction follows others', flag outliers, group them into
attack instances.

Flow: ``record_run`` (run.py: the trainer with the ``Recorder`` of recorder.py, at a cadence of
cadence.py) -> ``load_predictions`` (predictions.py) -> ``SCORES`` (chain.py, influence.py; knn.py
puts them on the scan's neighbour search) -> ``score_predictions`` (scoring.py: flagging rule)
-> attack instances (instances.py) -> ``AuditResult``; retrain.py removes the flagged and retrains.
"""

from audit.dynamics.config import DynamicsConfig, ScoreOutput
from audit.dynamics.predictions import Predictions, check_ids, load_predictions, validate_predictions
from audit.dynamics.recorder import Recorder, RecorderObserver
from audit.dynamics.scoring import SCORES, flag_outliers, score_predictions

__all__ = [
    "DynamicsConfig", "Predictions", "Recorder", "RecorderObserver", "SCORES", "ScoreOutput",
    "check_ids", "flag_outliers", "load_predictions", "score_predictions", "validate_predictions",
]
