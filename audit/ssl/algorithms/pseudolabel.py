"""Pseudo-Label (Lee, ICML-W 2013; paper Appendix A): the model's own confident hard prediction
on an unlabeled (weakly augmented) example is its training label; the weight ramps up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audit.ssl.algorithms.base import Algorithm, Batch, StepOutput, forward_split, ramp
from audit.validate import check_float


@dataclass(frozen=True)
class PseudoLabelConfig:
    threshold: float = 0.95  # confidence needed for a prediction to become a label (USB)
    lambda_u: float = 1.0
    rampup: float = 0.4  # fraction of the run over which λu ramps up linearly (USB's unsup_warm_up)

    def __post_init__(self) -> None:
        check_float("PseudoLabelConfig", "threshold", self.threshold, 0.0, 1.0)
        check_float("PseudoLabelConfig", "lambda_u", self.lambda_u, 0.0)
        check_float("PseudoLabelConfig", "rampup", self.rampup, 0.0, 1.0)


class PseudoLabel(Algorithm):
    Config = PseudoLabelConfig

    def step(self, model: nn.Module, batch: Batch) -> StepOutput:
        cfg = self.config
        logits_l, logits_u = forward_split(model, batch.weak(batch.x_l), batch.weak(batch.x_u))
        sup_loss = F.cross_entropy(logits_l, batch.y_l)

        probs = torch.softmax(logits_u.detach(), dim=1)
        confidence, pseudo = probs.max(dim=1)
        mask = (confidence >= cfg.threshold).float()
        unsup_loss = (F.cross_entropy(logits_u, pseudo, reduction="none") * mask).mean()
        weight = cfg.lambda_u * ramp(batch.t, cfg.rampup)

        loss = sup_loss + weight * unsup_loss
        logs = {"sup_loss": sup_loss.detach(), "unsup_loss": unsup_loss.detach(), "mask_rate": mask.mean(), "lambda_u": weight}
        return StepOutput(loss, logs, probs)
