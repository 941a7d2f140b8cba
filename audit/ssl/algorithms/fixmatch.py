"""FixMatch (Sohn et al., NeurIPS 2020; paper Appendix A): a hard pseudo-label from the weak view,
kept only where its confidence reaches the threshold, trained with cross-entropy on the strong view.

Optional, off by default (not part of FixMatch): distribution alignment (Berthelot et al.,
*ReMixMatch*, ICLR 2020, section 3.2). The weak-view probabilities are multiplied by
p_labeled / p_model (running means of the labeled class frequencies and of the model's own
weak-view predictions) and renormalised before the threshold. With 4 labels per class the model's
early guesses pile onto a few classes and FixMatch's confident-only loss reinforces them
(confirmation bias); alignment keeps the pseudo-label marginal near the labeled one.

Optional, off by default (not part of FixMatch): FreeMatch's self-adaptive threshold (Wang et al.,
ICLR 2023, section 3.2), ``threshold_mode="self_adaptive"``. Instead of a fixed τ, a global
threshold τ_t (running mean of the batch's mean top confidence, starting at 1/C) scaled per class
by the max-normalised running mean of the predicted class probabilities: τ_t(c) =
τ_t · p̃_t(c) / max p̃_t. Classes the model is still unsure of get a lower bar, so they are not
starved of pseudo-labels early on. ``threshold`` is unused in that mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audit.errors import invalid_parameter
from audit.ssl.algorithms.base import Algorithm, Batch, StepOutput, check_range, forward_split


THRESHOLD_MODES = ("fixed", "self_adaptive")


@dataclass(frozen=True)
class FixMatchConfig:
    threshold: float = 0.95  # τ: confidence a weak-view prediction needs to become a pseudo-label
    lambda_u: float = 1.0  # weight of the unlabeled loss (μ = 7 is TrainConfig.mu)
    # False: labeled, weak and strong views in one forward pass (BatchNorm sees them together, as
    # the reference code). True: the weak view, which only makes labels, in its own no-grad pass:
    # about 30% less compute per step on CPU, BatchNorm statistics of that pass its own
    weak_no_grad: bool = False
    dist_align: bool = False  # ReMixMatch's distribution alignment of the weak-view probabilities (not FixMatch's)
    # decay per step of the two running means alignment uses: ~100 batches, ReMixMatch's 128-batch
    # window; USB's 0.999 barely leaves the uniform start within a few-thousand-step CPU run
    dist_align_momentum: float = 0.99
    threshold_mode: str = "fixed"  # "fixed" (τ = threshold) or "self_adaptive" (FreeMatch's τ_t(c))
    sat_momentum: float = 0.999  # λ of FreeMatch's running means (the paper's value)

    def __post_init__(self) -> None:
        check_range("FixMatchConfig", "threshold", self.threshold, 0.0, 1.0)
        check_range("FixMatchConfig", "lambda_u", self.lambda_u, 0.0, float("inf"))
        check_range("FixMatchConfig", "dist_align_momentum", self.dist_align_momentum, 0.0, 1.0)
        check_range("FixMatchConfig", "sat_momentum", self.sat_momentum, 0.0, 1.0)
        if self.threshold_mode not in THRESHOLD_MODES:
            raise invalid_parameter("threshold_mode", "FixMatchConfig", f"one of {', '.join(THRESHOLD_MODES)}",
                                    self.threshold_mode)
        for name in ("weak_no_grad", "dist_align"):
            if not isinstance(getattr(self, name), bool):
                raise invalid_parameter(name, "FixMatchConfig", "a bool", getattr(self, name))


class FixMatch(Algorithm):
    Config = FixMatchConfig

    def __init__(self, config=None, *, num_classes: int) -> None:
        super().__init__(config, num_classes=num_classes)
        uniform = torch.full((num_classes,), 1.0 / num_classes)
        # running means for distribution alignment (unused without it): model's weak-view
        # prediction and labeled class frequency, both N=C probability vectors
        self.p_model, self.p_labeled = uniform.clone(), uniform.clone()
        # FreeMatch's running means (unused with a fixed threshold): global confidence τ_t and
        # class-wise mean prediction p̃_t, both starting at 1/C as in the paper
        self.sat_tau, self.sat_p = torch.tensor(1.0 / num_classes), uniform.clone()

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
        guess = self.align(probs_w, batch.y_l) if cfg.dist_align else probs_w
        confidence, pseudo = guess.max(dim=1)
        if cfg.threshold_mode == "self_adaptive":
            mask = (confidence >= self.class_thresholds(guess)[pseudo]).float()
        else:
            mask = (confidence >= cfg.threshold).float()
        unsup_loss = (F.cross_entropy(logits_u_s, pseudo, reduction="none") * mask).mean()

        loss = sup_loss + cfg.lambda_u * unsup_loss
        logs = {"sup_loss": sup_loss.item(), "unsup_loss": unsup_loss.item(), "mask_rate": mask.mean().item()}
        if cfg.threshold_mode == "self_adaptive":
            logs["threshold"] = self.sat_tau.item()
        return StepOutput(loss, logs, probs_w)

    @torch.no_grad()
    def align(self, probs: Tensor, labels: Tensor) -> Tensor:
        """Distribution alignment: update the running means with this batch, then return
        ``probs·p_labeled/p_model`` renormalised (``N×C`` probabilities in, the same out)."""
        m = self.config.dist_align_momentum
        counts = torch.bincount(labels, minlength=self.num_classes).float()
        self.p_labeled = (m * self.p_labeled.to(probs.device) + (1 - m) * counts / counts.sum())
        self.p_model = (m * self.p_model.to(probs.device) + (1 - m) * probs.mean(dim=0))
        aligned = probs * (self.p_labeled / self.p_model.clamp_min(1e-6))
        return aligned / aligned.sum(dim=1, keepdim=True)

    @torch.no_grad()
    def class_thresholds(self, probs: Tensor) -> Tensor:
        """FreeMatch's self-adaptive thresholds: update τ_t and p̃_t with this batch's
        probabilities (``N×C``), return τ_t(c) = τ_t · p̃_t(c) / max p̃_t for every class."""
        m = self.config.sat_momentum
        self.sat_tau = m * self.sat_tau.to(probs.device) + (1 - m) * probs.max(dim=1).values.mean()
        self.sat_p = m * self.sat_p.to(probs.device) + (1 - m) * probs.mean(dim=0)
        return self.sat_tau * self.sat_p / self.sat_p.max()

    _STATE = ("p_labeled", "p_model", "sat_p", "sat_tau")

    def state_dict(self) -> dict[str, Tensor]:
        return {name: getattr(self, name).clone() for name in self._STATE}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        if set(state) != set(self._STATE):
            raise invalid_parameter("state", "FixMatch", f"a dict with keys {', '.join(self._STATE)}", sorted(state))
        for name in self._STATE:
            setattr(self, name, state[name].clone())
