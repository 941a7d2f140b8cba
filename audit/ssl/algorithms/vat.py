"""Virtual Adversarial Training (Miyato et al., TPAMI 2018; paper Appendix A) with entropy
minimisation ("VAT + EntMin"): find, by one power iteration, the input direction r (‖r‖ = ε) that
most changes the prediction, and penalise KL(p(x) ‖ p(x + r)); also minimise the entropy of p(x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audit.ssl.algorithms.base import Algorithm, Batch, StepOutput, entropy, forward_split, ramp
from audit.validate import check_float, check_int

REFERENCE_DIM = 32 * 32 * 3  # ε = 6 is USB's value for CIFAR-sized inputs


@dataclass(frozen=True)
class VATConfig:
    # ε: L2 norm of the adversarial perturbation. None: USB's 6.0 for 32×32×3 inputs normalised by
    # a std ≈ 0.25, i.e. 1.5 on [0, 1] pixels, scaled by sqrt(D / 3072) so the per-pixel size
    # stays the same on other image sizes (0.76 on 28×28×1).
    eps: float | None = None
    xi: float = 1e-6  # size of the probe in the power iteration
    power_iterations: int = 1
    lambda_u: float = 0.3  # weight of the VAT loss (USB)
    lambda_ent: float = 0.06  # weight of the entropy-minimisation term (USB)
    rampup: float = 0.4  # fraction of the run over which both weights ramp up linearly

    def __post_init__(self) -> None:
        if self.eps is not None:
            check_float("VATConfig", "eps", self.eps, 0.0, low_open=True)
        check_float("VATConfig", "xi", self.xi, 0.0, low_open=True)
        check_int("VATConfig", "power_iterations", self.power_iterations, 1, 100)
        check_float("VATConfig", "lambda_u", self.lambda_u, 0.0)
        check_float("VATConfig", "lambda_ent", self.lambda_ent, 0.0)
        check_float("VATConfig", "rampup", self.rampup, 0.0, 1.0)


def default_eps(x: Tensor) -> float:
    return 6.0 * 0.25 * math.sqrt(x[0].numel() / REFERENCE_DIM)


def _unit(d: Tensor) -> Tensor:
    return d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (d.dim() - 1)))


def kl_div(p: Tensor, logits_q: Tensor) -> Tensor:
    """Mean over rows of KL(p ‖ softmax(logits_q))."""
    return (p * (torch.log(p.clamp_min(1e-12)) - F.log_softmax(logits_q, dim=1))).sum(dim=1).mean()


def adversarial_direction(model: nn.Module, x: Tensor, p: Tensor, xi: float, iterations: int = 1) -> Tensor:
    """Unit direction (per example) along which KL(p ‖ p(x + r)) grows fastest, by power iteration
    from a random start. Batch-norm statistics are left untouched by these probing passes."""
    d = _unit(torch.randn_like(x))
    with _frozen_bn(model):
        for _ in range(iterations):
            d = (xi * d).requires_grad_(True)
            grad = torch.autograd.grad(kl_div(p, model(x + d)), d)[0]
            d = _unit(grad.detach())
    return d


class _frozen_bn:
    """Context: BatchNorm layers stop updating running statistics (momentum 0), restored after."""

    def __init__(self, model: nn.Module) -> None:
        self.bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def __enter__(self) -> None:
        self.saved = [bn.momentum for bn in self.bns]
        for bn in self.bns:
            bn.momentum = 0.0

    def __exit__(self, *exc) -> None:
        for bn, m in zip(self.bns, self.saved):
            bn.momentum = m


class VAT(Algorithm):
    Config = VATConfig

    def step(self, model: nn.Module, batch: Batch) -> StepOutput:
        cfg = self.config
        x_u = batch.weak(batch.x_u)
        logits_l, logits_u = forward_split(model, batch.weak(batch.x_l), x_u)
        sup_loss = F.cross_entropy(logits_l, batch.y_l)

        p = torch.softmax(logits_u.detach(), dim=1)
        eps = cfg.eps if cfg.eps is not None else default_eps(x_u)
        r_adv = eps * adversarial_direction(model, x_u, p, cfg.xi, cfg.power_iterations)
        with _frozen_bn(model):
            vat_loss = kl_div(p, model(x_u + r_adv))
        ent_loss = entropy(torch.softmax(logits_u, dim=1)).mean()
        w = ramp(batch.t, cfg.rampup)

        loss = sup_loss + w * (cfg.lambda_u * vat_loss + cfg.lambda_ent * ent_loss)
        logs = {"sup_loss": sup_loss.detach(), "unsup_loss": vat_loss.detach(), "entropy": ent_loss.detach()}
        return StepOutput(loss, logs, p)
