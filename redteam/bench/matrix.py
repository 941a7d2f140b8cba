"""The bench's experiment matrix: attacks × algorithms × poison ratios × densities × trials, plus a
clean control (no poison) per algorithm and trial (paper 3.2.1, Tables 1 and 3).

Trial ``t`` of every cell uses the same seed (``BenchConfig.seed + t``) for the injection and for
training. ``redteam.inject`` draws the labeled set, the pool, x*, y* and x' from independent
streams of that seed, so the same (x', x*, y*) and the same labeled set, pool and training
batches are reused across cells and only the poison differs: "within each figure or table we
re-use the same randomly selected images to reduce the statistical noise" (3.2.1). The clean
control of trial t is that same pool without poison; its x* tells how often the victim would
call x* y* anyway.

A trial is identified by the SHA-256 of its :meth:`TrialSpec.to_json` (every field that changes
its result), so a finished trial is reused only by an identical one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Mapping

from audit.dynamics import SCORES
from audit.errors import invalid_parameter
from audit.ssl.algorithms import ALGORITHMS
from audit.ssl.config import TrainConfig
from audit.ssl.models import MODELS
from audit.validate import check_choice
from redteam.attacks import ATTACKS
from redteam.density import DENSITIES
from redteam.inject import MAX_RATIO

SPEC_VERSION = 1  # bump when a trial's meaning changes: every stored trial is then recomputed
CONTROL = "none"  # the attack (and density) name of the clean control cells


PIXELS = "+pixels"  # suffix of a dynamics score name: give the score the pool's pixels


# How the victim trains is a TrainConfig (audit.ssl.config: its one definition and validation);
# each cell sets its algo and seed, each trial the rest (TrialSpec.train_config). A trial's
# identity names the fields below always (what the first stored trials named, so their keys
# hold), every other field only when off its default, and never those that do not change a
# result: the same trial on a GPU is the same trial.
_KEYED = ("model", "model_options", "steps", "batch_size", "mu", "lr", "ema", "weight_decay", "flip",
          "observe_every")
_UNKEYED = ("algo", "seed", "device", "eval_every", "checkpoint_every", "log_every", "allow_repeats")


def train_json(train: TrainConfig) -> dict:
    """The training part of a trial's identity (see above); dicts for the option mappings."""
    default = TrainConfig()
    out = {}
    for f in dataclasses.fields(TrainConfig):
        v = getattr(train, f.name)
        if f.name in _KEYED or (f.name not in _UNKEYED and v != getattr(default, f.name)):
            out[f.name] = dict(v) if isinstance(v, Mapping) else v
    return out


SOURCE_CHOICES = ("random", "nearest")


@dataclass(frozen=True)
class Pair:
    """An attacker's choice for one trial index (paper 3.2.3: some pairs are far easier). None
    leaves that part to ``redteam.inject``'s seeded draw: x* a random test image, y* a random
    other class, x' a random labeled image of class y*."""

    target: int | None = None  # index of x* in the test split
    target_label: int | None = None  # y*
    source: int | None = None  # index of x' in the labeled set (ordered by class)

    def __post_init__(self) -> None:
        for name in ("target", "target_label", "source"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise invalid_parameter(name, "a bench pair", "an int >= 0 or None", v)

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class BenchConfig:
    dataset: str = "digits"  # builtin name or dataset path (audit.data.load.load_dataset)
    root: str | None = None
    labels_per_class: int = 4  # the paper's 40 labels on 10 classes
    pool: int | None = None  # clean unlabeled pool size; None: every training image not labeled
    algos: tuple[str, ...] = ("fixmatch",)
    attacks: tuple[str, ...] = ("linear",)
    ratios: tuple[float, ...] = (0.001,)  # poisoned / clean pool; the clean control (0) is always added
    densities: tuple[str, ...] = ("1.5-x",)
    trials: int = 8  # the paper's 8 attempts per cell
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)  # its algo and seed come from each cell
    # audit.dynamics.SCORES names; "NAME+pixels" scores with the pool's pixels as its features
    dynamics_scores: tuple[str, ...] = ("influence", "chain", "chain+pixels")
    # x' given x* and y*: "random" (the paper: any labeled image of class y*), or "nearest" (the
    # labeled y* image closest to x* in pixel space: the attacker knows the labeled set, 3.1)
    source_choice: str = "random"
    pairs: tuple[Pair, ...] | None = None  # trial t uses pairs[t]: chosen x*/y*/x' (None: drawn)
    preset: str = "custom"  # the preset this came from (a label in the report; not in trial identity)

    def __post_init__(self) -> None:
        own = "the bench"
        for name in ("algos", "attacks", "ratios", "densities", "dynamics_scores"):
            v = getattr(self, name)
            object.__setattr__(self, name, tuple(v))
            if not v or len(set(v)) != len(v):
                raise invalid_parameter(name, own, "a non-empty list without repeats", list(v))
        for a in self.algos:
            ALGORITHMS.get(a)
        for a in self.attacks:
            ATTACKS.get(a)
        for d in self.densities:
            DENSITIES.get(d)
        for s in self.dynamics_scores:
            SCORES.get(s.removesuffix(PIXELS))
        for r in self.ratios:
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= MAX_RATIO:
                raise invalid_parameter("ratios", own, f"floats in (0, {MAX_RATIO}] (the clean control is always "
                                        f"included)", r)
        for name, lo in (("trials", 1), ("labels_per_class", 1), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise invalid_parameter(name, own, f"an int >= {lo}", v)
        if self.pool is not None and (isinstance(self.pool, bool) or not isinstance(self.pool, int) or self.pool < 3):
            raise invalid_parameter("pool", own, "an int >= 3 or None", self.pool)
        check_choice(own, "source_choice", self.source_choice, SOURCE_CHOICES)
        if self.pairs is not None:
            pairs = tuple(p if isinstance(p, Pair) else Pair(**p) for p in self.pairs)
            object.__setattr__(self, "pairs", pairs)
            if len(pairs) < self.trials:
                raise invalid_parameter("pairs", own, f"one pair per trial (at least {self.trials})", len(pairs))
        MODELS.get(self.train.model)
        for name in ("algo_config", "augment_options"):  # dicts: they are part of a trial's JSON identity
            v = getattr(self.train, name)
            if v is not None and not isinstance(v, Mapping):
                raise invalid_parameter(f"train.{name}", own, "a dict or None", v)
        if self.train.algo_config is not None:
            for a in self.algos:  # each algorithm checks the keys against its own config
                ALGORITHMS.get(a).make_config(dict(self.train.algo_config))

    @property
    def headline_density(self) -> str:
        """The density of the Table 1 view and the success plot: the paper's default when run."""
        return "1.5-x" if "1.5-x" in self.densities else self.densities[0]

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["train"] = {**train_json(self.train), "device": self.train.device}
        d["pairs"] = None if self.pairs is None else [p.to_json() for p in self.pairs]
        return d


@dataclass(frozen=True)
class TrialSpec:
    """One trial: a cell of the matrix and its trial index. ``attack == CONTROL``: no poison."""

    dataset: str
    root: str | None
    labels_per_class: int
    pool: int | None
    algo: str
    attack: str
    ratio: float  # 0.0 for the clean control
    density: str  # CONTROL for the clean control
    trial: int
    seed: int  # injection and training seed: BenchConfig.seed + trial
    train: TrainConfig
    dynamics_scores: tuple[str, ...]
    source_choice: str = "random"
    pair: Pair | None = None

    @property
    def is_control(self) -> bool:
        return self.attack == CONTROL

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["train"] = train_json(self.train)
        d["dynamics_scores"] = list(self.dynamics_scores)
        # absent at their defaults, so trials stored before these options keep their keys
        if self.source_choice == "random":
            d.pop("source_choice")
        if self.pair is None or not self.pair.to_json():
            d.pop("pair")
        else:
            d["pair"] = self.pair.to_json()
        return {"version": SPEC_VERSION, **d}

    @classmethod
    def from_json(cls, d: dict) -> "TrialSpec":
        """The spec a stored trial was run with (its ``spec``), e.g. to rebuild its pool."""
        d = {k: v for k, v in d.items() if k != "version"}
        d["train"] = TrainConfig(**d["train"])
        d["dynamics_scores"] = tuple(d["dynamics_scores"])
        d["pair"] = Pair(**d["pair"]) if d.get("pair") else None
        return cls(**d)

    def train_config(self, seed: int | None = None) -> TrainConfig:
        """What the victim of this trial trains with (``seed``: another seed, e.g. a surrogate's)."""
        return dataclasses.replace(self.train, algo=self.algo, seed=self.seed if seed is None else seed,
                                   eval_every=0, checkpoint_every=0, allow_repeats=True)  # 40 labels < B, as the paper

    def control(self) -> "TrialSpec":
        """The clean control of this trial's row (same algorithm, trial, pair and training)."""
        return dataclasses.replace(self, attack=CONTROL, ratio=0.0, density=CONTROL)

    @property
    def key(self) -> str:
        """16 hex digits of SHA-256 over the canonical JSON of :meth:`to_json`."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def label(self) -> str:
        what = "clean control" if self.is_control else f"{self.attack} {self.ratio:g} {self.density}"
        return f"{self.algo} · {what} · trial {self.trial}"


def expand(config: BenchConfig) -> list[TrialSpec]:
    """Every trial of the matrix, trial index outermost: a bench cut short still has whole
    rounds of every cell (comparable columns) rather than all trials of the first cells."""
    out = []
    for t in range(config.trials):
        common = dict(dataset=config.dataset, root=config.root, labels_per_class=config.labels_per_class,
                      pool=config.pool, trial=t, seed=config.seed + t, train=config.train,
                      dynamics_scores=config.dynamics_scores, source_choice=config.source_choice,
                      pair=None if config.pairs is None else config.pairs[t])
        for algo in config.algos:
            out.append(TrialSpec(algo=algo, attack=CONTROL, ratio=0.0, density=CONTROL, **common))
            for attack in config.attacks:
                for ratio in config.ratios:
                    for density in config.densities:
                        out.append(TrialSpec(algo=algo, attack=attack, ratio=float(ratio), density=density,
                                             **common))
    return out
