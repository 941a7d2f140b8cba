"""Poison a dataset in memory, then (optionally) write it as folders plus a ground-truth manifest.

Paper sections 3.1 and 3.2.1: the victim trains on ``labels_per_class`` labeled examples per
class and an unlabeled pool (the rest of the training split). The adversary picks a target x*
(a TEST image: the image to be misclassified at test time), a label y* ≠ c(x*), and a labeled
source x' of class y*, and inserts n = max(2, round(ratio × pool size)) poisoned images into the
pool. The ratio is relative to the CLEAN unlabeled pool size, as in the paper ("0.1% of the
unlabeled dataset").

Randomness: one ``SeedSequence(seed)`` spawns independent streams for the labeled choice, the pool
subsample, the target, the source and the attack, so fixing ``target`` does not change which
examples are labeled. Same config and data ⇒ same bytes in every written file.

Output folder (``write_poisoned``)::

    labeled/<class>/<id>.png      test/<class>/<id>.png
    unlabeled/<hash>.png          clean pool and poison alike: names are keyed hashes, leak nothing
    manifest.json                 the ground truth; also what marks the folder as ours

The folder is written as a hidden sibling (``.OUT.PID.N.tmp``) and renamed into place at the end,
so a killed or interrupted run never leaves a half-written dataset at ``OUT`` (its hidden folder
is removed by the next run). ``force`` replaces only a folder this module wrote: exactly the
entries above, with a manifest of this schema; any other non-empty folder is refused, even
with ``force``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audit.atomic import atomic_folder, remove_stale_temps
from audit.data.imageset import ImageSet, Splits
from audit.data.split import balanced_indices
from audit.data.write import png_paths, write_bytes_atomic, write_pngs
from audit.findings import jsonable
from audit.groundtruth import Endpoint, Manifest, PoisonedFile, is_manifest
from audit.errors import DataError, InvalidParameterError, ShapeMismatchError, invalid_parameter
from redteam.attacks import ATTACKS, AttackContext
from redteam.attacks._bridge import SOURCE_INDEX, SOURCE_POINT
from redteam.density import DEFAULT_DENSITY, DENSITIES

DEFAULT_RATIO = 0.001  # the paper's headline budget: 0.1% of the unlabeled pool
MAX_RATIO = 0.5  # beyond this the "pool" is mostly poison: not the threat model
_HASH_KEY = b"ssl-poison-audit/inject/v1/seed="


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class InjectConfig:
    """Everything ``inject`` needs besides the data. Scalar checks happen here; checks that need
    the data (index ranges, class sizes) happen in :func:`inject`."""

    dataset: str  # builtin name or path, recorded in the manifest (inject() takes loaded Splits)
    root: str | None = None  # where a builtin's files live (None: its default location)
    labels_per_class: int = 4  # the paper's 40 labels on 10 classes
    unlabeled: int | None = None  # clean pool size; None: every training image not labeled
    target: int | None = None  # index of x* in the test split; None: random
    target_label: int | None = None  # y*; None: a random class other than x*'s true label
    source: int | None = None  # index of x' in the labeled set (ordered by class); None: random of class y*
    ratio: float | None = None  # poison/clean-pool ratio; None and count None: DEFAULT_RATIO
    count: int | None = None  # exact number of poisoned images (instead of ratio)
    density: str = DEFAULT_DENSITY  # Table 3's best
    attack: str = "linear"  # paper 3.1
    seed: int = 0
    attack_config: Any = None  # the attack's own frozen config; None: its defaults

    def __post_init__(self) -> None:
        own = "inject"
        if not _is_int(self.labels_per_class) or self.labels_per_class < 1:
            raise invalid_parameter("labels_per_class", own, "an int >= 1", self.labels_per_class)
        if self.unlabeled is not None and (not _is_int(self.unlabeled) or self.unlabeled < 1):
            raise invalid_parameter("unlabeled", own, "an int >= 1 or None", self.unlabeled)
        for name in ("target", "target_label", "source"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or v < 0):
                raise invalid_parameter(name, own, "an int >= 0 or None", v)
        if self.ratio is not None and self.count is not None:
            raise InvalidParameterError(
                f"The 'ratio' and 'count' parameters of {own} are alternatives: give one. "
                f"Got ratio={self.ratio!r} and count={self.count!r}."
            )
        if self.ratio is not None:
            ok = isinstance(self.ratio, (int, float, np.floating)) and not isinstance(self.ratio, bool)
            if not ok or not 0.0 < float(self.ratio) <= MAX_RATIO:
                raise invalid_parameter("ratio", own, f"a float in (0, {MAX_RATIO}]", self.ratio)
        if self.count is not None and (not _is_int(self.count) or self.count < 2):
            raise invalid_parameter("count", own, "an int >= 2 (a bridge needs both end points)", self.count)
        if not _is_int(self.seed) or self.seed < 0:
            raise invalid_parameter("seed", own, "an int >= 0", self.seed)
        DENSITIES.get(self.density)  # Unknown density 'foo'. Available: ...
        ATTACKS.get(self.attack)

    def n_poison(self, pool_size: int) -> int:
        """n = count, or max(2, round-half-up(ratio × pool_size))."""
        if self.count is not None:
            return int(self.count)
        ratio = DEFAULT_RATIO if self.ratio is None else float(self.ratio)
        return max(2, int(np.floor(ratio * pool_size + 0.5)))

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "attack_config"}
        cfg = self.attack_config
        out["attack_config"] = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg
        return jsonable(out, exact=True)  # numpy scalars (valid config values) as Python numbers




@dataclass(frozen=True, eq=False)
class PoisonedDataset:
    """The victim's view (ids are the written paths, relative to each split's folder) plus ground
    truth. ``unlabeled`` mixes clean and poison, sorted by file name; ``is_poison`` is bool ``N``."""

    labeled: ImageSet
    unlabeled: ImageSet
    test: ImageSet
    is_poison: np.ndarray
    origin: tuple[str, ...]  # per unlabeled image: its training id, or "poison/<k>" (k = α order)
    manifest: Manifest

    @property
    def poison_ids(self) -> tuple[str, ...]:
        return self.manifest.poisoned


def _class_name(images: ImageSet, label: int) -> str:
    names = images.class_names
    return names[label] if names is not None and 0 <= label < len(names) else str(label)


def _unlabeled_names(images: np.ndarray, origin: list[str], seed: int) -> list[str]:
    """``<16 hex>.png`` per image: sha256(key, seed, image bytes, origin). Clean and poisoned names
    are indistinguishable; a collision is re-hashed with a counter, in input order."""
    key = _HASH_KEY + str(seed).encode()
    taken: set[str] = set()
    names = []
    for img, o in zip(images, origin):
        base = hashlib.sha256(key + b"\0" + img.tobytes() + b"\0" + o.encode())
        name, k = base.hexdigest()[:16] + ".png", 0
        while name in taken:
            k += 1
            h = base.copy()
            h.update(b"#%d" % k)
            name = h.hexdigest()[:16] + ".png"
        taken.add(name)
        names.append(name)
    return names


def inject(splits: Splits, config: InjectConfig) -> PoisonedDataset:
    """Poison ``splits`` as ``config`` says (paper 3.1); nothing is written. See the module doc."""
    train, test = splits.train, splits.test
    if train.labels is None:
        raise DataError("inject needs a labeled training split")
    if test is None or test.labels is None:
        raise DataError("inject takes the target x* from a labeled test split; this dataset has none")
    if test.shape != train.shape:
        raise ShapeMismatchError(f"train images are {train.shape} but test images are {test.shape}")
    own = "inject"
    rng_lab, rng_pool, rng_tgt, rng_src, rng_att = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(5)
    )

    # the project's one class-balanced draw (audit train draws its labels the same way)
    labeled_idx = balanced_indices(train.labels, config.labels_per_class, rng_lab, class_names=train.class_names,
                                   owner="inject")  # ordered by class, then training index
    rest = np.setdiff1d(np.arange(len(train)), labeled_idx)
    if config.unlabeled is not None:
        if config.unlabeled > len(rest):
            raise invalid_parameter("unlabeled", own, f"an int in [1, {len(rest)}] (training images not labeled)",
                                    config.unlabeled)
        rest = np.sort(rng_pool.choice(rest, config.unlabeled, replace=False))
    pool_idx = rest.astype(np.int64)

    t = config.target if config.target is not None else int(rng_tgt.integers(len(test)))
    if t >= len(test):
        raise invalid_parameter("target", own, f"an index into the test split, in [0, {len(test) - 1}]", t)
    true_label = int(test.labels[t])
    labeled_labels = train.labels[labeled_idx]
    classes = [int(c) for c in np.unique(labeled_labels)]
    if config.target_label is None:
        y_star = int(rng_tgt.choice([c for c in classes if c != true_label]))
    else:
        y_star = int(config.target_label)
        if y_star == true_label:
            raise invalid_parameter(
                "target_label", own,
                f"a class other than the target's true label {true_label} ('{_class_name(test, true_label)}', "
                f"test index {t})", y_star)
        if y_star not in classes:
            raise invalid_parameter("target_label", own, f"one of the classes {classes}", y_star)

    of_class = np.flatnonzero(labeled_labels == y_star)
    if config.source is None:
        s = int(rng_src.choice(of_class))
    else:
        s = int(config.source)
        if s >= len(labeled_idx) or labeled_labels[s] != y_star:
            got = f"{s} (class {int(labeled_labels[s])})" if s < len(labeled_idx) else f"{s} (out of range)"
            raise InvalidParameterError(
                f"The 'source' parameter of {own} must be the index of a labeled example of class {y_star} "
                f"(labeled indices {of_class.min()}..{of_class.max()}). Got {got} instead."
            )

    n = config.n_poison(len(pool_idx))
    attack = ATTACKS.get(config.attack)(config.attack_config)
    ctx = AttackContext(train=train, labeled=labeled_idx, unlabeled=pool_idx, target=test.images[t],
                        target_label=y_star, source=int(labeled_idx[s]), n=n, density=config.density)
    batch = attack.generate(ctx, rng_att)
    if len(batch) != n or batch.images.shape[1:] != train.images.shape[1:]:
        raise ShapeMismatchError(f"attack '{config.attack}' returned {batch.images.shape[0]} images of shape "
                                 f"{batch.images.shape[1:]}; expected {n} of {train.images.shape[1:]}")
    if SOURCE_INDEX in batch.meta and SOURCE_POINT in batch.meta:
        raise ShapeMismatchError(f"attack '{config.attack}' gave both '{SOURCE_INDEX}' and '{SOURCE_POINT}'")
    order = sorted(range(n), key=lambda i: (batch.points[i].path, batch.points[i].alpha, i))
    poison_imgs = batch.images[order]
    poison_pts = [batch.points[i] for i in order]

    # The unlabeled pool: clean + poison, named by keyed hash, sorted by name.
    images = np.concatenate([train.images[pool_idx], poison_imgs])
    origin = [train.ids[i] for i in pool_idx] + [f"poison/{k:05d}" for k in range(n)]
    names = _unlabeled_names(images, origin, config.seed)
    perm = sorted(range(len(names)), key=names.__getitem__)
    is_poison = np.arange(len(names))[perm] >= len(pool_idx)
    unlabeled = ImageSet(images=np.ascontiguousarray(images[perm]), ids=[names[i] for i in perm],
                         class_names=train.class_names)

    lab = train.subset(labeled_idx)
    labeled = lab.with_ids(png_paths(lab, by_class=True))
    test_set = test.with_ids(png_paths(test, by_class=True))
    poisoned = tuple(names[len(pool_idx) + k] for k in range(n))
    source = _source_endpoint(batch.meta, order, pool_idx, names, unlabeled, train, y_star)
    if source is None:
        source = Endpoint(path=f"labeled/{labeled.ids[s]}", index=s, original_id=lab.ids[s], label=y_star,
                          class_name=_class_name(train, y_star))
    manifest = Manifest(
        dataset=config.dataset, attack=config.attack, density=config.density, seed=int(config.seed),
        ratio=None if config.count is not None else float(config.ratio or DEFAULT_RATIO),
        count=config.count, n=n, labels_per_class=config.labels_per_class, labeled_size=len(labeled),
        unlabeled_pool_size=len(pool_idx), unlabeled_size=len(unlabeled),
        target_label=y_star, target_label_name=_class_name(train, y_star),
        class_names=tuple(_class_name(train, c) for c in range(int(train.labels.max()) + 1)),
        source=source,
        target=Endpoint(path=f"test/{test_set.ids[t]}", index=t, original_id=test.ids[t], label=true_label,
                        class_name=_class_name(test, true_label), split="test"),
        poisoned=poisoned,
        points=tuple(PoisonedFile(path=p, alpha=float(pt.alpha), path_id=int(pt.path), role=pt.role)
                     for p, pt in zip(poisoned, poison_pts)),
        attack_meta={"config": attack.config_json(), **batch.meta},
        config=config.to_json(),
    )
    return PoisonedDataset(labeled=labeled, unlabeled=unlabeled, test=test_set, is_poison=is_poison,
                           origin=tuple(origin[i] for i in perm), manifest=manifest)


def _source_endpoint(meta: dict, order: list[int], pool_idx: np.ndarray, names: list[str], unlabeled: ImageSet,
                     train: ImageSet, y_star: int) -> Endpoint | None:
    """The manifest's source when the attack's x' is not the labeled source (see
    ``redteam.attacks._bridge``): a clean pool image (``source_index``, an index into the training
    split) or an inserted point (``source_point``, an index into the attack's batch); None
    otherwise. ``names`` are the unlabeled file names, clean pool first, then poison in ``order``."""
    if SOURCE_INDEX in meta:
        i = int(meta[SOURCE_INDEX])
        at = np.flatnonzero(pool_idx == i)
        if len(at) != 1:
            raise ShapeMismatchError(f"the attack's x' (training index {i}) is not in the unlabeled pool")
        name, original, label = names[int(at[0])], train.ids[i], int(train.labels[i])
    elif SOURCE_POINT in meta:
        k = order.index(int(meta[SOURCE_POINT]))
        name, original, label = names[len(pool_idx) + k], f"poison/{k:05d}", y_star
    else:
        return None
    return Endpoint(path=f"unlabeled/{name}", index=unlabeled.ids.index(name), original_id=original, label=label,
                    class_name=_class_name(train, label), split="unlabeled")


OUTPUT_ENTRIES = ("manifest.json", "labeled", "unlabeled", "test")


def check_out_dir(out_dir: str | Path, *, force: bool = False) -> bool:
    """Raise unless ``out_dir`` is new, an empty directory, or (with ``force``) an earlier output
    of :func:`write_poisoned`; True when it is such an output, to be replaced."""
    out = Path(out_dir)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise invalid_parameter("out", "inject", "a new or empty directory (not a link or a file)", str(out))
    if not out.is_dir() or not any(out.iterdir()):
        return False
    foreign = sorted(e.name for e in os.scandir(out) if e.name not in OUTPUT_ENTRIES)
    if foreign or not is_manifest(out / "manifest.json"):
        why = (f"it holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which redteam inject "
               "does not write" if foreign else "it has no manifest.json of redteam inject")
        raise InvalidParameterError(
            f"The 'out' parameter of inject must be a new or empty directory, or an earlier inject output. Got "
            f"'{out}', which is not empty and not an inject output ({why}); --force never replaces it: "
            f"choose another --out.")
    if not force:
        raise InvalidParameterError(
            f"The 'out' parameter of inject must be a new or empty directory. Got '{out}', which holds an "
            f"earlier inject output (not empty); pass --force to replace it.")
    return True


def write_poisoned(ds: PoisonedDataset, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write ``ds`` as ``out_dir`` (layout in the module doc), all at once: into a hidden sibling
    renamed into place at the end, so ``out_dir`` is never half-written.

    ``out_dir`` must be new or empty; with ``force`` it may also be an earlier output of this
    function (recognised by its entries and manifest), which is replaced as a whole, so no stale
    image of an earlier run stays in the pool. Anything else is refused. Returns ``out_dir``."""
    out = Path(os.path.abspath(out_dir))
    replace = check_out_dir(out, force=force)
    remove_stale_temps(out.parent, name=out.name, folders=True)  # what killed runs left
    with atomic_folder(out, replace=replace) as tmp:
        for sub, split in (("labeled", ds.labeled), ("test", ds.test), ("unlabeled", ds.unlabeled)):
            write_pngs(split.images, split.ids, tmp / sub)
        text = json.dumps(ds.manifest.to_json(), indent=2, ensure_ascii=False) + "\n"
        write_bytes_atomic(tmp / "manifest.json", text.encode("utf-8"))
    return Path(out_dir)
