"""ImageSet: the one in-memory form every reader produces and every consumer takes.

Contract: ``images`` is uint8 ``N×H×W×C`` (C is 1 or 3), C-contiguous; ``ids`` are stable,
unique strings (for folders: the path relative to the scanned root, with '/' separators; a name
that is not valid UTF-8 keeps its undecodable bytes as lone surrogates, PEP 383, so
``os.fsencode(id)`` gives back the exact bytes: JSON keeps that form, human outputs escape it);
``labels`` is int64 ``N`` or None (unlabeled). Files that could not be read are kept in
``unreadable`` with a reason, entries passed over on purpose in ``skipped``, never silently
dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from audit.errors import ShapeMismatchError


@dataclass(frozen=True)
class Unreadable:
    """A file a reader skipped, and why (``truncated``, ``not an image``, ``too large``,
    ``unsupported mode``, ...)."""

    path: str
    reason: str

    def to_json(self) -> dict:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True, eq=False)
class ImageSet:
    images: np.ndarray  # uint8 N×H×W×C
    ids: tuple[str, ...]
    labels: np.ndarray | None = None  # int64 N, or None for an unlabeled pool
    unreadable: tuple[Unreadable, ...] = ()
    root: Path | None = None  # where the ids are relative to, when read from disk
    class_names: tuple[str, ...] | None = None  # label i is class_names[i]
    notes: tuple[str, ...] = field(default=())  # e.g. "resized 3 images to 28×28"
    # entries a reader passed over on purpose (hidden names, directory symlinks, links leaving
    # the root): listed like unreadable ones, because a loader that walks the folder may read them
    skipped: tuple[Unreadable, ...] = ()
    # JSON-able summary of what the reader met and did (size/mode mix, working size, conversions)
    summary: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        imgs = self.images
        if not isinstance(imgs, np.ndarray) or imgs.dtype != np.uint8 or imgs.ndim != 4:
            raise ShapeMismatchError(
                f"ImageSet images must be a uint8 N×H×W×C array; got "
                f"{getattr(imgs, 'dtype', type(imgs).__name__)} with shape {getattr(imgs, 'shape', '?')}"
            )
        if imgs.shape[3] not in (1, 3):
            raise ShapeMismatchError(f"ImageSet images must have 1 or 3 channels; got {imgs.shape[3]}")
        object.__setattr__(self, "ids", tuple(self.ids))
        if len(self.ids) != len(imgs):
            raise ShapeMismatchError(f"ImageSet has {len(imgs)} images but {len(self.ids)} ids")
        if len(set(self.ids)) != len(self.ids):
            raise ShapeMismatchError("ImageSet ids must be unique")
        if self.labels is not None:
            labels = np.asarray(self.labels, dtype=np.int64)
            if labels.shape != (len(imgs),):
                raise ShapeMismatchError(f"ImageSet has {len(imgs)} images but labels of shape {labels.shape}")
            object.__setattr__(self, "labels", labels)

    # --- shape -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int | None:
        if self.class_names is not None:
            return len(self.class_names)
        if self.labels is None or len(self.labels) == 0:
            return None
        return int(self.labels.max()) + 1

    # --- derived sets ------------------------------------------------------------------
    def subset(self, index: Sequence[int] | np.ndarray) -> "ImageSet":
        idx = np.asarray(index, dtype=np.int64)
        return ImageSet(
            images=np.ascontiguousarray(self.images[idx]),
            ids=tuple(self.ids[i] for i in idx),
            labels=None if self.labels is None else self.labels[idx],
            root=self.root,
            class_names=self.class_names,
        )

    def without_labels(self) -> "ImageSet":
        return replace(self, labels=None)

    def with_ids(self, ids: Sequence[str]) -> "ImageSet":
        return replace(self, ids=tuple(ids))

    def with_notes(self, notes: Sequence[str]) -> "ImageSet":
        """The same set with ``notes`` said after the reader's own (console, JSON, HTML)."""
        return replace(self, notes=tuple(self.notes) + tuple(notes))

    def pixels(self) -> np.ndarray:
        """float32 ``N×D`` in [0, 255]: the consistent scale every detector uses (uint8 rounding
        error is then at most 0.5 per coordinate)."""
        return self.images.reshape(len(self), -1).astype(np.float32)

    @staticmethod
    def concat(sets: Sequence["ImageSet"]) -> "ImageSet":
        if not sets:
            raise ShapeMismatchError("cannot concatenate zero image sets")
        shapes = {s.shape for s in sets}
        if len(shapes) != 1:
            raise ShapeMismatchError(f"cannot concatenate image sets of different shapes: {sorted(shapes)}")
        with_labels = [s.labels is not None for s in sets]
        labels = np.concatenate([s.labels for s in sets]) if all(with_labels) else None
        return ImageSet(
            images=np.concatenate([s.images for s in sets]),
            ids=tuple(i for s in sets for i in s.ids),
            labels=labels,
            unreadable=tuple(u for s in sets for u in s.unreadable),
            root=sets[0].root,
            class_names=sets[0].class_names,
        )


@dataclass(frozen=True)
class Splits:
    """A labeled dataset as the built-ins and split-aware formats provide it."""

    train: ImageSet
    test: ImageSet | None = None
    unlabeled: ImageSet | None = None  # STL-10's extra pool; None elsewhere
    name: str = ""
