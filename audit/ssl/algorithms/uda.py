"""UDA (Xie et al., NeurIPS 2020; paper Appendix A): the weak view's prediction, *sharpened* with
temperature T, is the soft target for the strong view (KL divergence), masked below a confidence
threshold; optional training-signal annealing (TSA) on the labeled loss.

Trap avoided: the sharpening temperature divides the logits of the TARGET (softmax(logits_w / T)).
A widely copied reference implementation computes the target from the unscaled logits, so T has
no effect there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audit.errors import invalid_parameter
from audit.ssl.algorithms.base import Algorithm, Batch, StepOutput, forward_split
from audit.validate import check_float

TSA_SCHEDULES = ("linear", "exp", "log")


@dataclass(frozen=True)
class UDAConfig:
    threshold: float = 0.8  # β: weak-view confidence (before sharpening) below which the loss is masked
    temperature: float = 0.4  # T: target = softmax(logits_w / T)
    lambda_u: float = 1.0
    tsa: str | None = None  # None, "linear", "exp" or "log": UDA's training-signal annealing (off as in USB)

    def __post_init__(self) -> None:
        check_float("UDAConfig", "threshold", self.threshold, 0.0, 1.0)
        check_float("UDAConfig", "temperature", self.temperature, 0.0, low_open=True)
        check_float("UDAConfig", "lambda_u", self.lambda_u, 0.0)
        if self.tsa is not None and self.tsa not in TSA_SCHEDULES:
            raise invalid_parameter("tsa", "UDAConfig", f"None or one of {', '.join(TSA_SCHEDULES)}", self.tsa)


def uda_targets(logits_w: Tensor, temperature: float, threshold: float) -> tuple[Tensor, Tensor]:
    """(sharpened targets ``N×C``, mask ``N`` float) from weak-view logits; no gradient."""
    logits_w = logits_w.detach()
    confidence = torch.softmax(logits_w, dim=1).max(dim=1).values
    return torch.softmax(logits_w / temperature, dim=1), (confidence >= threshold).float()


def tsa_threshold(schedule: str, t: float, num_classes: int) -> float:
    """η_t = α_t·(1 − 1/K) + 1/K: labeled examples predicted above η_t are left out of the loss."""
    alpha = {"linear": t, "exp": math.exp((t - 1) * 5), "log": 1 - math.exp(-t * 5)}[schedule]
    return alpha * (1 - 1 / num_classes) + 1 / num_classes


class UDA(Algorithm):
    Config = UDAConfig

    def step(self, model: nn.Module, batch: Batch) -> StepOutput:
        cfg = self.config
        x_u_w, x_u_s = batch.weak(batch.x_u), batch.strong(batch.x_u)
        logits_l, logits_u_w, logits_u_s = forward_split(model, batch.weak(batch.x_l), x_u_w, x_u_s)

        sup_each = F.cross_entropy(logits_l, batch.y_l, reduction="none")
        if cfg.tsa is None:
            sup_loss = sup_each.mean()
        else:
            p_true = torch.softmax(logits_l.detach(), 1).gather(1, batch.y_l[:, None])[:, 0]
            keep = (p_true <= tsa_threshold(cfg.tsa, batch.t, self.num_classes)).float()
            sup_loss = (sup_each * keep).sum() / keep.sum().clamp_min(1.0)

        targets, mask = uda_targets(logits_u_w, cfg.temperature, cfg.threshold)
        log_p_s = F.log_softmax(logits_u_s, dim=1)
        kl = (targets * (torch.log(targets.clamp_min(1e-12)) - log_p_s)).sum(dim=1)
        unsup_loss = (kl * mask).mean()

        loss = sup_loss + cfg.lambda_u * unsup_loss
        logs = {"sup_loss": sup_loss.detach(), "unsup_loss": unsup_loss.detach(), "mask_rate": mask.mean()}
        return StepOutput(loss, logs, torch.softmax(logits_u_w.detach(), dim=1))
