"""Data layer: files on disk -> :class:`ImageSet` (uint8 N×H×W×C) and :class:`Splits`.

One reader per format lives in ``audit.data.readers``; ``load_images`` / ``load_dataset`` /
``load_labeled_folder`` are the entry points everything else uses.
"""

from audit.data.builtin import BUILTINS
from audit.data.compare import compare_labeled
from audit.data.imageset import ImageSet, Splits, Unreadable
from audit.data.load import load_dataset, load_images, load_labeled_folder

__all__ = ["BUILTINS", "ImageSet", "Splits", "Unreadable", "compare_labeled", "load_dataset", "load_images",
           "load_labeled_folder"]
