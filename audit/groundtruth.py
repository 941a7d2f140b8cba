"""The ground truth of a poisoning: the ``manifest.json`` that ``redteam inject`` writes beside a
poisoned dataset, and that ``audit dynamics --manifest`` and the bench read to say which flagged
images were poison and whether x* still gets y* (paper 3.2.1). The one definition of its schema
(docs/attacks.md, "Manifest"): ``redteam`` builds a :class:`Manifest` and writes ``to_json``;
``audit`` reads it here, so ``audit`` never imports ``redteam``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from audit.errors import DataError

if TYPE_CHECKING:
    from audit.data.imageset import ImageSet

SCHEMA_VERSION = 1
MAX_MANIFEST_BYTES = 256 << 20  # a manifest lists every poisoned file: megabytes at most


@dataclass(frozen=True)
class PoisonedFile:
    path: str  # relative to unlabeled/
    alpha: float
    path_id: int  # 0: the main bridge x' -> x*
    role: str


@dataclass(frozen=True)
class Endpoint:
    """The source x' (split 'labeled'; 'unlabeled' for attacks whose x' is a pool image (4.1) or
    a synthetic image they insert (4.3)) or the target x* (split 'test')."""

    path: str  # relative to the output folder, e.g. "labeled/3/train_00012.png"
    index: int  # index in its split's written set (labeled set, unlabeled pool, test split)
    original_id: str  # the id in the dataset it came from ("poison/<k>" for a synthetic x')
    label: int  # its true label (a synthetic x': y*, the label the attack gives it)
    class_name: str
    split: str = "labeled"  # the folder it is in: labeled, unlabeled or test


@dataclass(frozen=True)
class Manifest:
    """Ground truth of one injection; ``to_json`` is the ``manifest.json`` schema (version 1)."""

    dataset: str
    attack: str
    density: str
    seed: int
    ratio: float | None  # the ratio used (None when count was given)
    count: int | None  # the count given (None when ratio was used)
    n: int  # images inserted
    labels_per_class: int
    labeled_size: int
    unlabeled_pool_size: int  # clean pool, before poisoning: the ratio's denominator
    unlabeled_size: int  # pool + n
    target_label: int  # y*
    target_label_name: str
    class_names: tuple[str, ...]  # label i is class_names[i]; a folder reader may number classes differently
    source: Endpoint
    target: Endpoint
    poisoned: tuple[str, ...]  # paths relative to unlabeled/, in (path_id, α) order
    points: tuple[PoisonedFile, ...]  # same order as poisoned
    attack_meta: dict
    config: dict
    schema_version: int = SCHEMA_VERSION

    @cached_property
    def poison_ids(self) -> frozenset[str]:
        """The poisoned images' ids in the written pool (relative to ``unlabeled/``)."""
        return frozenset(self.poisoned)

    def target_index(self, test: ImageSet | None) -> int | None:
        """Row of x* in ``test`` (the written test folder, ids relative to it); None if absent."""
        tid = self.target.path.split("/", 1)[1] if self.target.path.startswith("test/") else None
        if test is None or tid is None or tid not in test.ids:
            return None
        return test.ids.index(tid)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["poisoned"], d["points"] = list(self.poisoned), [dataclasses.asdict(p) for p in self.points]
        d["class_names"] = list(self.class_names)
        return {"schema_version": d.pop("schema_version"), **d}

    @classmethod
    def from_json(cls, d: dict) -> "Manifest":
        if d.get("schema_version") != SCHEMA_VERSION:
            raise DataError(f"manifest schema version {d.get('schema_version')!r} is not {SCHEMA_VERSION}")
        d = dict(d)
        d["source"], d["target"] = Endpoint(**d["source"]), Endpoint(**d["target"])
        d["poisoned"], d["class_names"] = tuple(d["poisoned"]), tuple(d["class_names"])
        d["points"] = tuple(PoisonedFile(**p) for p in d["points"])
        return cls(**d)


def read_manifest(path: str | Path) -> Manifest:
    """A ``manifest.json`` (or the folder holding it) back as a :class:`Manifest`."""
    p = Path(path)
    p = p / "manifest.json" if p.is_dir() else p
    try:
        return Manifest.from_json(json.loads(p.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{p} is not a readable inject manifest ({type(exc).__name__}: {exc})") from None


def is_manifest(path: Path) -> bool:
    """A regular file of reasonable size holding a manifest of this schema (what marks a folder
    as written by ``redteam inject``)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
            return False
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("schema_version") == SCHEMA_VERSION and "poisoned" in doc
