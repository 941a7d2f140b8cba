"""Attacking transfer learning (paper 4.3): the adversary knows the victim's initial weights θ_init.

It computes x' = argmin ‖δ‖ subject to f_θinit(x* + δ) = y* — a point next to x* that the
initial model *already* labels y* — and bridges x' → x* (3.1, with the density). The bridge is
short, so the label has little way to travel. The minimisation is Carlini–Wagner-L2-style:
Adam on δ minimising ‖δ‖² + c·CE(f(clip(x*+δ)), y*), with a binary search on c (up when no
success, down after one); a candidate counts only once *rounded to uint8* (what is written) it
is still classified y*, and the smallest such ‖δ‖ wins. x' is a synthetic image: it is the α = 0
point and the manifest's source.

θ_init (``model_path``): the SSL trainer's ``model.pt`` (a dict with ``model``, ``num_classes``,
``in_channels``, ``image_size``, ``model_options``, ``state_dict``; see audit.ssl.trainer), or a
plain ``state_dict`` of a model of ``audit.ssl.models`` named by ``model`` (built for the data's
channels, size and number of classes with default options). Images enter the model as float32
``B×C×H×W`` in [0, 1], as everywhere in audit.ssl.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from audit.errors import CheckpointError, InvalidParameterError, ShapeMismatchError
from audit.validate import check_float, check_int
from redteam.attacks._bridge import SOURCE_POINT, bridge_points
from redteam.attacks.base import Attack, AttackContext, PoisonBatch
from redteam.attacks.linear import interpolate
from redteam.density import alphas

if TYPE_CHECKING:  # torch is imported where an attack runs: listing attacks (`redteam --help`) stays fast
    import torch

_TRAINER_KEYS = ("model", "num_classes", "in_channels", "image_size", "state_dict")


@dataclass(frozen=True)
class TransferConfig:
    model_path: str = ""  # θ_init: a trainer model.pt, or a state_dict file (then `model` names it)
    model: str = "cnn"  # the audit.ssl.models name for a plain state_dict (ignored for model.pt)
    c_init: float = 1.0  # first weight of the CE term (δ in [0, 1] pixel units, ‖δ‖² summed)
    search_steps: int = 6  # binary-search rounds on c (C&W used 9; 6 is enough for one image)
    steps: int = 100  # Adam steps per round
    lr: float = 0.01  # Adam step on δ, in [0, 1] pixel units (2.55 uint8)
    device: str = "auto"  # CUDA when present

    def __post_init__(self) -> None:
        own = "transfer"
        if not isinstance(self.model_path, str):
            raise InvalidParameterError(f"The 'model_path' parameter of {own} must be a path. "
                                        f"Got {self.model_path!r} instead.")
        check_float(own, "c_init", self.c_init, 0.0, 1e6, low_open=True)
        check_int(own, "search_steps", self.search_steps, 1, 50)
        check_int(own, "steps", self.steps, 1, 100_000)
        check_float(own, "lr", self.lr, 0.0, 1.0, low_open=True)
        from audit.ssl.trainer import resolve_device

        resolve_device(self.device, own)


def load_init_model(path: str, model: str, shape: tuple[int, int, int], num_classes: int) -> torch.nn.Module:
    """θ_init as an eval-mode model for ``shape`` (H, W, C) images and ``num_classes`` classes;
    one clear error when the file is missing, unreadable, or built for other data."""
    import torch

    from audit.ssl.models import MODELS, build_model

    if not path:
        raise InvalidParameterError("The 'model_path' parameter of transfer must be the path of θ_init "
                                    "(a trainer model.pt or a state_dict). Got '' instead.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no θ_init checkpoint at {path}") from None
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable model checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is neither a trainer model.pt nor a state_dict")
    h, w, c = shape
    if all(k in state for k in _TRAINER_KEYS):
        got = (tuple(state["image_size"]), int(state["in_channels"]), int(state["num_classes"]))
        if got != ((h, w), c, num_classes):
            raise ShapeMismatchError(
                f"θ_init {path} is a {state['model']} for {got[0][0]}×{got[0][1]}×{got[1]} images and {got[2]} "
                f"classes, but the data is {h}×{w}×{c} with {num_classes} classes")
        model, weights = str(state["model"]), state["state_dict"]
        options = dict(state.get("model_options") or {})
    else:
        MODELS.get(model)  # Unknown model 'foo'. Available: ...
        weights, options = state, {}
    net = build_model(model, num_classes, c, (h, w), **options)
    try:
        net.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in first if "size mismatch" in ln or "Missing" in ln or "Unexpected" in ln),
                      first[0] if first else type(exc).__name__)
        raise ShapeMismatchError(f"θ_init {path} does not fit a '{model}' for {h}×{w}×{c} images and {num_classes} "
                                 f"classes: {detail.rstrip('.')}") from None
    return net.eval()


def smallest_perturbation(net: torch.nn.Module, x: np.ndarray, label: int, cfg: TransferConfig,
                          device: torch.device) -> tuple[np.ndarray | None, float]:
    """(x' uint8 ``H×W×C`` or None, the c that found it): the smallest-L2 rounded x' = x + δ
    with argmax f(x') = label over the binary search (see the module doc)."""
    import torch
    import torch.nn.functional as F

    from audit.ssl.augment import to_float

    x0 = to_float(x[None], device)
    target = torch.tensor([label], device=device)
    best, best_l2, best_c = None, np.inf, float("nan")
    lo, hi, c = 0.0, np.inf, float(cfg.c_init)
    for _ in range(cfg.search_steps):
        delta = torch.zeros_like(x0, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=cfg.lr)
        found = False
        for _ in range(cfg.steps):
            xa = (x0 + delta).clamp(0.0, 1.0)
            loss = (delta ** 2).sum() + c * F.cross_entropy(net(xa), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():  # what would be written: rounded uint8
                cand = ((x0 + delta).clamp(0.0, 1.0) * 255.0).round().div(255.0)
                if int(net(cand).argmax(1)) == label:
                    l2 = float(((cand - x0) * 255.0).norm())
                    found = True
                    if l2 < best_l2:
                        best_l2, best_c = l2, c
                        best = (cand[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
        if found:
            hi = min(hi, c)
        else:
            lo = max(lo, c)
        c = (lo + hi) / 2.0 if np.isfinite(hi) else c * 10.0
    return best, best_c


class Transfer(Attack):
    """x' = the smallest rounded x* + δ that θ_init labels y*, then the bridge x' → x*."""

    name = "transfer"
    Config = TransferConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        import torch

        from audit.ssl.augment import to_float
        from audit.ssl.trainer import resolve_device

        cfg = self.config
        k = ctx.train.num_classes or int(ctx.train.labels.max()) + 1
        net = load_init_model(cfg.model_path, cfg.model, ctx.train.shape, k)
        device = resolve_device(cfg.device)
        net = net.to(device)
        for p in net.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            pred_target = int(net(to_float(ctx.target[None], device)).argmax(1))
        if pred_target == ctx.target_label:
            x_src, c_used = ctx.target.copy(), 0.0  # θ_init already labels x* as y*: δ = 0
        else:
            x_src, c_used = smallest_perturbation(net, ctx.target, ctx.target_label, cfg, device)
            if x_src is None:
                raise InvalidParameterError(
                    f"The transfer attack found no x' = x* + δ that θ_init classifies as {ctx.target_label} in "
                    f"{cfg.search_steps} search rounds up to c = {cfg.c_init * 10 ** (cfg.search_steps - 1):g}; "
                    f"raise 'steps', 'search_steps' or 'c_init'")
        with torch.no_grad():
            p_src = torch.softmax(net(to_float(x_src[None], device)), 1)[0]
        d = x_src.astype(np.float64) - ctx.target.astype(np.float64)
        a = alphas(ctx.density, ctx.n)
        meta = {
            "interpolation": "linear pixel blend from a synthetic x' = x* + δ",
            SOURCE_POINT: 0,
            "delta_l2": float(np.linalg.norm(d)),  # uint8 units
            "delta_linf": float(np.abs(d).max()),  # uint8 units
            "c": float(c_used),
            "theta_init_label_of_target": pred_target,
            "theta_init_confidence_of_source": float(p_src[ctx.target_label]),
        }
        return PoisonBatch(images=interpolate(x_src, ctx.target, a), points=bridge_points(a), meta=meta)
