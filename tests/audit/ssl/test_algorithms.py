"""Each algorithm does what its paper defines (one test each), and every registry entry trains."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audit.errors import InvalidParameterError, UnknownNameError
from audit.ssl.algorithms import ALGORITHMS, Batch
from audit.ssl.algorithms.base import entropy, ramp, sharpen
from audit.ssl.algorithms.fixmatch import FixMatch
from audit.ssl.algorithms.meanteacher import MeanTeacher, consistency
from audit.ssl.algorithms.mixmatch import MixMatch, mixup_lambda
from audit.ssl.algorithms.pimodel import PiModel
from audit.ssl.algorithms.pseudolabel import PseudoLabel
from audit.ssl.algorithms.uda import UDA, uda_targets
from audit.ssl.algorithms.vat import adversarial_direction, kl_div

C = 3  # classes of the hand-built model


def floats(out) -> dict[str, float]:
    """A step's logs as numbers (an algorithm may return 0-dim tensors, read later by the trainer)."""
    return {k: float(v) for k, v in out.logs.items()}


def identity(x, generator=None):
    return x


def noisy(x, generator=None):
    return x + 0.1 * torch.randn_like(x)


def lookup_model(scale: float = 20.0) -> nn.Module:
    """A linear model whose logit k is ``scale`` times pixel k: the input sets the confidence."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, C, bias=False))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[torch.arange(C), torch.arange(C)] = scale
    return model


def images(confident: int, unsure: int) -> torch.Tensor:
    """``confident`` images whose pixel (k mod C) is 1 (one class stands out), then ``unsure``
    blank images (uniform prediction). float32 N×1×4×4."""
    x = torch.zeros(confident + unsure, 1, 4, 4)
    for i in range(confident):
        x[i, 0, 0, i % C] = 1.0
    return x


def batch(x_u: torch.Tensor, *, strong=identity, weak=identity, t: float = 1.0, teacher=None) -> Batch:
    x_l = images(C, 0)
    return Batch(x_l=x_l, y_l=torch.arange(C), x_u=x_u, weak=weak, strong=strong, t=t, teacher=teacher)


# --- FixMatch --------------------------------------------------------------------------------
@pytest.mark.parametrize("weak_no_grad", [False, True])
def test_fixmatch_ignores_unlabeled_examples_below_the_threshold(weak_no_grad):
    algo, model = FixMatch(FixMatch.make_config({"weak_no_grad": weak_no_grad}), num_classes=C), lookup_model()
    x_u = images(4, 4)

    def strong_changing(rows):
        def aug(x, generator=None):
            x = x.clone()
            x[rows] = torch.rand_like(x[rows])  # a different strong view for these rows
            return x
        return aug

    base = algo.step(model, batch(x_u))
    below = algo.step(model, batch(x_u, strong=strong_changing(slice(4, 8))))
    above = algo.step(model, batch(x_u, strong=strong_changing(slice(0, 4))))
    assert floats(base)["mask_rate"] == 0.5
    assert below.loss.item() == pytest.approx(base.loss.item(), abs=1e-7)
    assert floats(above)["unsup_loss"] > floats(base)["unsup_loss"] + 1e-3  # the test can fail
    assert base.unlabeled_probs.shape == (8, C)


def test_fixmatch_distribution_alignment_is_off_by_default_and_undoes_a_one_class_pile_up():
    assert FixMatch.Config().dist_align is False  # the paper's FixMatch has none
    x_u = torch.zeros(6, 1, 4, 4)
    x_u[:, 0, 0, 0] = 1.0  # every unlabeled guess is class 0 at p ≈ 0.965 (scale 4, C = 3)
    plain = FixMatch(num_classes=C).step(lookup_model(4.0), batch(x_u))
    aligned = FixMatch(FixMatch.make_config({"dist_align": True, "dist_align_momentum": 0.0}), num_classes=C)
    out = aligned.step(lookup_model(4.0), batch(x_u))
    assert floats(plain)["mask_rate"] == 1.0
    # p_model = this batch's mean (all class 0), p_labeled uniform: the guesses become uniform
    assert floats(out)["mask_rate"] == 0.0
    torch.testing.assert_close(aligned.p_model, out.unlabeled_probs.mean(0))
    torch.testing.assert_close(aligned.p_labeled, torch.full((C,), 1 / C))
    restored = FixMatch(aligned.config, num_classes=C)
    restored.load_state_dict(aligned.state_dict())
    torch.testing.assert_close(restored.p_model, aligned.p_model)
    with pytest.raises(InvalidParameterError, match="p_labeled, p_model"):
        restored.load_state_dict({"p_model": aligned.p_model})
    with pytest.raises(InvalidParameterError, match="no state"):
        PseudoLabel(num_classes=C).load_state_dict({"p_model": aligned.p_model})


def test_fixmatch_self_adaptive_threshold_follows_the_models_confidence_per_class():
    assert FixMatch.Config().threshold_mode == "fixed"
    x_u = torch.cat([images(4, 0) * 0, images(0, 2)])
    x_u[:4, 0, 0, 0] = 1.0  # four guesses of class 0 at p = softmax(1, 0, 0) = 0.576, two uniform
    fixed = FixMatch(num_classes=C).step(lookup_model(1.0), batch(x_u))
    algo = FixMatch(FixMatch.make_config({"threshold_mode": "self_adaptive", "sat_momentum": 0.0}), num_classes=C)
    out = algo.step(lookup_model(1.0), batch(x_u))
    assert floats(fixed)["mask_rate"] == 0.0  # 0.576 < τ = 0.95
    probs = out.unlabeled_probs
    tau = probs.max(1).values.mean()  # τ_t with λ = 0: this batch's mean top confidence (≈ 0.495)
    torch.testing.assert_close(algo.sat_tau, tau)
    torch.testing.assert_close(algo.class_thresholds(probs), tau * probs.mean(0) / probs.mean(0).max())
    # class 0 (the most predicted) gets τ_t ≈ 0.495: the four 0.576 guesses pass, the uniform ones do not
    assert floats(out)["mask_rate"] == pytest.approx(4 / 6) and floats(out)["threshold"] == pytest.approx(tau.item())
    restored = FixMatch(algo.config, num_classes=C)
    restored.load_state_dict(algo.state_dict())
    torch.testing.assert_close(restored.sat_p, algo.sat_p)
    with pytest.raises(InvalidParameterError, match="must be one of 'fixed', 'self_adaptive', 'flexmatch'. Got 'flex'"):
        FixMatch.make_config({"threshold_mode": "flex"})


def test_fixmatch_flexmatch_thresholds_warm_up_from_zero_and_scale_per_class():
    x_u = torch.zeros(6, 1, 4, 4)
    x_u[:4, 0, 0, 0] = 1.0  # four guesses of class 0 at p = softmax(4, 0, 0) = 0.965
    x_u[4:, 0, 0, 1] = 0.1  # two unsure guesses of class 1 at p = softmax(0, 0.4, 0) = 0.4
    algo = FixMatch(FixMatch.make_config({"threshold_mode": "flexmatch", "flex_momentum": 0.0}), num_classes=C)
    probs = torch.softmax(lookup_model(4.0)(x_u), 1)
    # σ = this batch's confident shares (class 0: 4/6), unused 2/6: β = (1, 0, 0), τ(c) = M(β)·0.95
    torch.testing.assert_close(algo.flex_thresholds(probs), torch.tensor([0.95, 0.0, 0.0]))
    warm = FixMatch(FixMatch.make_config({"threshold_mode": "flexmatch", "flex_momentum": 0.5}), num_classes=C)
    out = warm.step(lookup_model(4.0), batch(x_u))
    # from σ = 0 with momentum 0.5: σ(0) = 1/3, unused 2/3, β(0) = 1/2, τ(0) = M(1/2)·0.95 = 0.95/3
    torch.testing.assert_close(warm.flex_sigma, torch.tensor([1 / 3, 0.0, 0.0]))
    assert floats(out)["mask_rate"] == 1.0  # the unsure class-1 guesses pass τ(1) = 0 (warm-up)
    assert floats(FixMatch(num_classes=C).step(lookup_model(4.0), batch(x_u)))["mask_rate"] == pytest.approx(4 / 6)
    restored = FixMatch(warm.config, num_classes=C)
    restored.load_state_dict(warm.state_dict())
    torch.testing.assert_close(restored.flex_sigma, warm.flex_sigma)
    old = {k: v for k, v in warm.state_dict().items() if k != "flex_sigma"}  # a checkpoint from before the option
    FixMatch(warm.config, num_classes=C).load_state_dict(old)


def test_fixmatch_soft_pseudo_labels_train_towards_the_sharpened_distribution():
    assert FixMatch.Config().pseudo_label == "hard"
    x_u = torch.zeros(2, 1, 4, 4)
    x_u[:, 0, 0, 0], x_u[:, 0, 0, 1] = 1.0, 0.8  # torn between classes 0 and 1, under τ 0.95
    model = lookup_model(2.0)
    cfg = {"pseudo_label": "soft", "soft_temperature": 0.5, "threshold": 0.0}
    out = FixMatch(FixMatch.make_config(cfg), num_classes=C).step(model, batch(x_u))
    hard = FixMatch(FixMatch.make_config({"threshold": 0.0}), num_classes=C).step(model, batch(x_u))
    logits = model(x_u)
    target = sharpen(torch.softmax(logits, 1), 0.5)
    expected = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    assert floats(out)["unsup_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert floats(out)["unsup_loss"] != pytest.approx(floats(hard)["unsup_loss"], rel=1e-3)  # not the argmax loss
    masked = FixMatch(FixMatch.make_config({**cfg, "threshold": 0.95}), num_classes=C).step(model, batch(x_u))
    assert floats(masked)["unsup_loss"] == 0.0 and floats(masked)["mask_rate"] == 0.0
    with pytest.raises(InvalidParameterError, match="'pseudo_label' parameter of FixMatchConfig must be one of 'hard', 'soft'. Got"):
        FixMatch.make_config({"pseudo_label": "fuzzy"})


# --- UDA -------------------------------------------------------------------------------------
def test_uda_targets_are_sharper_than_the_weak_prediction_and_masked_below_08():
    logits = torch.randn(64, 10)
    targets, mask = uda_targets(logits, temperature=0.4, threshold=0.8)
    assert (entropy(targets) < entropy(torch.softmax(logits, 1)) - 1e-4).all()
    assert torch.equal(mask, (torch.softmax(logits, 1).max(1).values >= 0.8).float())

    algo = UDA(num_classes=C)
    unsure = algo.step(lookup_model(scale=1.0), batch(images(4, 0)))  # softmax(1,0,0) max 0.58 < 0.8
    assert floats(unsure)["mask_rate"] == 0.0 and floats(unsure)["unsup_loss"] == 0.0
    # confident (0.87 > 0.8) but not one-hot: with identical weak and strong views the loss is
    # zero only if the target is NOT sharpened (the reference implementation's trap)
    sure = algo.step(lookup_model(scale=2.6), batch(images(4, 0)))
    assert floats(sure)["mask_rate"] == 1.0 and floats(sure)["unsup_loss"] > 1e-3


# --- MixMatch --------------------------------------------------------------------------------
def test_mixmatch_lambda_sharpening_and_rampup():
    torch.manual_seed(0)
    assert (mixup_lambda(0.5, (1000,)) >= 0.5).all()
    p = torch.softmax(torch.randn(32, 10), 1)
    assert (entropy(sharpen(p, 0.5)) < entropy(p)).all()
    assert ramp(0.0, 1 / 16) == 0.0 and ramp(1 / 32, 1 / 16) == 0.5 and ramp(0.5, 1 / 16) == 1.0

    algo, model = MixMatch(num_classes=C), lookup_model(2.0)
    start = algo.step(model, batch(images(4, 4), t=0.0))
    end = algo.step(model, batch(images(4, 4), t=1.0))
    assert floats(start)["lambda_u"] == 0.0 and floats(end)["lambda_u"] == 100.0
    assert floats(start)["mixup_lambda"] >= 0.5 and torch.isfinite(end.loss)
    # a ramp in steps ignores the fraction of the run: step 4000 of a 16 000-step ramp is 25%
    by_steps = MixMatch(MixMatch.make_config({"rampup_steps": 16_000}), num_classes=C)
    quarter = by_steps.step(model, Batch(**{**batch(images(4, 4), t=1.0).__dict__, "step": 4000}))
    assert floats(quarter)["lambda_u"] == pytest.approx(25.0)


# --- VAT -------------------------------------------------------------------------------------
def test_vat_adversarial_direction_beats_a_random_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    x = torch.rand(32, 1, 8, 8)
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    eps = 0.5
    r_adv = eps * adversarial_direction(model, x, p, xi=1e-6)
    r_rand = torch.randn_like(x)
    r_rand = eps * r_rand / r_rand.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert r_adv.flatten(1).norm(dim=1) == pytest.approx(torch.full((32,), eps), rel=1e-4)
    with torch.no_grad():
        assert kl_div(p, model(x + r_adv)) > 3 * kl_div(p, model(x + r_rand))


# --- Mean Teacher ----------------------------------------------------------------------------
def test_meanteacher_consistency_trains_the_student_not_the_teacher():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Flatten(), nn.Linear(16, C))
    teacher = copy.deepcopy(student)
    with torch.no_grad():  # a teacher that disagrees with the student
        teacher[1].weight.mul_(-3)
    x_u = torch.rand(8, 1, 4, 4)

    # the consistency term alone: gradient into the student, none into the teacher
    loss = consistency(student(x_u), torch.softmax(teacher(x_u), 1))
    loss.backward()
    assert student[1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())

    def grads(lambda_u):
        student.zero_grad()
        algo = MeanTeacher(MeanTeacher.make_config({"lambda_u": lambda_u}), num_classes=C)
        algo.step(student, batch(x_u, teacher=teacher)).loss.backward()
        return student[1].weight.grad.clone()

    assert not torch.allclose(grads(0.0), grads(50.0))  # the step's consistency reaches the student
    assert all(p.grad is None for p in teacher.parameters())
    with pytest.raises(InvalidParameterError):
        MeanTeacher(num_classes=C).step(student, batch(x_u))  # no teacher given


# --- Pseudo-Label ----------------------------------------------------------------------------
def test_pseudolabel_trains_only_on_confident_predictions():
    algo, model = PseudoLabel(num_classes=C), lookup_model(scale=4.0)  # softmax(4,0,0) max 0.965
    x_u = torch.cat([images(4, 0), images(4, 0) * 0.5])  # second half: max 0.79 < 0.95
    out = algo.step(model, batch(x_u))
    ce_confident = F.cross_entropy(torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([0])).item()
    assert floats(out)["mask_rate"] == 0.5
    assert floats(out)["unsup_loss"] == pytest.approx(4 * ce_confident / 8, rel=1e-5)


# --- Π-Model ---------------------------------------------------------------------------------
def test_pimodel_passes_differ_and_the_loss_has_a_gradient():
    torch.manual_seed(0)
    algo = PiModel(num_classes=C)
    assert algo.model_options() == {"dropout": 0.5}
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.Dropout(0.5), nn.Linear(16, C))
    x_u = torch.rand(16, 1, 4, 4)
    out = algo.step(model, batch(x_u, weak=noisy))
    assert floats(out)["unsup_loss"] > 0
    zero = PiModel(PiModel.make_config({"lambda_u": 0.0}), num_classes=C)
    torch.manual_seed(1)
    g0 = torch.autograd.grad(zero.step(model, batch(x_u, weak=noisy)).loss, model[1].weight)[0]
    torch.manual_seed(1)
    g1 = torch.autograd.grad(algo.step(model, batch(x_u, weak=noisy)).loss, model[1].weight)[0]
    assert not torch.allclose(g0, g1)


# --- configs and registry --------------------------------------------------------------------
def test_configs_validate_and_registry_lists_names():
    with pytest.raises(InvalidParameterError, match="threshold"):
        FixMatch.make_config({"threshold": 1.5})
    with pytest.raises(InvalidParameterError, match="keys among"):
        FixMatch.make_config({"treshold": 0.9})
    with pytest.raises(UnknownNameError, match="Available: fixmatch, uda, mixmatch"):
        ALGORITHMS.get("fixmach")
    assert ALGORITHMS.names() == ["fixmatch", "uda", "mixmatch", "vat", "meanteacher", "pseudolabel", "pimodel"]


# --- contract: every registry entry trains ---------------------------------------------------
@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_every_algorithm_trains_a_few_steps(name, digits_train):
    from audit.ssl.models import build_model

    torch.manual_seed(0)
    cls = ALGORITHMS.get(name)
    algo = cls(num_classes=10)
    model = build_model("cnn", 10, 1, 8, widths=(8, 16), **algo.model_options())
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    x = torch.from_numpy(digits_train.images).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(digits_train.labels)
    for step in range(3):
        b = Batch(x_l=x[step * 8:(step + 1) * 8], y_l=y[step * 8:(step + 1) * 8], x_u=x[100 + step * 16:116 + step * 16],
                  weak=noisy, strong=noisy, t=(step + 1) / 3, teacher=teacher)
        out = algo.step(model, b)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        assert torch.isfinite(out.loss) and out.logs
        for v in out.logs.values():  # floats, or 0-dim tensors without a graph (the trainer reads them later)
            assert isinstance(v, float) or (isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad), v
        # the losses stay on the device: a float here would be a .item(), a device sync every step
        assert all(isinstance(out.logs[k], torch.Tensor) for k in ("sup_loss", "unsup_loss")), out.logs
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
