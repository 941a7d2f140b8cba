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

Optional, off by default: FlexMatch-style class-wise thresholds (Zhang et al., NeurIPS 2021,
Curriculum Pseudo Labeling), ``threshold_mode="flexmatch"``: τ(c) = M(β(c))·τ with the convex
mapping M(x) = x/(2 − x), β(c) = σ(c) / max(max σ, unused), where σ(c) is the share of unlabeled
examples confidently (≥ τ) predicted c and "unused" the share not confident at all (FlexMatch's
threshold warm-up). FlexMatch counts σ over the latest prediction of every example of the pool;
a step here sees only its batch, so σ is a running mean over batches (``flex_momentum``): the
same curriculum, estimated instead of counted.

Optional, off by default: soft pseudo-labels, ``pseudo_label="soft"``: the strong view is
trained towards the whole (optionally sharpened, ``soft_temperature``) weak-view distribution
instead of its argmax, still masked by the threshold; a contested image then pulls towards the
classes it is torn between rather than towards whichever is on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audit.errors import invalid_parameter
from audit.ssl.algorithms.base import (
    Algorithm, Batch, StepOutput, forward_split, sharpen, soft_cross_entropy,
)
from audit.validate import check_choice, check_float


THRESHOLD_MODES = ("fixed", "self_adaptive", "flexmatch")
PSEUDO_LABELS = ("hard", "soft")


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
    # decay per step of the running σ(c) of threshold_mode="flexmatch": ~100 batches, about the
    # steps in which a CPU run's batches cover the pool a few times (FlexMatch refreshes each
    # example's entry once per pass over the pool)
    flex_momentum: float = 0.99
    pseudo_label: str = "hard"  # "hard" (FixMatch: the argmax) or "soft" (the weak-view distribution)
    soft_temperature: float = 1.0  # soft targets are sharpen(p, T); 1 = the distribution as it is

    def __post_init__(self) -> None:
        check_float("FixMatchConfig", "threshold", self.threshold, 0.0, 1.0)
        check_float("FixMatchConfig", "lambda_u", self.lambda_u, 0.0)
        check_float("FixMatchConfig", "dist_align_momentum", self.dist_align_momentum, 0.0, 1.0)
        check_float("FixMatchConfig", "sat_momentum", self.sat_momentum, 0.0, 1.0)
        check_float("FixMatchConfig", "flex_momentum", self.flex_momentum, 0.0, 1.0)
        check_float("FixMatchConfig", "soft_temperature", self.soft_temperature, 0.0, low_open=True)
        check_choice("FixMatchConfig", "threshold_mode", self.threshold_mode, THRESHOLD_MODES)
        check_choice("FixMatchConfig", "pseudo_label", self.pseudo_label, PSEUDO_LABELS)
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
        # FlexMatch-style σ(c) (unused otherwise): share of examples confidently predicted c;
        # 0 at the start, so every class begins in the warm-up (its threshold near 0)
        self.flex_sigma = torch.zeros(num_classes)

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
        elif cfg.threshold_mode == "flexmatch":
            mask = (confidence >= self.flex_thresholds(guess)[pseudo]).float()
        else:
            mask = (confidence >= cfg.threshold).float()
        if cfg.pseudo_label == "soft":
            each = soft_cross_entropy(logits_u_s, sharpen(guess, cfg.soft_temperature))
        else:
            each = F.cross_entropy(logits_u_s, pseudo, reduction="none")
        unsup_loss = (each * mask).mean()

        loss = sup_loss + cfg.lambda_u * unsup_loss
        # 0-dim tensors, read by the trainer every log_every steps: .item() here would make every
        # step wait for the GPU
        logs = {"sup_loss": sup_loss.detach(), "unsup_loss": unsup_loss.detach(), "mask_rate": mask.mean()}
        if cfg.threshold_mode == "self_adaptive":
            logs["threshold"] = self.sat_tau.detach().clone()
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

    @torch.no_grad()
    def flex_thresholds(self, probs: Tensor) -> Tensor:
        """FlexMatch-style thresholds: update σ(c) with this batch's confident (≥ τ) predictions
        (``N×C`` probabilities), return τ(c) = M(β(c))·τ, M(x) = x/(2 − x), for every class."""
        m, tau = self.config.flex_momentum, self.config.threshold
        confidence, pred = probs.max(dim=1)
        sure = torch.bincount(pred[confidence >= tau], minlength=self.num_classes).float() / len(probs)
        self.flex_sigma = m * self.flex_sigma.to(probs.device) + (1 - m) * sure
        unused = (1 - self.flex_sigma.sum()).clamp_min(0)
        beta = self.flex_sigma / torch.maximum(self.flex_sigma.max(), unused).clamp_min(1e-12)
        return beta / (2 - beta) * tau

    _STATE = ("p_labeled", "p_model", "sat_p", "sat_tau", "flex_sigma")
    _ADDED = ("flex_sigma",)  # absent from checkpoints written before it: restored as initialised

    def state_dict(self) -> dict[str, Tensor]:
        return {name: getattr(self, name).clone() for name in self._STATE}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        if not set(self._STATE) - set(self._ADDED) <= set(state) <= set(self._STATE):
            raise invalid_parameter("state", "FixMatch", f"a dict with keys {', '.join(self._STATE)}", sorted(state))
        for name in self._STATE:
            if name in state:
                setattr(self, name, state[name].clone())
