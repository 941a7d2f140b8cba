"""The three image sets a semi-supervised run trains on: labeled, unlabeled pool, test.

Paper 3.2.1: the victim trains on a few labeled images per class (40 labels = 4 per class on
CIFAR-10) and an unlabeled pool (the rest of the training split). :func:`balanced_indices` is the
one class-balanced draw the project makes (``audit train``, ``audit dynamics`` and ``redteam
inject`` all call it, so the same seed picks the same labels everywhere); :func:`training_sets`
loads what ``--labeled/--unlabeled/--test`` folders or a ``--dataset`` (a built-in name or a
dataset path, as :func:`audit.data.load.load_dataset` reads them) give.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from audit.data.imageset import ImageSet
from audit.errors import DataError, InvalidParameterError, invalid_parameter


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator, *,
                     class_names=None, owner: str = "balanced_split") -> np.ndarray:
    """int64 indices of ``per_class`` images of every class, drawn without replacement from
    ``rng`` class by class (ascending class), ordered by class and then by index."""
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise invalid_parameter("labels_per_class", owner, "an int >= 1", per_class)
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) and per_class > counts.min():
        small = int(classes[counts.argmin()])
        name = class_names[small] if class_names is not None and 0 <= small < len(class_names) else str(small)
        raise invalid_parameter("labels_per_class", owner,
                                f"at most {counts.min()} (the size of the smallest class, '{name}')", per_class)
    picks = [np.sort(rng.choice(np.flatnonzero(labels == c), per_class, replace=False)) for c in classes]
    return np.concatenate(picks).astype(np.int64) if picks else np.zeros(0, np.int64)


def balanced_split(imageset: ImageSet, per_class: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """``(labeled, rest)``: ``per_class`` images of every class drawn with ``default_rng(seed)``,
    and all the others, each in the set's own order."""
    if imageset.labels is None:
        raise DataError("balanced_split needs a labeled image set")
    chosen = balanced_indices(imageset.labels, per_class, np.random.default_rng(seed),
                              class_names=imageset.class_names)
    mask = np.zeros(len(imageset), bool)
    mask[chosen] = True
    return imageset.subset(np.flatnonzero(mask)), imageset.subset(np.flatnonzero(~mask))


class TrainingSets(NamedTuple):
    labeled: ImageSet  # with labels and class names
    unlabeled: ImageSet  # without labels
    test: ImageSet | None  # labels aligned with ``labeled.class_names``; None without one


def training_sets(*, dataset: str | Path | None = None, labeled: str | Path | None = None,
                  unlabeled: str | Path | None = None, test: str | Path | None = None,
                  labels_per_class: int = 4, unlabeled_size: int | None = None, seed: int = 0) -> TrainingSets:
    """Folders (``labeled`` of class sub-folders, ``unlabeled`` in any readable format, optional
    ``test`` of class sub-folders: the layout ``redteam inject`` writes) or a ``dataset``: a built-in
    name or a path :func:`audit.data.load.load_dataset` reads. A dataset is split by
    :func:`balanced_split` (``labels_per_class``, ``seed``); its pool is its own unlabeled split
    when it has one (STL-10, a folder with ``unlabeled/``), else every training image not labeled;
    ``unlabeled_size`` draws that many of the pool (seeded)."""
    from audit.data.load import load_dataset, load_images, load_labeled_folder

    check_sources(dataset, labeled, unlabeled, test, unlabeled_size)
    if dataset is None:
        lab = load_labeled_folder(labeled)
        # one model input: the pool and the test set are read at the labeled set's working size and
        # colour (a pool of larger photos would otherwise get its own working size)
        like = {"size": lab.shape[:2], "channels": lab.shape[2]}
        unl = load_images(unlabeled, **like).without_labels()
        tst = None if test is None else align_classes(load_labeled_folder(test, **like), lab.class_names, test)
        return TrainingSets(lab, unl, tst)
    splits = load_dataset(dataset)
    lab, rest = balanced_split(splits.train, labels_per_class, seed)
    pool = rest if splits.unlabeled is None else splits.unlabeled
    if unlabeled_size is not None:
        if isinstance(unlabeled_size, bool) or not isinstance(unlabeled_size, int) or not 1 <= unlabeled_size <= len(pool):
            raise invalid_parameter("unlabeled_size", "train", f"an int in [1, {len(pool)}]", unlabeled_size)
        pool = pool.subset(np.sort(np.random.default_rng(seed).choice(len(pool), unlabeled_size, replace=False)))
    tst = splits.test
    if tst is not None and tst.labels is not None and lab.class_names is not None:
        tst = align_classes(tst, lab.class_names, dataset)
    return TrainingSets(lab, pool.without_labels(), tst)


def check_sources(dataset, labeled, unlabeled, test, unlabeled_size=None) -> None:
    """Folders or a dataset, not both, not neither: checked by the CLIs before any data is read."""
    if dataset is not None and (labeled is not None or unlabeled is not None or test is not None):
        raise InvalidParameterError("--dataset cannot be combined with --labeled/--unlabeled/--test; use one or the other")
    if dataset is None and (labeled is None or unlabeled is None):
        raise InvalidParameterError("give --labeled DIR and --unlabeled DIR (and optionally --test DIR), or --dataset NAME")
    if dataset is None and unlabeled_size is not None:
        raise InvalidParameterError("--unlabeled-size draws a pool from --dataset; with --unlabeled DIR the pool is "
                                    "the folder")


def align_classes(test: ImageSet, class_names, where) -> ImageSet:
    """Relabel ``test`` so that label i means ``class_names[i]`` of the labeled set (a test folder
    may lack classes, which would shift every index after it)."""
    if test.class_names is None or tuple(test.class_names) == tuple(class_names):
        return test
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(test.class_names) - set(index))
    if unknown:
        raise DataError(f"{where}: class folders {', '.join(unknown)} are not classes of --labeled "
                        f"({', '.join(class_names)})")
    mapping = np.array([index[n] for n in test.class_names])
    return ImageSet(test.images, test.ids, mapping[test.labels], test.unreadable, test.root, tuple(class_names))
