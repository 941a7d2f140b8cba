"""MixMatch (Berthelot et al., NeurIPS 2019; paper Appendix A): guess a label by averaging the
predictions on K weak views, sharpen it, MixUp labeled and unlabeled examples together (with
λ' = max(λ, 1 − λ) so each mixed example stays closer to its own), cross-entropy on the mixed
labeled part and an L2 loss on the mixed unlabeled part, whose weight ramps up linearly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audit.ssl.algorithms.base import (
    Algorithm, Batch, StepOutput, forward_split, ramp, sharpen, soft_cross_entropy,
)
from audit.validate import check_float, check_int


@dataclass(frozen=True)
class MixMatchConfig:
    k: int = 2  # K weak views averaged for the label guess
    temperature: float = 0.5  # T of the sharpening
    alpha: float = 0.5  # MixUp λ ~ Beta(α, α) (paper's CIFAR-10 value)
    lambda_u: float = 100.0  # weight of the L2 loss (mean over examples and classes, as the reference code)
    rampup: float = 1 / 16  # fraction of the run over which λu ramps from 0: the reference code's 1M of 16M images
    # > 0: ramp over this many steps instead (the MixMatch paper: 16 000). A CPU run of a few
    # hundred steps has a 1/16 ramp of a few dozen steps, λu = 100 arrives before the labels have
    # taught the model anything, and the guesses collapse onto one class
    rampup_steps: int = 0

    def __post_init__(self) -> None:
        check_int("MixMatchConfig", "k", self.k, 1, 64)
        check_float("MixMatchConfig", "temperature", self.temperature, 0.0, low_open=True)
        check_float("MixMatchConfig", "alpha", self.alpha, 0.0, low_open=True)
        check_float("MixMatchConfig", "lambda_u", self.lambda_u, 0.0)
        check_float("MixMatchConfig", "rampup", self.rampup, 0.0, 1.0)
        check_int("MixMatchConfig", "rampup_steps", self.rampup_steps, 0)


def mixup_lambda(alpha: float, size: tuple[int, ...] = ()) -> Tensor:
    """λ' = max(λ, 1 − λ), λ ~ Beta(α, α): always ≥ 0.5."""
    lam = torch.distributions.Beta(alpha, alpha).sample(size)
    return torch.maximum(lam, 1 - lam)


class MixMatch(Algorithm):
    Config = MixMatchConfig

    def step(self, model: nn.Module, batch: Batch) -> StepOutput:
        cfg = self.config
        b = len(batch.x_l)
        x_l = batch.weak(batch.x_l)
        views = [batch.weak(batch.x_u) for _ in range(cfg.k)]
        with torch.no_grad():  # label guessing: average over K views, then sharpen
            probs = torch.softmax(model(torch.cat(views)), dim=1).view(cfg.k, len(batch.x_u), -1)
            p_mean = probs.mean(dim=0)
            guess = sharpen(p_mean, cfg.temperature)

        x_all = torch.cat([x_l, *views])
        y_all = torch.cat([F.one_hot(batch.y_l, self.num_classes).float(), guess.repeat(cfg.k, 1)])
        lam = mixup_lambda(cfg.alpha).item()  # drawn on the CPU: reading it waits for no device
        perm = torch.randperm(len(x_all), device=x_all.device)
        x_mix = lam * x_all + (1 - lam) * x_all[perm]
        y_mix = lam * y_all + (1 - lam) * y_all[perm]

        logits_l, logits_u = forward_split(model, x_mix[:b], x_mix[b:])
        sup_loss = soft_cross_entropy(logits_l, y_mix[:b]).mean()
        unsup_loss = F.mse_loss(torch.softmax(logits_u, dim=1), y_mix[b:])
        progress = ramp(batch.step, cfg.rampup_steps) if cfg.rampup_steps else ramp(batch.t, cfg.rampup)
        weight = cfg.lambda_u * progress

        loss = sup_loss + weight * unsup_loss
        logs = {"sup_loss": sup_loss.detach(), "unsup_loss": unsup_loss.detach(), "lambda_u": weight, "mixup_lambda": lam}
        return StepOutput(loss, logs, probs[0])
