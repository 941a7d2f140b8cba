"""Synthetic prediction trajectories with a planted bridge, to validate dynamics scores offline.

Not a model of any particular run: a controlled stand-in with the confounders a real probe
showed (paper 3.3 and 5.3; probe on FixMatch Fashion-MNIST, 50-image bridge):

* clean examples converge to their class along a noisy sigmoid in logit space; classes
  converge at different times and examples spread around their class's time;
* near-duplicate groups share the whole trajectory, noise included (Figure 8's near false
  positives), so their trajectories are as correlated as neighbouring bridge points;
* "hard" clean examples first drift to a wrong class, then flip to their own class late, at
  random times: the natural confounder of any flip-based score;
* the bridge (paper 3.3, Figure 5): member m (alpha = m/(B-1)) is first pulled toward the
  target's true class (more so near x*), then flips to y* at ``start + m·spacing`` records, one
  after another; neighbouring members share most of their noise (they are near-identical images).

Shape contract: ``probs`` float32 ``N×K×C`` softmax; ``bridge`` int64 indices in chain order
(``bridge[-1]`` is x*); rows are shuffled so position carries no signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimConfig:
    n_clean: int = 3000
    num_classes: int = 10
    records: int = 60  # K
    bridge: int = 50  # the paper's bridges are 0.1% of the pool; 50 points is its CIFAR-10 scale
    spacing: float = 0.2  # records between consecutive bridge flips (probe: ~0.2 at one record/epoch)
    noise: float = 0.3  # logit noise per record per class: epoch-to-epoch jitter of SGD
    dup_fraction: float = 0.1  # share of clean examples in near-duplicate groups of 2..4
    hard_fraction: float = 0.05  # clean examples that drift to a wrong class, then flip late
    chain_corr: float = 0.9  # noise correlation between neighbouring bridge members
    feature_dim: int = 32  # stand-in "pixel" features: the bridge is a straight line between two images
    seed: int = 0


@dataclass(frozen=True)
class Simulation:
    probs: np.ndarray  # float32 N×K×C
    ids: tuple[str, ...]
    is_bridge: np.ndarray  # bool N
    bridge: np.ndarray  # int64 B, chain order (x' side first, x* last)
    is_duplicate: np.ndarray  # bool N
    is_hard: np.ndarray  # bool N
    target_class: int  # y*
    features: np.ndarray  # float32 N×d stand-in pixel features: class clusters, duplicates, a line


def _sig(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def simulate(cfg: SimConfig = SimConfig()) -> Simulation:
    rng = np.random.default_rng(cfg.seed)
    k, c, n = cfg.records, cfg.num_classes, cfg.n_clean
    t = np.arange(k, dtype=np.float64)
    logits = np.zeros((n + cfg.bridge, k, c))
    cls = rng.integers(0, c, n)
    base = rng.uniform(0.08 * k, 0.3 * k, c)
    tau = base[cls] + rng.normal(0, 0.08 * k, n)
    width = rng.uniform(1.5, 4.0, n)
    amp = rng.uniform(4.0, 7.0, n)
    noise = rng.normal(0, cfg.noise, (n, k, c))
    # near-duplicate groups: members copy the leader's parameters and noise
    is_dup = np.zeros(n + cfg.bridge, dtype=bool)
    j = 0
    n_dup = int(cfg.dup_fraction * n)
    while j < n_dup:
        g = int(rng.integers(2, 5))
        lead = j
        for m in range(lead + 1, min(lead + g, n)):
            cls[m], tau[m], width[m], amp[m] = cls[lead], tau[lead], width[lead], amp[lead]
            noise[m] = noise[lead] + rng.normal(0, 0.05, (k, c))
        is_dup[lead:lead + g] = True
        j += g
    ar = np.arange(n)
    logits[ar, :, cls] = (amp[:, None] * _sig((t[None] - tau[:, None]) / width[:, None]))
    # hard examples: pulled to a wrong class first, flip to their own class late
    is_hard = np.zeros(n + cfg.bridge, dtype=bool)
    hard = rng.choice(np.arange(n_dup, n), int(cfg.hard_fraction * n), replace=False)
    is_hard[hard] = True
    for h in hard:
        wrong = (cls[h] + rng.integers(1, c)) % c
        t2 = rng.uniform(0.35 * k, 0.9 * k)
        pull = rng.uniform(2.0, 4.0) * _sig((t - tau[h]) / width[h]) * (1 - _sig((t - t2) / width[h]))
        logits[h, :, wrong] = pull
        logits[h, :, cls[h]] = amp[h] * _sig((t - t2) / width[h])
    logits[:n] += noise
    centers = rng.normal(0, 3.0, (c, cfg.feature_dim))
    feats = np.zeros((n + cfg.bridge, cfg.feature_dim))
    feats[:n] = centers[cls] + rng.normal(0, 1.0, (n, cfg.feature_dim))
    for lead in np.flatnonzero(is_dup[:n]):  # duplicates sit on top of the first of their group
        if lead > 0 and is_dup[lead - 1] and cls[lead - 1] == cls[lead] and tau[lead - 1] == tau[lead]:
            feats[lead] = feats[lead - 1] + rng.normal(0, 0.05, cfg.feature_dim)
    # the bridge
    b = cfg.bridge
    y_star = 0
    x_class = 1 + int(rng.integers(0, c - 1))
    start = rng.uniform(0.25 * k, 0.4 * k)
    chain_noise = np.empty((b, k, c))
    if b:
        chain_noise[0] = rng.normal(0, cfg.noise, (k, c))
    rho = cfg.chain_corr
    for m in range(1, b):
        chain_noise[m] = rho * chain_noise[m - 1] + np.sqrt(1 - rho**2) * rng.normal(0, cfg.noise, (k, c))
    for m in range(b):
        alpha = m / max(b - 1, 1)
        flip = start + m * cfg.spacing
        early = base[x_class] + 2.0
        logits[n + m, :, x_class] = 4.0 * alpha * _sig((t - early) / 2.0) * (1 - _sig((t - flip) / 1.5))
        logits[n + m, :, y_star] = 5.5 * _sig((t - flip) / 1.5)
        logits[n + m] += chain_noise[m]
    if b:
        x_src = centers[y_star] + rng.normal(0, 1.0, cfg.feature_dim)
        x_tgt = centers[x_class] + rng.normal(0, 1.0, cfg.feature_dim)
        a = np.linspace(0, 1, b)[:, None]
        feats[n:] = (1 - a) * x_src + a * x_tgt + rng.normal(0, 0.02, (b, cfg.feature_dim))  # uint8 rounding
    probs = np.exp(logits - logits.max(2, keepdims=True))
    probs /= probs.sum(2, keepdims=True)
    perm = rng.permutation(n + b)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(n + b)
    probs = probs[perm].astype(np.float32)
    is_bridge = np.zeros(n + b, dtype=bool)
    is_bridge[n:] = True
    ids = tuple(f"u{i:06d}.png" for i in range(n + b))
    return Simulation(probs, ids, is_bridge[perm], inv[n + np.arange(b)].astype(np.int64),
                      is_dup[perm], is_hard[perm], y_star, feats[perm].astype(np.float32))
