"""The attacker's choice of target label and source from a surrogate model (paper 3.2.3, Figure 3:
some pairs are far easier; 4.4: "we currently do not have a technique to predict which samples
will be good or bad sources (other than brute force training)").

Threat model (stated in every report that uses it): the attacker knows the victim's labeled set
and unlabeled pool (the paper's "at least partial knowledge of the training data", 3.1) but not
its training seed. It trains a *surrogate*: the victim's algorithm and setup on the clean data,
with another seed, and reads, for every candidate target x* that the surrogate classifies
correctly and confidently,

* y*: the surrogate's runner-up class for x* (the label the model already half believes);
* x': the labeled image of class y* nearest to x* in pixel space;
* the surrogate's clean boundary on the line x' → x* (``propagation.fronts`` on the probe line):
  how far towards x* a model that never saw a bridge already calls the line y*.

A rule then picks one candidate per trial; the victim is trained with the chosen pair, poisoned
and clean (the control: how often x* ends as y* anyway). Nothing of the victim's run is used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from audit.data.imageset import Splits
from audit.errors import invalid_parameter
from audit.ssl.trainer import Trainer
from redteam.bench.matrix import BenchConfig, Pair, expand
from redteam.bench.propagation import PROBE_POINTS, fronts, probe_line

SURROGATE_SEED = 1000  # the surrogate trains with seed + this: the victim's seed is unknown to it
RULES = ("runner-up", "near-boundary")


@dataclass(frozen=True)
class Candidate:
    target: int  # test index of x*
    true_label: int
    target_label: int  # y*: the surrogate's runner-up
    source: int  # labeled index of x': nearest of class y*
    p_true: float  # surrogate P(c(x*) | x*)
    boundary: float | None  # surrogate's clean boundary on x' → x* (None: x' itself not called y*)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def surrogate_candidates(config: BenchConfig, trial: int, splits: Splits, *, max_candidates: int = 400,
                         min_confidence: float = 0.9) -> list[Candidate]:
    """Train the surrogate of ``trial`` (module doc) and describe up to ``max_candidates`` targets
    (a seeded sample of the confidently, correctly classified test images)."""
    from redteam.bench.trial import poisoned_pool

    spec = next(s for s in expand(replace(config, pairs=None)) if s.trial == trial and s.is_control)
    ds = poisoned_pool(splits, spec)
    trainer = Trainer(spec.train_config(seed=spec.seed + SURROGATE_SEED), ds.labeled, ds.unlabeled.without_labels(),
                      ds.test)
    trainer.fit()
    probs = trainer.predict(ds.test)
    labels = ds.test.labels
    ok = np.flatnonzero((probs.argmax(1) == labels) & (probs[np.arange(len(labels)), labels] >= min_confidence))
    rng = np.random.default_rng(spec.seed + SURROGATE_SEED)
    chosen = np.sort(rng.choice(ok, min(max_candidates, len(ok)), replace=False))
    flat = ds.labeled.images.reshape(len(ds.labeled), -1).astype(np.float64)
    out = []
    for t in chosen:
        y_star = int(np.argsort(probs[t])[-2])
        of_class = np.flatnonzero(ds.labeled.labels == y_star)
        x_star = ds.test.images[t]
        src = int(of_class[np.argmin(((flat[of_class] - x_star.reshape(-1)) ** 2).sum(1))])
        alphas, line = probe_line(ds.labeled.images[src], x_star, PROBE_POINTS)
        front = fronts(trainer.predict(line)[:, None, :], alphas, y_star)[0]
        out.append(Candidate(int(t), int(labels[t]), y_star, src, float(probs[t, labels[t]]),
                             None if np.isnan(front) else float(front)))
    return out


def choose(candidates: list[Candidate], rule: str, seed: int, *, band: tuple[float, float] = (0.7, 0.9)) -> Candidate:
    """``runner-up``: any candidate (seeded draw); ``near-boundary``: a candidate whose surrogate
    clean boundary lies in ``band`` (seeded draw; the closest to the band when none does)."""
    if rule not in RULES:
        raise invalid_parameter("rule", "choose", f"one of {', '.join(RULES)}", rule)
    if not candidates:
        raise invalid_parameter("candidates", "choose", "at least one candidate", 0)
    rng = np.random.default_rng(seed)
    pool = candidates
    if rule == "near-boundary":
        pool = [c for c in candidates if c.boundary is not None and band[0] <= c.boundary <= band[1]]
        if not pool:
            lo, hi = band
            pool = [min((c for c in candidates if c.boundary is not None),
                        key=lambda c: max(lo - c.boundary, c.boundary - hi), default=candidates[0])]
    return pool[int(rng.integers(len(pool)))]


def to_pair(c: Candidate) -> Pair:
    return Pair(target=c.target, target_label=c.target_label, source=c.source)
