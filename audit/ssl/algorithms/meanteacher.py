"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017; paper Appendix A): the teacher is an
exponential moving average of the student's weights (the trainer's EMA model, decay
``TrainConfig.ema`` = 0.999 as in the paper). The student's softmax on its own augmented view must
match the teacher's softmax on another augmented view: MSE, weight ramped up.

Trap avoided: the consistency term's student side is computed BY THE STUDENT, with gradient; the
teacher side has none. A widely copied reference implementation computes both sides with the
teacher, so the consistency loss trains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audit.errors import InvalidParameterError
from audit.ssl.algorithms.base import Algorithm, Batch, StepOutput, forward_split, ramp
from audit.validate import check_float


@dataclass(frozen=True)
class MeanTeacherConfig:
    lambda_u: float = 50.0  # consistency weight for an MSE averaged over classes (USB's value)
    rampup: float = 0.4  # fraction of the run over which λu ramps up linearly (USB's unsup_warm_up)

    def __post_init__(self) -> None:
        check_float("MeanTeacherConfig", "lambda_u", self.lambda_u, 0.0)
        check_float("MeanTeacherConfig", "rampup", self.rampup, 0.0, 1.0)


def consistency(student_logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """MSE between the student's softmax (with gradient) and the teacher's probabilities (without)."""
    return F.mse_loss(torch.softmax(student_logits, dim=1), teacher_probs.detach())


class MeanTeacher(Algorithm):
    Config = MeanTeacherConfig

    def step(self, model: nn.Module, batch: Batch) -> StepOutput:
        cfg = self.config
        if batch.teacher is None:
            raise InvalidParameterError("meanteacher needs the teacher (the EMA model) in Batch.teacher")
        logits_l, logits_u = forward_split(model, batch.weak(batch.x_l), batch.weak(batch.x_u))
        sup_loss = F.cross_entropy(logits_l, batch.y_l)
        with torch.no_grad():  # the teacher's view is augmented independently of the student's
            teacher_probs = torch.softmax(batch.teacher(batch.weak(batch.x_u)), dim=1)
        unsup_loss = consistency(logits_u, teacher_probs)
        weight = cfg.lambda_u * ramp(batch.t, cfg.rampup)

        loss = sup_loss + weight * unsup_loss
        logs = {"sup_loss": sup_loss.detach(), "unsup_loss": unsup_loss.detach(), "lambda_u": weight}
        return StepOutput(loss, logs, teacher_probs)
