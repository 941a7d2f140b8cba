"""Π-Model (Laine & Aila, ICLR 2017; paper Appendix A): two stochastic passes over each unlabeled
example (independent augmentations and, when the model has it, dropout) must agree: MSE between
the two softmax outputs, weight ramped up. As in the paper, both passes carry gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audit.ssl.algorithms.base import Algorithm, Batch, StepOutput, forward_split, ramp
from audit.validate import check_float


@dataclass(frozen=True)
class PiModelConfig:
    lambda_u: float = 10.0  # weight of the MSE (mean over examples and classes), USB's value
    rampup: float = 0.4  # fraction of the run over which λu ramps up linearly (USB's unsup_warm_up)
    dropout: float = 0.5  # dropout before the classifier, the second noise source (the paper's 0.5)

    def __post_init__(self) -> None:
        check_float("PiModelConfig", "dropout", self.dropout, 0.0, 0.99)
        check_float("PiModelConfig", "lambda_u", self.lambda_u, 0.0)
        check_float("PiModelConfig", "rampup", self.rampup, 0.0, 1.0)


class PiModel(Algorithm):
    Config = PiModelConfig

    def model_options(self) -> dict:
        return {"dropout": self.config.dropout}

    def step(self, model: nn.Module, batch: Batch) -> StepOutput:
        cfg = self.config
        # both unlabeled passes in one forward: dropout masks and augmentations differ per example
        logits_l, logits_1, logits_2 = forward_split(
            model, batch.weak(batch.x_l), batch.weak(batch.x_u), batch.weak(batch.x_u)
        )
        sup_loss = F.cross_entropy(logits_l, batch.y_l)
        p1, p2 = torch.softmax(logits_1, dim=1), torch.softmax(logits_2, dim=1)
        unsup_loss = F.mse_loss(p1, p2)
        weight = cfg.lambda_u * ramp(batch.t, cfg.rampup)

        loss = sup_loss + weight * unsup_loss
        logs = {"sup_loss": sup_loss.detach(), "unsup_loss": unsup_loss.detach(), "lambda_u": weight}
        return StepOutput(loss, logs, p1.detach())
