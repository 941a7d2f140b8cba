"""FixMatch (Sohn et al., NeurIPS 2020; paper Appendix A): a hard pseudo-label from the weak view,
kept only where its confidence reaches the threshold, trained with cross-entropy on the strong view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audit.ssl.algorithms.base import Algorithm, Batch, StepOutput, check_range, forward_split


@dataclass(frozen=True)
class FixMatchConfig:
    threshold: float = 0.95  # τ: confidence a weak-view prediction needs to become a pseudo-label
    lambda_u: float = 1.0  # weight of the unlabeled loss (μ = 7 is TrainConfig.mu)
    # False: labeled, weak and strong views in one forward pass (BatchNorm sees them together, as
    # the reference code). True: the weak view, which only makes labels, in its own no-grad pass:
    # about 30% less compute per step on CPU, BatchNorm statistics of that pass its own
    weak_no_grad: bool = False

    def __post_init__(self) -> None:
        check_range("FixMatchConfig", "threshold", self.threshold, 0.0, 1.0)
        check_range("FixMatchConfig", "lambda_u", self.lambda_u, 0.0, float("inf"))


class FixMatch(Algorithm):
    Config = FixMatchConfig

    def step(self, model: nn.Module, batch: Batch) -> StepOutput:
        cfg = self.config
        x_u_w, x_u_s = batch.weak(batch.x_u), batch.strong(batch.x_u)
        if cfg.weak_no_grad:
            with torch.no_grad():
                logits_u_w = model(x_u_w)
            logits_l, logits_u_s = forward_split(model, batch.weak(batch.x_l), x_u_s)
        else:  # one pass over labeled + both unlabeled views, as the reference code does
            logits_l, logits_u_w, logits_u_s = forward_split(model, batch.weak(batch.x_l), x_u_w, x_u_s)
        sup_loss = F.cross_entropy(logits_l, batch.y_l)

        probs_w = torch.softmax(logits_u_w.detach(), dim=1)  # the guess gets no gradient
        confidence, pseudo = probs_w.max(dim=1)
        mask = (confidence >= cfg.threshold).float()
        unsup_loss = (F.cross_entropy(logits_u_s, pseudo, reduction="none") * mask).mean()

        loss = sup_loss + cfg.lambda_u * unsup_loss
        logs = {"sup_loss": sup_loss.item(), "unsup_loss": unsup_loss.item(), "mask_rate": mask.mean().item()}
        return StepOutput(loss, logs, probs_w)
